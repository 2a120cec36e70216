"""GET /events/: replay in id order with filters and a cursor; readers read up to a horizon
below which every id is settled (docs/events.md), so a reader following the cursor under
concurrent writers sees every event exactly once."""
from __future__ import annotations

import json
import random
import threading
import time

import pytest

from paddles.db import begin_write
from paddles.services import events as event_service
from paddles.services import jobs as job_service
from tests.events.conftest import latest, new_events
from tests.factories import post_job, put_job, run_name


def _messages(app, n, **fields):
    return [app.post("/events/", json.dumps({"message": i, **fields}), status=201).json["id"]
            for i in range(n)]


def test_pages_follow_the_cursor(app):
    ids = _messages(app, 7)
    page = app.get("/events/?limit=3").json
    assert [e["id"] for e in page["events"]] == ids[:3] and page["next"] == ids[2]
    assert page["next_href"] == f"http://paddles.test/events/?since={ids[2]}&limit=3"
    page = app.get(f"/events/?since={page['next']}&limit=3").json
    assert [e["id"] for e in page["events"]] == ids[3:6]
    page = app.get(f"/events/?since={page['next']}&limit=3").json
    assert [e["id"] for e in page["events"]] == ids[6:] and page["next"] == ids[6]
    page = app.get(f"/events/?since={page['next']}").json
    assert page["events"] == [] and page["next"] == ids[6]  # poll again from here


def test_filters(app):
    run, other = run_name(), run_name()
    post_job(app, run, "1", status="running")
    post_job(app, other, "1", status="running")
    put_job(app, run, "1", status="pass")
    _messages(app, 1, run=run)
    types = lambda **q: [(e["type"], e["run"]) for e in new_events(app, **q)]
    assert types(type="job.*", run=run) == [("job.created", run), ("job.status", run)]
    assert types(type="run.status,message", run=run) == [
        ("run.status", run), ("run.status", run), ("message", run)]
    assert types(type=["job.s?atus", "run.created"], run=other) == [("run.created", other)]
    assert types(run=run, job="1", type="job.*") == [("job.created", run), ("job.status", run)]
    assert types(type="nothing.*") == []


def test_a_filtered_page_moves_the_cursor_past_what_it_skipped(app):
    _messages(app, 5)
    top = latest(app)
    page = app.get("/events/?type=run.*").json
    assert page["events"] == [] and page["next"] == top


@pytest.mark.parametrize("query, message", [
    ("since=-1", "since must be a non-negative integer"),
    ("since=x", "since must be a non-negative integer"),
    ("limit=0", "limit must be a positive integer"),
    ("type=job.%25", "type must be an event type or a glob"),
])
def test_bad_queries_are_400(app, query, message):
    assert app.get(f"/events/?{query}", status=400).json["message"].startswith(message)


def test_limit_is_capped(app):
    _messages(app, 3)
    assert len(app.get("/events/?limit=100000").json["events"]) == 3


# ---- commit order ---------------------------------------------------------------------------

def _record(session, n=1):
    for i in range(n):
        event_service.record_event(session, "message", {"message": i}, subject="events")


def _postgresql_only(session_factory):
    if session_factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: max(id) is the horizon")


def _open_writer(session_factory):
    """A writing session holding an uncommitted event: (session, its id)."""
    session = session_factory()
    begin_write(session)
    _record(session)
    (event_id,) = event_service.flush_events(session)  # id taken, shared lock held
    return session, event_id


def _commit_one(session_factory) -> int:
    with session_factory.begin() as session:
        begin_write(session)
        _record(session)
        (event_id,) = event_service.flush_events(session)
    return event_id


def _horizon_in_thread(session_factory):
    """A reader asking for the horizon in a thread of its own: (thread, result); result
    gets the horizon and, from the reader's next statement, the ids up to it."""
    result: dict = {}

    def read():
        with session_factory() as reader:
            result["top"] = top = event_service.latest_event_id(reader)
            result["ids"] = [e.id for e in event_service.list_events(reader, since=0)[0]
                             if e.id <= top]
    thread = threading.Thread(target=read)
    thread.start()
    return thread, result


