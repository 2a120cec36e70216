"""Events reach RabbitMQ, Mosquitto and NATS JetStream through `paddles dispatch`: the
right body, 1,000 in order, across a broker outage, and across a dispatcher SIGKILLed
mid-batch. Every test runs against each real broker, on SQLite and PostgreSQL."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paddles.services.events import record_event
from tests.brokers.conftest import (Target, broker_settings, ids_in_order, settle,
                                    wait_until)
from tests.brokers.proxy import Proxy
from tests.events.conftest import new_events, server_env
from tests.events.test_webhooks import Running
from tests.factories import post_job, put_job, run_name

PADDLES = str(Path(sys.executable).parent / "paddles")


@pytest.fixture
def app_for(session_factory):
    import webtest

    from paddles.app import make_app

    def make(settings):
        return webtest.TestApp(make_app(settings, session_factory=session_factory))
    return make


def write_messages(session_factory, target: Target, count: int, *, per_commit: int = 100):
    """`count` message events, `per_commit` to a transaction, under the test's prefix."""
    from paddles.db import with_topic_prefix
    sessions = with_topic_prefix(session_factory, target.prefix)
    for start in range(0, count, per_commit):
        with sessions.begin() as session:
            for i in range(start, min(count, start + per_commit)):
                record_event(session, "message", {"message": i}, subject="events")


def event_ids(app, since: int = 0) -> list[int]:
    return [e["id"] for e in new_events(app, since)]


def test_a_job_status_event_arrives_with_its_body(target, database_url, tmp_path, app_for):
    settings = broker_settings(database_url, tmp_path, target)
    app = app_for(settings)
    with Running(settings):
        run = run_name()
        post_job(app, run, "1", status="queued")
        put_job(app, run, "1", status="running")
        got = wait_until(lambda: any(m["body"]["type"] == "job.status"
                                     for m in target.received()), 30)
        assert got, target.received()
    message = next(m for m in target.received() if m["body"]["type"] == "job.status")
    replayed = {e["id"]: e for e in new_events(app)}
    assert message["body"] == replayed[message["body"]["id"]]  # as GET /events/ shows it
    assert message["body"]["data"]["status"] == "running"
    assert message["body"]["data"]["old_status"] == "queued"
    assert message["id"] == message["body"]["uuid"]  # the message id, where there is one
    assert message["key"] == target.key("job.status")
    # every event of the job, in order: run.created, job.created, run.status, job.status
    assert ids_in_order(target.received()) == sorted(replayed)


def test_a_thousand_events_arrive_in_order(target, database_url, tmp_path, app_for,
                                           session_factory):
    settings = broker_settings(database_url, tmp_path, target)
    app = app_for(settings)
    with Running(settings):
        write_messages(session_factory, target, 1000)
        got = settle(target, 1000)
    ids = event_ids(app)
    assert len(ids) == 1000
    assert ids_in_order(got) == ids
    assert [m["body"]["data"]["message"] for m in got][:1000] == list(range(1000))
    assert all(m["id"] == m["body"]["uuid"] for m in got)


