"""Failures in the middle of a write request, on PostgreSQL, at the worst moment.

A job write takes its row locks, changes the job and the run's counters, and then, as the
last step before COMMIT, takes the advisory lock that orders event commits (services/events).
The test holds that lock from its own connection, so a PUT or POST stops right there, its
changes made but not committed, and then:

* the gunicorn worker serving it is SIGKILLed: the client gets an error, not a 2xx;
  PostgreSQL rolls the transaction back (a job report, or a new job in a run that exists,
  is one statement on PostgreSQL that commits as it ends, services/planned_jobs.py: whole,
  as if the worker had died just after it); the master starts a new worker and service
  goes on;
* its PostgreSQL backend is killed (pg_terminate_backend) while it commits: the client gets
  503 JSON with Retry-After, and the pool reconnects by itself for the next request;
* a deferred constraint (checked at COMMIT) refuses the change: 409 JSON;
* nobody releases the lock: after PADDLES_DB_LOCK_TIMEOUT the client gets 503 JSON with
  Retry-After instead of waiting forever.

Each time nothing of the write is left (the job, the run's counters and the event log are
exactly as before), or all of it, never a part.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest
import requests
from sqlalchemy import text

from paddles.services.events import ADVISORY_KEY
from tests.deploy.conftest import alive, wait_until
from tests.factories import run_name
from tests.faults.conftest import call, gunicorn

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WRITES = {
    "PUT": lambda run: ("PUT", f"/runs/{run}/jobs/1/", {"status": "pass", "success": True}),
    "POST": lambda run: ("POST", f"/runs/{run}/jobs/", {"job_id": "2", "status": "running"}),
}
# what a write killed with its worker leaves: each is one statement on PostgreSQL (a job
# report, a new job in a run that exists), which, waiting for the lock, runs to its end and
# commits when the lock is let go
WHOLE = {
    "PUT": lambda before: {"jobs": [("1", "pass", True, None)],
                           "run": ("finished pass", 1, 0, 0, 1),
                           "events": before["events"] + 2},  # job.status, run.status
    "POST": lambda before: {"jobs": [("1", "queued", None, None), ("2", "running", None, None)],
                            "run": ("running", 2, 1, 1, 0),
                            "events": before["events"] + 2},  # job.created, run.status
}


@pytest.fixture(scope="module")
def server(pg_cluster, tmp_path_factory):
    with gunicorn(pg_cluster.url(), tmp_path_factory.mktemp("mid_request")) as srv:
        yield srv


@contextlib.contextmanager
def commits_held(engine):
    """Hold the event-commit advisory lock: every write request stops just before COMMIT."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})


def held_backend(engine) -> tuple[int, int]:
    """(PostgreSQL backend pid, paddles process pid) of the request waiting for the lock."""
    def find():
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT pid, application_name FROM pg_stat_activity WHERE wait_event_type = "
                "'Lock' AND wait_event = 'advisory' AND application_name LIKE 'paddles[%'"
            )).first()
    row = wait_until(find, 20, 0.02)
    assert row, "no request reached the commit"
    return row.pid, int(row.application_name.removeprefix("paddles[").rstrip("]"))


def backend_alive(engine, pid: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                            {"pid": pid}).first() is not None


def snapshot(engine, run: str) -> dict:
    with engine.connect() as conn:
        return {
            "jobs": conn.execute(text(
                "SELECT j.job_id, j.status, j.success, j.description FROM jobs j "
                "JOIN runs r ON r.id = j.run_id WHERE r.name = :run ORDER BY j.job_id"),
                {"run": run}).all(),
            "run": conn.execute(text(
                "SELECT status, count_total, count_queued, count_running, count_pass "
                "FROM runs WHERE name = :run"), {"run": run}).one(),
            "events": conn.scalar(text("SELECT count(*) FROM events")),
        }


def in_background(method: str, url: str, body) -> dict:
    outcome: dict = {}

    def send():
        outcome["status"], outcome["response"] = call(requests.Session(), method, url, body)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _reported_run(server) -> str:
    run = run_name()
    resp = requests.post(f"{server.base}/runs/{run}/jobs/",
                         json={"job_id": "1", "status": "queued"}, timeout=10)
    assert resp.status_code == 200
    return run


