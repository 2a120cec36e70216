"""Heartbeat PUTs (body of only name/job_id): refresh `updated`, change nothing else, cheaply."""
from __future__ import annotations

import json

from sqlalchemy import event
from sqlalchemy.orm import Session

from paddles.db import make_engine
from paddles.services import jobs as job_service
from paddles.services.jobs import _pg_heartbeat

from tests.factories import post_job, run_name


def _put(app, run, job_id, body, status=200):
    return app.put(f"/runs/{run}/jobs/{job_id}/", json.dumps(body), status=status)


def test_heartbeat_refreshes_updated_of_job_and_run_only(app):
    run = run_name()
    post_job(app, run, job_id=1, status="running", name=run)
    before = app.get(f"/runs/{run}/").json
    _put(app, run, 1, {"name": run, "job_id": "1"})
    after = app.get(f"/runs/{run}/").json
    assert after["updated"] > before["updated"]
    assert after["jobs"][0]["updated"] == after["updated"]
    for key in ("status", "results", "started", "posted"):
        assert after[key] == before[key]
    job_before, job_after = before["jobs"][0], after["jobs"][0]
    assert {k: v for k, v in job_after.items() if k != "updated"} == \
        {k: v for k, v in job_before.items() if k != "updated"}


def test_heartbeat_stores_the_name_it_carries(app):
    run = run_name()
    post_job(app, run, job_id=1, name="old")
    _put(app, run, 1, {"name": "new"})
    assert app.get(f"/runs/{run}/jobs/1/").json["name"] == "new"


def test_empty_object_is_a_heartbeat(app):
    run = run_name()
    post_job(app, run, job_id=1, status="queued")
    _put(app, run, 1, {})
    assert app.get(f"/runs/{run}/jobs/1/").json["status"] == "queued"


def test_heartbeat_for_unknown_job_is_404_and_leaves_the_run_alone(app):
    run = run_name()
    post_job(app, run, job_id=1)
    before = app.get(f"/runs/{run}/").json["updated"]
    resp = _put(app, run, 2, {"name": run, "job_id": "2"}, status=404)
    assert resp.json == {"message": "attempted to update a non-existent job"}
    assert app.get(f"/runs/{run}/").json["updated"] == before
    resp = _put(app, "no-such-run", 1, {"job_id": "1"}, status=404)
    assert resp.json == {"message": "attempted to update a non-existent job"}


def test_heartbeat_is_one_update_with_asynchronous_commit_on_postgresql(app, queries,
                                                                         db_engine):
    run = run_name()
    post_job(app, run, job_id=1, status="running")
    queries.reset()
    _put(app, run, 1, {"name": run, "job_id": "1"})
    if db_engine.dialect.name == "postgresql":
        # the statement prepared on the connection (PREPARE once per connection) runs
        executed = [s for s in queries.statements if not s.startswith("PREPARE")]
        assert executed == [_pg_heartbeat(True).execute_sql], queries.statements
        # the run's UPDATE is a CTE of the job's: one statement, the run row locked first
        prepared = _pg_heartbeat(True).prepare_sql
        assert prepared.startswith("PREPARE paddles_heartbeat_named AS WITH")
        assert "set_config('synchronous_commit', 'off', true)" in prepared
        assert "UPDATE runs" in prepared and "UPDATE jobs" in prepared
    else:  # SQLite: no UPDATE in a subquery; two statements
        assert [s.split()[0] for s in queries.statements] == ["UPDATE", "UPDATE"]


def test_only_heartbeats_commit_asynchronously(app, queries, db_engine):
    run = run_name()
    post_job(app, run, job_id=1, status="queued")
    queries.reset()
    _put(app, run, 1, {"status": "running"})
    post_job(app, run, job_id=2)
    app.delete(f"/runs/{run}/jobs/2/")
    assert not any("set_config" in s for s in queries.statements)
    if db_engine.dialect.name == "postgresql":
        # SET LOCAL ends with the heartbeat's transaction: the connection is back to "on"
        from paddles.services import jobs as job_service
        with db_engine.connect() as conn:
            with Session(bind=conn) as session:
                # first in its transaction: the statement commits on its own
                job_service.update_job(session, run, "1", {"name": run})
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
                session.commit()
            with Session(bind=conn) as session:
                # after other statements: part of their transaction, until its COMMIT
                conn.exec_driver_sql("SELECT 1")
                job_service.update_job(session, run, "1", {"name": run})
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            conn.commit()  # the transaction is the connection's (begun before the session)
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


