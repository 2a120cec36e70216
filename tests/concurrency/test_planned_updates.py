"""Job updates on PostgreSQL are worked out before the run is locked (planned_jobs.py,
plan_update and apply_planned): a write that lands between the read and the lock must send
the update down the general path, having changed nothing."""
from __future__ import annotations

import json
import random
import threading
import time

import pytest
import webtest
from sqlalchemy import event, func, select

from paddles.app import make_app
from paddles.errors import JobNotFound
from paddles.models import Event, Run
from paddles.services import events, jobs as job_service
from tests.concurrency.threads import run_together
from tests.factories import post_job, run_name
from tests.services.test_run_status import recompute, stored

MISSING = "attempted to update a non-existent job"
READ = "EXECUTE paddles_plan_report"  # the plan's read, prepared
# the write statement, prepared (planned_jobs.py), sent behind the run's lock (pg.Prepared's
# `first`) in one message
WRITE = "EXECUTE paddles_lock_run("
REPORT = "; EXECUTE paddles_report_"


@pytest.fixture
def pg_only(db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the general path (it has one writer at a time)")


def _plan(session, name, fields, job_id="1"):
    plan = job_service.plan_update(session, name, job_id, fields, MISSING)
    assert plan is not None
    return plan


def _version(session, name):
    session.rollback()
    return session.scalar(select(Run.version).where(Run.name == name))


def test_planned_update_applies_counters_status_and_events(pg_only, app, session_factory):
    name = run_name()
    post_job(app, name, 1, status="queued")
    post_job(app, name, 2, status="queued")
    with session_factory() as s:
        plan = job_service.plan_update(s, name, "1", {"status": "running"}, MISSING)
        assert plan is not None and plan.deltas["count_running"] == 1
        assert job_service.apply_planned(s, plan)
        s.commit()
    with session_factory() as s:
        assert stored(s) == recompute(s)
        assert stored(s)[name]["status"] == "running"
        types = s.scalars(select(Event.type).order_by(Event.id)).all()
        assert types[-2:] == ["job.status", "run.status"]
    assert app.get(f"/runs/{name}/").json["started"] is not None


def test_a_write_between_the_read_and_the_lock_sends_the_update_down_the_general_path(
        pg_only, app, session_factory):
    name = run_name()
    post_job(app, name, 1, status="queued")
    post_job(app, name, 2, status="running")
    with session_factory() as s, session_factory() as other:
        version = _version(other, name)
        plan = _plan(s, name, {"status": "running"})
        # another writer finishes the job after the plan was made
        job_service.update_job(other, name, "1", {"status": "pass", "success": True})
        other.commit()
        assert not job_service.apply_planned(s, plan)  # the job is not the row planned on
        assert not s.info.get(events.PENDING)  # no event queued
        s.rollback()
        assert _version(other, name) == version + 1  # only the other write bumped it
        job_service.update_job(s, name, "1", {"status": "running"})  # the general path
        s.commit()
    with session_factory() as s:
        assert stored(s) == recompute(s)
        assert stored(s)[name]["counts"]["pass"] == 1  # a finished job keeps its status
        assert stored(s)[name]["counts"]["running"] == 1


def test_a_heartbeat_between_the_read_and_the_lock_is_not_lost(pg_only, app,
                                                               session_factory):
    name = run_name()
    post_job(app, name, 1, status="running")
    with session_factory() as s:
        plan = _plan(s, name, {"description": "x"})
        app.put_json(f"/runs/{name}/jobs/1/", {"name": "renamed", "job_id": "1"})
        assert not job_service.apply_planned(s, plan)
        s.rollback()
    app.put_json(f"/runs/{name}/jobs/1/", {"description": "x"})
    job = app.get(f"/runs/{name}/jobs/1/").json
    assert (job["name"], job["description"]) == ("renamed", "x")


def test_a_run_deleted_between_the_read_and_the_lock_is_a_404(pg_only, app,
                                                              session_factory):
    name = run_name()
    post_job(app, name, 1, status="queued")
    with session_factory() as s:
        plan = _plan(s, name, {"status": "running"})
        app.delete(f"/runs/{name}/")
        assert not job_service.apply_planned(s, plan)
        with pytest.raises(JobNotFound):
            job_service.update_job(s, name, "1", {"status": "running"})
    app.get(f"/runs/{name}/", status=404)


def test_writes_that_link_targets_or_move_the_first_job_are_not_planned(pg_only, app,
                                                                        session_factory):
    name = run_name()
    post_job(app, name, 1, status="queued", sha1="a" * 40, targets=None)
    with session_factory() as s:
        assert job_service.plan_update(s, name, "1", {"sha1": "b" * 40}, MISSING) is None
        assert job_service.plan_update(
            s, name, "1", {"targets": {"ubuntu@smithi001.front": "k"}}, MISSING) is None
        assert job_service.plan_update(s, name, "1", {"sha1": "a" * 40}, MISSING) is not None
        with pytest.raises(JobNotFound):
            job_service.plan_update(s, name, "99", {"status": "running"}, MISSING)


def test_racing_reports_and_heartbeats_leave_exact_counters_and_a_chain_of_events(
        settings, session_factory, session, app):
    """Status reports and heartbeats of the same jobs from 8 clients at once (both
    databases): counters exact, and per job the job.status events form one chain (each
    starts where the one before ended, the last ends at the stored status), the run's
    last event carrying its final counters."""
    name = run_name()
    for job_id in range(1, 11):
        post_job(app, name, job_id, status="queued")
    statuses = ["running", "waiting", "queued", "dead", "unknown", "running"]

    def work(thread_app, i):
        rng = random.Random(i)
        codes = []
        for n in range(24):
            job_id = rng.randint(1, 10)
            body = ({"name": name, "job_id": str(job_id)} if n % 3 == 0
                    else {"status": rng.choice(statuses), "description": f"{i}-{n}"})
            codes.append(thread_app.put(f"/runs/{name}/jobs/{job_id}/", json.dumps(body),
                                        expect_errors=True).status_int)
        return codes

    codes = [c for batch in run_together(settings, session_factory, work) for c in batch]
    assert set(codes) == {200}, codes
    assert stored(session) == recompute(session)
    finals = {j["job_id"]: j["status"] for j in app.get(f"/runs/{name}/jobs/").json}
    chains: dict[str, list] = {}
    last_results = None
    for type_, data in session.execute(select(Event.type, Event.data).where(
            Event.run_name == name).order_by(Event.id)):
        if type_ in ("job.created", "job.status", "job.updated"):
            last_results = data["results"]
        if type_ == "job.created":
            chains[data["job_id"]] = [data["status"]]
        elif type_ == "job.status":
            assert data["old_status"] == chains[data["job_id"]][-1], data
            chains[data["job_id"]].append(data["status"])
    assert {job: chain[-1] for job, chain in chains.items()} == finals
    assert last_results == stored(session)[name]["counts"]


def test_a_report_that_changes_nothing_answers_200_and_records_nothing(app, session):
    """teuthology-report's refresh PUTs a job as the archive has it: twice the same values,
    its own `updated` included (both databases)."""
    name = run_name()
    post_job(app, name, 1, status="queued")
    body = {"status": "pass", "success": True, "updated": "2024-01-15T21:00:00"}
    app.put_json(f"/runs/{name}/jobs/1/", body)
    version = app.get(f"/runs/{name}/").json
    count = session.scalar(select(func.count()).select_from(Event))
    app.put_json(f"/runs/{name}/jobs/1/", body)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Event)) == count
    assert app.get(f"/runs/{name}/").json == version