@pytest.mark.parametrize("write", sorted(WRITES))
def test_worker_killed_mid_write_leaves_all_or_nothing_and_is_replaced(server, pg_db, write):
    run = _reported_run(server)
    before = snapshot(pg_db, run)
    workers = server.workers(2)
    method, path, body = WRITES[write](run)
    with commits_held(pg_db):
        outcome = in_background(method, server.base + path, body)
        backend, victim = held_backend(pg_db)
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        outcome["thread"].join(25)
        assert outcome["status"] == "connection error", outcome  # an error, never a 2xx
    # PostgreSQL sees the dead client when the backend next reads its socket and rolls back
    assert wait_until(lambda: not backend_alive(pg_db, backend), 10)
    assert snapshot(pg_db, run) == WHOLE[write](before)
    replaced = wait_until(lambda: (w := server.workers(2)) and victim not in w and w, 20)
    assert replaced and not alive(victim)
    # service continues, on the new worker too: the same write again (the job it creates
    # exists by now: 400)
    again = requests.request(method, server.base + path, json=body, timeout=10)
    assert again.status_code == {"PUT": 200, "POST": 400}[write], again.text
    for n in range(10):
        assert requests.get(f"{server.base}/runs/{run}/", timeout=10).status_code == 200
    assert snapshot(pg_db, run)["events"] > before["events"]
    assert f"(pid:{victim}) was sent SIGKILL" in server.log_text()
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize("write", sorted(WRITES))
def test_backend_killed_during_commit_is_503_and_writes_nothing(server, pg_db, write):
    run = _reported_run(server)
    before = snapshot(pg_db, run)
    method, path, body = WRITES[write](run)
    with commits_held(pg_db):
        outcome = in_background(method, server.base + path, body)
        backend, _ = held_backend(pg_db)
        with pg_db.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        outcome["thread"].join(25)
    resp = outcome["response"]
    assert outcome["status"] == 503, outcome
    assert resp.headers["Retry-After"] == "5" and resp.json()["message"] == \
        "database unavailable; please retry"
    assert snapshot(pg_db, run) == before
    # the pool drops the dead connection: the retry succeeds with no restart
    assert requests.request(method, server.base + path, json=body, timeout=10).status_code == 200
    assert "Traceback" not in server.log_text()


@pytest.fixture
def refused_at_commit(pg_db):
    """A deferred constraint trigger (checked at COMMIT) refusing one description."""
    with pg_db.connect() as conn:
        conn.execute(text(
            "CREATE FUNCTION faults_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.description = 'refused at commit' THEN RAISE EXCEPTION 'refused' "
            "USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$"))
        conn.execute(text(
            "CREATE CONSTRAINT TRIGGER faults_refuse AFTER INSERT OR UPDATE ON jobs "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION faults_refuse()"))
    try:
        yield "refused at commit"
    finally:
        with pg_db.connect() as conn:
            conn.execute(text("DROP TRIGGER faults_refuse ON jobs"))
            conn.execute(text("DROP FUNCTION faults_refuse()"))


@pytest.mark.parametrize("write", sorted(WRITES))
def test_constraint_failing_at_commit_is_409_and_writes_nothing(server, pg_db, write,
                                                                refused_at_commit):
    run = _reported_run(server)
    before = snapshot(pg_db, run)
    method, path, body = WRITES[write](run)
    resp = requests.request(method, server.base + path,
                            json={**body, "description": refused_at_commit}, timeout=10)
    assert resp.status_code == 409, resp.text
    assert resp.json() == {"message": "the change conflicts with stored data; nothing was "
                                      "written"}
    assert snapshot(pg_db, run) == before
    assert requests.request(method, server.base + path, json=body, timeout=10).status_code == 200
    assert "Traceback" not in server.log_text()


def test_a_lock_held_too_long_is_503_after_the_lock_timeout(pg_cluster, pg_db, tmp_path):
    with gunicorn(pg_cluster.url(), tmp_path, PADDLES_DB_LOCK_TIMEOUT="1") as server:
        run = _reported_run(server)
        before = snapshot(pg_db, run)
        with commits_held(pg_db):
            for write in sorted(WRITES):
                method, path, body = WRITES[write](run)
                started = time.monotonic()
                resp = requests.request(method, server.base + path, json=body, timeout=20)
                waited = time.monotonic() - started
                assert resp.status_code == 503, resp.text
                assert resp.json() == {"message": "database is busy; please retry"}
                assert resp.headers["Retry-After"] == "1"
                assert 1 <= waited < 10
        assert snapshot(pg_db, run) == before
        assert requests.request(method, server.base + path, json=body,
                                timeout=10).status_code == 200
        log = server.log_text()
    assert "lock wait timed out" in log and "Traceback" not in log