class _Autocommitted:
    """Each statement the engine runs, and whether psycopg2 was in autocommit for it (then it
    sends no BEGIN before it, and no COMMIT or ROLLBACK goes out after it)."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __call__(self, conn, cursor, statement, *args):
        if statement.startswith("BEGIN"):  # SQLite's own (psycopg2's are not seen here)
            return
        # `is True`: Python 3.12's sqlite3 has an autocommit attribute too, -1 (legacy
        # transaction control, paddles' SQLite mode) unless set
        self.seen.append((statement.split()[0],
                          getattr(conn.connection.dbapi_connection, "autocommit", False) is True))

    def __enter__(self):
        self.seen.clear()
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self)


def test_a_heartbeat_and_a_read_are_one_round_trip_each_on_postgresql(app, db_engine):
    """No BEGIN and no COMMIT around a heartbeat's one statement (db.execute_alone), nor
    around a GET's statements (db.reading)."""
    run = run_name()
    post_job(app, run, job_id=1, status="running")
    expected = db_engine.dialect.name == "postgresql"
    _put(app, run, 1, {"name": run, "job_id": "1"})  # prepared on its connection
    with _Autocommitted(db_engine) as sent:
        _put(app, run, 1, {"name": run, "job_id": "1"})
    assert sent.seen == ([("EXECUTE", True)] if expected else
                         [("UPDATE", False), ("UPDATE", False)]), sent.seen
    with _Autocommitted(db_engine) as sent:
        app.get(f"/runs/{run}/jobs/1/")
    assert sent.seen == [("SELECT", expected)]
    with _Autocommitted(db_engine) as sent:  # a report: its read, then its one write (prepared)
        _put(app, run, 1, {"status": "pass"})
    if expected:
        assert [s for s in sent.seen if s[0] != "PREPARE"] == [("EXECUTE", True),
                                                               ("EXECUTE", True)], sent.seen
    else:
        assert sent.seen and not any(autocommit for _, autocommit in sent.seen)
    with _Autocommitted(db_engine) as sent:  # a new job in the run: its one write, no read
        post_job(app, run, job_id=2, status="queued")
    if expected:
        assert [s for s in sent.seen if s[0] != "PREPARE"] == [("EXECUTE", True)], sent.seen
    with _Autocommitted(db_engine) as sent:  # a write of the general path: a transaction
        post_job(app, run_name(), job_id=1, status="queued")  # (a new run: the write found
        # no run and wrote nothing)
    # (after the planned write's EXECUTE, and its PREPARE on a connection that had not
    # prepared it yet)
    general = [s for s in sent.seen if s[0] != "PREPARE"][1:] if expected else sent.seen
    assert general and not any(autocommit for _, autocommit in general), sent.seen
    # the connections went back to the pool transactional
    with db_engine.connect() as conn:
        assert getattr(conn.connection.dbapi_connection, "autocommit", False) is not True


def _heartbeat_session(engine, run, **fields):
    with engine.connect() as conn:
        with Session(bind=conn) as session:
            job_service.update_job(session, run, "1", {"name": run, **fields})
            session.commit()


def test_the_heartbeat_is_prepared_once_per_connection(app, db_engine, queries):
    if db_engine.dialect.name != "postgresql":
        return
    run = run_name()
    post_job(app, run, job_id=1, status="running")
    engine = make_engine(db_engine.url, pool_size=1, max_overflow=0)
    try:
        seen = _Autocommitted(engine)
        with seen:
            for _ in range(3):
                _heartbeat_session(engine, run)
        assert [s for s, _ in seen.seen] == ["PREPARE", "EXECUTE", "EXECUTE", "EXECUTE"]
        # a connection whose session lost it (DISCARD ALL, a PgBouncer reset) prepares again
        with engine.connect() as conn:
            conn.connection.dbapi_connection.autocommit = True  # DISCARD needs no transaction
            conn.exec_driver_sql("DISCARD ALL")
        with seen:
            _heartbeat_session(engine, run)
            _heartbeat_session(engine, run)
        assert [s for s, _ in seen.seen] == ["EXECUTE", "PREPARE", "EXECUTE", "EXECUTE"]
    finally:
        engine.dispose()
    assert app.get(f"/runs/{run}/jobs/1/").json["status"] == "running"


def test_without_prepared_statements_the_heartbeat_is_its_plain_statement(app, db_engine):
    if db_engine.dialect.name != "postgresql":
        return
    run = run_name()
    post_job(app, run, job_id=1, status="running")
    before = app.get(f"/runs/{run}/jobs/1/").json["updated"]
    engine = make_engine(db_engine.url, pool_size=1, max_overflow=0,
                         prepared_statements=False)
    try:
        with _Autocommitted(engine) as seen:
            _heartbeat_session(engine, run)
        assert seen.seen == [("WITH", True)]
    finally:
        engine.dispose()
    assert app.get(f"/runs/{run}/jobs/1/").json["updated"] > before
