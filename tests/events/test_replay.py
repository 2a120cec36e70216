"""GET /events/: replay in id order with filters and a cursor; ids commit in order, so a
reader following the cursor under concurrent writers sees every event exactly once."""
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


def test_an_event_commit_waits_for_an_earlier_uncommitted_event(session_factory):
    """T1 has its event id but has not committed: T2's event (a higher id) cannot commit
    before it, so no reader can see T2's id while T1's may still appear."""
    first = session_factory()
    begin_write(first)
    _record(first)
    (first_id,) = event_service.flush_events(first)  # id taken, transaction open
    committed = threading.Event()

    def second():
        with session_factory.begin() as session:
            begin_write(session)
            _record(session)
        committed.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert not committed.wait(0.5)
        with session_factory() as reader:
            assert event_service.list_events(reader, since=0)[0] == []
        first.commit()
        assert committed.wait(10)
    finally:
        first.close()
        thread.join(10)
    with session_factory() as reader:
        ids = [e.id for e in event_service.list_events(reader, since=0)[0]]
    assert ids[0] == first_id and ids == sorted(ids) and len(ids) == 2


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
