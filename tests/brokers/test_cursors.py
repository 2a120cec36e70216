"""A broker's cursor and lease (services/brokers.py): made at the newest event, taken by one
dispatcher at a time, moved only by the holder, retried after a back-off; and two real
dispatchers sharing one broker publish every event in order, neither at the same time."""
from __future__ import annotations

import datetime as dt

from paddles.db import begin_write
from sqlalchemy import select

from paddles.models import BrokerCursor, Event, utcnow
from paddles.services import brokers
from paddles.services.events import record_event
from tests.brokers.conftest import broker_settings, ids_in_order, settle
from tests.events.test_webhooks import Running

NAME = "amqp://guest@127.0.0.1:5672/?exchange=paddles"


def _events(session_factory, n: int) -> None:
    with session_factory.begin() as session:
        for i in range(n):
            record_event(session, "message", {"message": i}, subject="events")


def _ids(session_factory) -> list[int]:
    with session_factory() as session:
        return list(session.scalars(select(Event.id).order_by(Event.id)))


def _cursor(session_factory) -> int:
    """The new broker's cursor (ids go on across tests on SQLite: AUTOINCREMENT)."""
    with session_factory.begin() as session:
        return brokers.ensure_cursor(session, NAME).last_event_id



def test_a_new_broker_starts_at_the_newest_event(session_factory):
    _events(session_factory, 3)
    with session_factory() as session:
        newest = brokers.event_service.latest_event_id(session)
    with session_factory.begin() as session:
        row = brokers.ensure_cursor(session, NAME)
        assert (row.last_event_id, row.published, row.failures) == (newest, 0, 0)
    with session_factory.begin() as session:  # a second time: the same row
        assert brokers.ensure_cursor(session, NAME).id == row.id
    with session_factory() as session:
        assert brokers.due(session, NAME) is None  # caught up: nothing to do
    _events(session_factory, 2)
    with session_factory() as session:
        assert brokers.due(session, NAME) == 0.0


def test_one_dispatcher_at_a_time_holds_a_broker(session_factory):
    base = _cursor(session_factory)
    _events(session_factory, 5)
    ids = _ids(session_factory)  # not always from base + 1: SQLite never reuses an id
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        first = brokers.claim_broker(session, NAME, owner="a", lease=30, batch=3, now=now)
    assert (first.cursor, first.upto) == (base, ids[2])
    assert [e.id for e in first.events] == ids[:3]
    with session_factory.begin() as session:  # b: held by a until the lease ends
        begin_write(session)
        assert brokers.claim_broker(session, NAME, owner="b", lease=30, batch=3,
                                    now=now + dt.timedelta(seconds=10)) is None
        assert not brokers.record_progress(session, NAME, owner="b", position=ids[4],
                                           published=5, lease=None)
    with session_factory.begin() as session:  # a renews, then finishes its batch
        assert brokers.record_progress(session, NAME, owner="a", position=ids[1],
                                       published=2, lease=30)
        assert brokers.record_progress(session, NAME, owner="a", position=ids[2],
                                       published=1, lease=None)
    with session_factory.begin() as session:  # free: b takes the rest
        second = brokers.claim_broker(session, NAME, owner="b", lease=30, batch=10)
        assert second.cursor == ids[2]
        assert [e.id for e in second.events] == ids[3:]
    with session_factory() as session:
        row = session.query(BrokerCursor).one()
        assert (row.last_event_id, row.published, row.owner) == (ids[2], 3, "b")


def test_a_dead_dispatchers_lease_runs_out(session_factory):
    base = _cursor(session_factory)
    _events(session_factory, 2)
    now = utcnow()
    with session_factory.begin() as session:
        assert brokers.claim_broker(session, NAME, owner="dead", lease=5, batch=10, now=now)
    with session_factory.begin() as session:
        later = now + dt.timedelta(seconds=6)
        claim = brokers.claim_broker(session, NAME, owner="alive", lease=5, batch=10, now=later)
        assert claim is not None and claim.cursor == base  # nothing skipped: sent again
    with session_factory.begin() as session:  # the dead one, back, may not move the cursor
        assert brokers.record_failure(session, NAME, owner="dead", position=base + 99,
                                      published=2, error="x", backoff_base=1,
                                      backoff_max=2) is None


def test_a_failure_keeps_the_confirmed_part_and_backs_off(session_factory):
    _cursor(session_factory)
    _events(session_factory, 10)
    ids = _ids(session_factory)
    now = utcnow()
    delays = []
    for attempt in range(3):
        with session_factory.begin() as session:
            claim = brokers.claim_broker(session, NAME, owner="a", lease=30, batch=100,
                                         now=now)
            assert claim is not None
            delays.append(brokers.record_failure(
                session, NAME, owner="a", position=ids[3] if attempt == 0 else claim.cursor,
                published=4 if attempt == 0 else 0, error="ConnectionRefusedError",
                backoff_base=1, backoff_max=3, now=now))
        now += dt.timedelta(seconds=delays[-1])
    assert 1 <= delays[0] <= 1.1 and 2 <= delays[1] <= 2.2 and 3 <= delays[2] <= 3.3
    with session_factory() as session:
        row = session.query(BrokerCursor).one()
        assert (row.last_event_id, row.published, row.failures, row.failures_total) == \
            (ids[3], 4, 3, 3)
        assert row.last_error == "ConnectionRefusedError" and row.owner is None
        assert brokers.due(session, NAME, now=now - dt.timedelta(seconds=1)) > 0
    with session_factory.begin() as session:  # success clears the run of failures
        brokers.claim_broker(session, NAME, owner="a", lease=30, batch=100, now=now)
        brokers.record_progress(session, NAME, owner="a", position=ids[9], published=6,
                                lease=None)
    with session_factory() as session:
        row = session.query(BrokerCursor).one()
        assert (row.last_event_id, row.published, row.failures, row.failures_total) == \
            (ids[9], 10, 0, 3)
        assert row.failing_since is None and row.last_success is not None


def test_two_dispatchers_share_a_broker(target, database_url, tmp_path, session_factory):
    """Both run, one publishes at a time: every event once at least, in order."""
    from paddles.db import with_topic_prefix
    settings = broker_settings(database_url, tmp_path, target)
    sessions = with_topic_prefix(session_factory, target.prefix)
    with Running(settings), Running(settings):
        for _ in range(10):
            _events(sessions, 100)
        got = settle(target, 1000)
    ids = ids_in_order(got)
    assert len(ids) == 1000 and ids == sorted(ids)
    # at-least-once, and no interleaving: a repeated run of ids only ever goes back to the
    # start of an unconfirmed chunk, never mixes two publishers' streams
    seen = [m["body"]["id"] for m in got]
    assert len(seen) - len(ids) <= 100 * 2, "more duplicates than lease take-overs allow"