def _advisory_waiters(db_engine) -> int:
    from sqlalchemy import text
    with db_engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND NOT granted AND database = (SELECT oid FROM pg_database "
                                "WHERE datname = current_database())"))


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_writers_commit_together_and_the_horizon_waits_for_the_open_one(
        session_factory, db_engine, ending):
    """Writer A holds an uncommitted event (the lower id); writer B commits a higher one
    meanwhile (the writers' lock is shared). A reader asking for the horizon then waits
    until A has ended, and what it reads next holds A's id (committed) or never will
    (rolled back): no horizon lets a reader move past an id that can still appear."""
    _postgresql_only(session_factory)
    first, first_id = _open_writer(session_factory)
    try:
        second_id = _commit_one(session_factory)  # not held up by A
        assert second_id > first_id
        thread, result = _horizon_in_thread(session_factory)
        deadline = time.monotonic() + 10
        while _advisory_waiters(db_engine) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _advisory_waiters(db_engine) == 1  # the reader queues on the lock
        thread.join(0.3)
        assert thread.is_alive() and "top" not in result  # still waiting for A
        getattr(first, ending)()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        first.close()
    assert result["top"] >= second_id
    expected = [first_id, second_id] if ending == "commit" else [second_id]
    assert [i for i in result["ids"] if i in (first_id, second_id)] == expected


def test_the_horizon_leaves_no_lock_behind(session_factory, db_engine):
    """The exclusive lock is let go in the same statement (session-level, so not held to
    the end of the reader's transaction): a writer goes on while the reader's transaction
    is still open, and the reader's backend holds no advisory lock."""
    from sqlalchemy import text
    _postgresql_only(session_factory)
    _commit_one(session_factory)
    with session_factory() as reader:
        top = event_service.latest_event_id(reader)
        assert reader.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND pid = pg_backend_pid()")) == 0
        assert _commit_one(session_factory) > top  # not held up by the open reader
    with db_engine.connect() as conn:  # nor any backend of this database (the pool's)
        assert conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND database = (SELECT oid FROM pg_database "
                                "WHERE datname = current_database())")) == 0


def test_the_horizon_refuses_a_transaction_snapshot(session_factory):
    """Under REPEATABLE READ the reader's later statements keep the snapshot taken before
    the wait, so the horizon would not hold: refused."""
    _postgresql_only(session_factory)
    with session_factory() as reader:
        reader.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        with pytest.raises(RuntimeError, match="READ COMMITTED"):
            event_service.latest_event_id(reader)


def test_a_failed_horizon_drops_its_connection(session_factory, db_engine):
    """A horizon that fails (here: lock_timeout while a writer holds the lock) invalidates
    its connection, so that no session-level lock can go back to the pool with it."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError
    _postgresql_only(session_factory)
    first, _ = _open_writer(session_factory)
    try:
        with session_factory() as reader:
            connection = reader.connection()
            connection.execute(text("SET lock_timeout = '100ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                event_service.latest_event_id(reader)
            assert connection.invalidated
    finally:
        first.rollback()
        first.close()


def test_replay_under_concurrent_writers_sees_every_id_once(session_factory):
    """Writers commit events (job writes, and messages whose ids are taken early and held a
    little before the commit) while a reader pages with `since`: no gap, no duplicate."""
    # SQLite runs one writer at a time (its busy waits make contention slow): fewer rounds
    sqlite = session_factory.kw["bind"].dialect.name == "sqlite"
    writers, per_writer = (3, 12) if sqlite else (4, 30)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(n):
        rnd = random.Random(n)
        run = run_name()
        try:
            for i in range(per_writer):
                with session_factory.begin() as session:
                    begin_write(session)
                    if i % 3 == 0:
                        _record(session, 2)
                        event_service.flush_events(session)
                        time.sleep(rnd.random() * 0.003)
                    elif i % 3 == 1:
                        job_service.create_job(session, run, {"status": "running"})
                    else:
                        _record(session)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read():
        since = 0
        while True:
            finished = done.is_set()
            with session_factory() as session:
                events, since = event_service.list_events(session, since=since, limit=7)
            seen.extend(e.id for e in events)
            if finished and not events:
                return

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    reader.join(60)
    assert not errors
    with session_factory() as session:
        everything = [e.id for e in event_service.list_events(session, since=0, limit=10**6)[0]]
    assert len(everything) > writers * per_writer
    assert seen == sorted(set(seen))  # increasing: no duplicate
    assert seen == everything  # and nothing skipped


def test_a_notify_failing_after_the_commit_drops_its_connection(session_factory, db_engine,
                                                                monkeypatch, caplog):
    """The NOTIFY runs after the commit, below SQLAlchemy: when the server goes away then,
    the events stay committed, the commit does not fail, and the connection is dropped
    (not rolled back by the pool, which would log its own failure)."""
    _postgresql_only(session_factory)
    monkeypatch.setattr(event_service, "_NOTIFY_SQL",
                        "SELECT pg_terminate_backend(pg_backend_pid())")
    with caplog.at_level("WARNING"):
        event_id = _commit_one(session_factory)
    assert "NOTIFY after an event commit failed" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy")]
    monkeypatch.undo()
    with session_factory() as reader:
        assert event_id in [e.id for e in event_service.list_events(reader, since=0)[0]]