def test_the_job_and_run_events_go_in_with_the_write(pg_only, app, session, queries):
    """A report is two statements, each a transaction of its own: the plan's read, and the
    write, which also moves the run's status and inserts both events when it moves."""
    name = run_name()
    post_job(app, name, 1, status="running")
    post_job(app, name, 2, status="queued")
    queries.reset()
    app.put_json(f"/runs/{name}/jobs/2/", {"status": "running"})  # the run stays running
    assert [s[:len(WRITE)] for s in queries.statements] == [READ[:len(WRITE)], WRITE]
    assert REPORT in queries.statements[1]
    app.put_json(f"/runs/{name}/jobs/1/", {"status": "pass", "success": True})
    queries.reset()
    app.put_json(f"/runs/{name}/jobs/2/", {"status": "pass", "success": True})  # finished
    assert [s[:len(WRITE)] for s in queries.statements] == [READ[:len(WRITE)], WRITE]
    assert REPORT in queries.statements[1]
    session.rollback()
    rows = session.execute(select(Event.type, Event.username, Event.data)
                           .where(Event.run_name == name).order_by(Event.id)).all()
    assert [r.type for r in rows][-3:] == ["job.status", "job.status", "run.status"]
    job_event, run_event = rows[-2].data, rows[-1].data
    assert job_event["results"] == run_event["results"] == {
        "queued": 0, "pass": 2, "running": 0, "waiting": 0, "fail": 0, "dead": 0,
        "unknown": 0, "total": 2}
    assert job_event["run"] == name and rows[-2].username == rows[-1].username == "teuthology"
    assert (job_event["status"], job_event["old_status"]) == ("pass", "running")
    assert run_event == {"run": name, "user": "teuthology", "suite": job_event["suite"],
                         "branch": job_event["branch"],
                         "machine_type": job_event["machine_type"],
                         "status": "finished pass", "old_status": "running",
                         "results": job_event["results"]}
    assert stored(session) == recompute(session)