def _metric(app, name: str, broker: str) -> float:
    for line in app.get("/metrics").text.splitlines():
        if line.startswith(f'{name}{{broker="{broker}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {broker} not in /metrics")


@pytest.mark.slow
def test_broker_cut_off_then_back_misses_nothing(target, database_url, tmp_path, app_for,
                                                 session_factory):
    proxy = Proxy(target.port)
    settings = broker_settings(database_url, tmp_path, target, url=target.url(proxy.port))
    name = settings.event_brokers.replace("guest:guest@", "guest@")
    app = app_for(settings)
    try:
        with Running(settings):
            run = run_name()
            for i in range(20):
                post_job(app, run, str(i), status="queued")
            assert wait_until(lambda: target.count() >= 5, 30)
            proxy.cut()  # connections broken, new ones refused
            for i in range(20):  # the server goes on taking writes
                put_job(app, run, str(i), status="running")
            write_messages(session_factory, target, 150, per_commit=10)
            assert wait_until(lambda: _metric(app, "paddles_broker_failures_total",
                                              name) >= 2, 30)
            assert _metric(app, "paddles_broker_lag", name) > 0
            proxy.restore()
            total = len(event_ids(app))
            got = settle(target, total)
            assert wait_until(lambda: _metric(app, "paddles_broker_lag", name) == 0, 30)
    finally:
        proxy.close()
    assert ids_in_order(got) == event_ids(app)  # every event, in order, none missing
    assert _metric(app, "paddles_broker_published_total", name) >= total
    state = app.get("/events/brokers/").json["brokers"][0]
    assert state["name"] == name and state["lag"] == 0 and state["failures"] == 0
    assert state["failures_total"] >= 2 and state["last_error"]


@pytest.mark.slow
def test_dispatcher_killed_mid_batch_misses_nothing(target, database_url, tmp_path, app_for,
                                                    session_factory):
    settings = broker_settings(database_url, tmp_path, target)
    app = app_for(settings)
    env = server_env(database_url, tmp_path, PADDLES_EVENT_BROKERS=target.url(),
                     PADDLES_EVENT_TOPIC_PREFIX=target.prefix, PADDLES_BROKER_TIMEOUT=2,
                     PADDLES_BROKER_LEASE=2, PADDLES_BROKER_BACKOFF_BASE=0.05,
                     PADDLES_DISPATCH_POLL_INTERVAL=0.05, PADDLES_LOG_LEVEL="info")
    log = tmp_path / "dispatch.log"

    def start():
        with open(log, "ab") as out:
            return subprocess.Popen([PADDLES, "dispatch"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT)

    worker = start()
    try:
        # the cursor exists before the events: they are all this broker's to get
        assert wait_until(lambda: "paddles dispatch started" in log.read_text(), 30), \
            log.read_text()
        write_messages(session_factory, target, 3000, per_commit=500)
        assert wait_until(lambda: target.count() >= 200, 60), log.read_text()[-2000:]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        before = target.count()
        assert before < 3000, "the dispatcher finished before it was killed"
        worker = start()  # waits out the dead one's lease, then goes on
        got = settle(target, 3000, timeout=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(15)
        finally:
            worker.kill()
    assert code == 0, log.read_text()[-3000:]
    ids = event_ids(app)
    assert ids_in_order(got) == ids, log.read_text()[-3000:]
    uuids = {}
    for m in got:  # a message sent twice carries the same uuid both times
        assert uuids.setdefault(m["body"]["id"], m["id"]) == m["id"] == m["body"]["uuid"]


def test_a_wrong_port_counts_failures_and_skips_nothing(target, database_url, tmp_path,
                                                        app_for, session_factory):
    """Nothing listens on the configured port: every attempt fails, the cursor stays, the
    lag grows; once the port answers (a forwarder to the real broker), all of it arrives."""
    proxy = Proxy(target.port, start=False)  # its port is free until restore()
    settings = broker_settings(database_url, tmp_path, target, url=target.url(proxy.port))
    app = app_for(settings)
    try:
        with Running(settings):
            write_messages(session_factory, target, 50, per_commit=5)
            assert wait_until(lambda: app.get("/events/brokers/").json["brokers"][0]
                              ["failures"] >= 3, 30)
            shown = app.get("/events/brokers/").json
            state = shown["brokers"][0]
            assert state["last_event_id"] < min(event_ids(app))  # not one skipped
            assert state["lag"] == shown["latest_event_id"] - state["last_event_id"] >= 50
            assert state["published"] == 0 and state["configured"]
            assert "refused" in state["last_error"].lower(), state
            proxy.restore()
            got = settle(target, 50)
    finally:
        proxy.close()
    assert ids_in_order(got) == event_ids(app)
