"""`paddles dispatch` rides through a PostgreSQL crash.

The dispatcher (a real `paddles dispatch` process) delivers message events to a webhook
receiver; PostgreSQL is then killed (`pg_ctl stop -m immediate`) and started again while it
runs, with a backlog half delivered. It must stay up, reconnect by itself, and deliver every
event, the backlog from before the crash and those written after it, signed, at least once;
and stop cleanly on SIGTERM.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webtest

from paddles.app import make_app
from paddles.settings import load_settings
from tests.deploy.conftest import wait_until
from tests.events.conftest import SECRET, Receiver, server_env

pytestmark = [pytest.mark.faults, pytest.mark.slow]

PADDLES = str(Path(sys.executable).parent / "paddles")


def _post_message(app, i: int) -> int:
    """POST a message event, again while the database answers 503: its id."""
    deadline = time.monotonic() + 30
    while True:
        resp = app.post("/events/", json.dumps({"message": i}), expect_errors=True)
        if resp.status_int == 201:
            return resp.json["id"]
        assert resp.status_int == 503 and resp.headers["Retry-After"], resp
        assert time.monotonic() < deadline, "the database did not come back"
        time.sleep(0.1)


def test_dispatch_delivers_everything_across_a_database_crash(pg_cluster, pg_db, tmp_path):
    receiver = Receiver(SECRET)
    app = webtest.TestApp(make_app(load_settings(environ={}, database_url=pg_cluster.url())))
    env = server_env(pg_cluster.url(), tmp_path, PADDLES_WEBHOOK_TIMEOUT=1,
                     PADDLES_WEBHOOK_BACKOFF_BASE=0.05, PADDLES_DISPATCH_POLL_INTERVAL=0.05,
                     PADDLES_LOG_LEVEL="info")
    log = tmp_path / "dispatch.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([PADDLES, "dispatch"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        app.post("/subscriptions/", json.dumps({"url": receiver.url, "secret": SECRET,
                                                "types": ["message"]}), status=201)
        receiver.delay = 0.05  # a backlog builds up
        ids = [_post_message(app, i) for i in range(30)]
        assert wait_until(lambda: len(receiver.requests) >= 5, 20)

        pg_cluster.stop("immediate")  # a crash, mid-backlog, with the dispatcher connected
        before = set(receiver.event_ids())
        time.sleep(1.0)
        pg_cluster.start()
        ids += [_post_message(app, i) for i in range(30, 40)]
        assert wait_until(lambda: set(receiver.event_ids()) >= set(ids), 30), \
            (sorted(set(ids) - set(receiver.event_ids())), log.read_text()[-3000:])
        assert worker.poll() is None, log.read_text()[-3000:]  # it rode through
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(15)
        finally:
            worker.kill()
        receiver.close()
    assert before < set(ids[:30]), "the crash came after the backlog was delivered"
    assert code == 0, log.read_text()[-3000:]
    assert sorted(set(receiver.event_ids())) == sorted(ids)
    assert all(r["signed"] for r in receiver.requests)