def test_a_report_keeps_no_transaction_open(pg_only, app, db_engine):
    """Its read and its write each commit as they return (autocommit): the run's lock is
    held for the write statement alone, never across a round trip to the app."""
    name = run_name()
    post_job(app, name, 1, status="queued")
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith("PREPARE"):  # once per connection
            seen.append((statement[:18], conn.connection.dbapi_connection.autocommit))
    event.listen(db_engine, "before_cursor_execute", record)
    try:
        app.put_json(f"/runs/{name}/jobs/1/", {"status": "running"})
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert [autocommit for _, autocommit in seen] == [True, True], seen
    assert seen[-1][0].startswith(WRITE[:18])


def test_a_report_waiting_for_its_run_writes_on_the_run_as_the_holder_left_it(
        pg_only, app, settings, session_factory, db_engine):
    """The report's write waits for the run's row lock in a statement of its own, ahead of
    the write in the same transaction (pg.Prepared's `first`): the write then starts with a
    snapshot taken after the wait. Its counters, status and events add to what the lock's
    holder committed meanwhile, and the run's status event chains on to the holder's."""
    name = run_name()
    post_job(app, name, 1, status="queued")
    post_job(app, name, 2, status="queued")
    with session_factory() as other:
        _version(other, name)  # a transaction: the general path holds the run's lock
        job_service.update_job(other, name, "2", {"status": "running"})
        done = []
        waiter = threading.Thread(target=lambda: done.append(webtest.TestApp(
            make_app(settings, session_factory=session_factory)).put_json(
                f"/runs/{name}/jobs/1/", {"status": "running"}).status_int))
        waiter.start()
        try:
            _wait_for_a_lock_wait(db_engine)
            assert not done  # the report waits for the run
            other.commit()
        finally:
            waiter.join(30)
    assert done == [200]
    with session_factory() as s:
        assert stored(s) == recompute(s)
        assert stored(s)[name]["counts"]["running"] == 2
        assert stored(s)[name]["status"] == "running"
        rows = s.execute(select(Event.type, Event.data).where(Event.run_name == name)
                         .order_by(Event.id)).all()
    assert [r.type for r in rows][-3:] == ["job.status", "run.status", "job.status"]
    assert rows[-1].data["results"]["running"] == 2  # the counters as both writes left them


def _wait_for_a_lock_wait(engine, timeout=30.0):
    """Until a backend of the database waits for a lock."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").scalar()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("no backend waited for the run's lock")
