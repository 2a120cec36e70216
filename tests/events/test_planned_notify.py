"""A job write done by one statement on its own (services/planned_jobs.py, pg.runs_alone)
commits as the statement returns, outside any Session transaction: its NOTIFY follows from
the process's NOTIFY thread (pg.run_pooled_soon), at once after a quiet spell and, under
load, one for the writes of NOTIFY_GAP seconds; a NOTIFY that fails costs the write
nothing."""
from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import create_engine

from paddles import pg
from paddles.notify import Waker
from paddles.services import events as event_service
from tests.factories import post_job, put_job, run_name

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _events_of(app, run) -> list[str]:
    return [e["type"] for e in app.get(f"/events/?since=0&run={run}").json["events"]]


@pytest.mark.parametrize("write", ["create", "report"])
def test_a_planned_write_wakes_readers_at_once(app, db_engine, write):
    run = run_name()
    post_job(app, run, job_id=1, status="queued")  # the run's first job: the general path
    waker = Waker(db_engine, poll_interval=30.0)
    try:
        assert waker.wait_listening(5)
        version = waker.version()
        started = time.monotonic()
        if write == "create":
            post_job(app, run, job_id=2, status="queued")
        else:
            put_job(app, run, 1, status="running")
        assert waker.wait(version, 5) is True
        assert time.monotonic() - started < 1  # NOTIFY, not the 30 s poll interval
    finally:
        waker.stop()


def test_a_notify_failing_after_a_planned_write_costs_it_nothing(app, monkeypatch, caplog):
    run = run_name()
    post_job(app, run, job_id=1, status="queued")
    monkeypatch.setattr(event_service, "_NOTIFY_SQL",
                        "SELECT pg_terminate_backend(pg_backend_pid())")
    with caplog.at_level("WARNING"):
        put_job(app, run, 1, status="running")
        assert pg.wait_soon_idle()
    assert "NOTIFY after an event commit failed" in caplog.text
    monkeypatch.undo()
    assert app.get(f"/runs/{run}/jobs/1/").json["status"] == "running"
    assert _events_of(app, run).count("job.status") == 1
    put_job(app, run, 1, status="pass", success=True)  # the pool gave a live connection
    assert app.get(f"/runs/{run}/").json["status"] == "finished pass"


def test_writes_close_together_share_a_notify_and_the_last_is_not_left_out(app, db_engine):
    run = run_name()
    for job in range(1, 31):
        post_job(app, run, job_id=job, status="queued")
    assert pg.wait_soon_idle()
    listener = db_engine.raw_connection()
    try:
        raw = listener.dbapi_connection
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute(f"LISTEN {event_service.CHANNEL}")
        started = time.monotonic()
        for job in range(1, 30):  # 29 reports (each a job.status event), as fast as they go
            put_job(app, run, job, status="running")
        took = time.monotonic() - started
        assert pg.wait_soon_idle()
        got = _received(raw)
        put_job(app, run, 30, status="running")  # the last write has its own, in time
        assert pg.wait_soon_idle()
        last = _received(raw)
    finally:
        listener.invalidate()
    # at most one per NOTIFY_GAP after the first (which went at once), and at least one
    assert 1 <= got <= 2 + took / event_service.NOTIFY_GAP, (got, took)
    assert last == 1


def _received(raw) -> int:
    """The notifications that reached the LISTENing psycopg2 connection `raw` (waiting up
    to 5 s for the first), taken off it."""
    deadline = time.monotonic() + 5
    raw.poll()
    while not raw.notifies and time.monotonic() < deadline:
        time.sleep(0.01)
        raw.poll()
    time.sleep(0.05)  # any that follow it
    raw.poll()
    count = len(raw.notifies)
    raw.notifies.clear()
    return count


def test_a_process_that_ends_right_after_asking_still_notifies(db_engine):
    """A CLI command's write, then exit: the NOTIFY thread's work is done at exit."""
    url = db_engine.url.render_as_string(hide_password=False)
    listener = db_engine.raw_connection()
    try:
        raw = listener.dbapi_connection
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute("LISTEN paddles_test_soon")
        script = ("import sys; from sqlalchemy import create_engine; from paddles import pg; "
                  "pg.run_pooled_soon(create_engine(sys.argv[1]), "
                  "\"NOTIFY paddles_test_soon\", gap=0.02, on_error=print)")
        subprocess.run([sys.executable, "-c", script, url], check=True, timeout=60)
        assert _received(raw) == 1
    finally:
        listener.invalidate()


def test_the_notify_thread_ends_with_its_engine(database_url):
    """An engine dropped (a test's, a command's) takes its NOTIFY thread with it, after the
    run it was asked for; a new engine gets a thread of its own."""

    def soon_threads() -> int:
        return sum(t.name == "paddles-soon" and t.is_alive() for t in threading.enumerate())

    before = soon_threads()
    engine = create_engine(database_url)
    pg.run_pooled_soon(engine, "SELECT 1", gap=0.02, on_error=print)
    assert pg.wait_soon_idle()
    assert soon_threads() == before + 1
    pg.run_pooled_soon(engine, "SELECT 1", gap=0.02, on_error=print)
    engine.dispose()
    del engine
    deadline = time.monotonic() + 5
    while soon_threads() > before and time.monotonic() < deadline:
        gc.collect()  # an engine is freed by the collector (its references form cycles)
        time.sleep(0.01)
    assert soon_threads() == before
    assert pg.wait_soon_idle()


def test_an_engine_freed_while_the_notify_threads_are_looked_up_does_not_deadlock(database_url):
    """The collector may free an engine (and forget its NOTIFY thread) at any allocation,
    also in a thread that is in the middle of run_pooled_soon's lookup."""

    engine = create_engine(database_url)
    pg.run_pooled_soon(engine, "SELECT 1", gap=0.02, on_error=print)
    assert pg.wait_soon_idle()

    def free_it_under_the_lock():
        nonlocal engine
        with pg._SOON_LOCK:
            engine.dispose()
            engine = None
            gc.collect()  # the finalizer runs here, in this thread

    worker = threading.Thread(target=free_it_under_the_lock, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
