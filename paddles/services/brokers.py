"""Each message broker's cursor in the event outbox, and the lease that makes one
`paddles dispatch` at a time its publisher.

A broker is known by its name (its URL, password masked). Its row (models/brokers.py) is made
the first time a dispatcher sees the broker in its configuration, with the cursor at the
newest event: a broker receives what happens from then on, as a new webhook subscription
does. Then, for each batch (paddles/brokers/worker.py):

1. `due` (a read): whether there is anything to publish, and when it may be done;
2. `claim_broker`: the row is taken (skip-locked) if no other dispatcher holds it, leased
   until now + lease, and the next events after the cursor are read;
3. after each confirmed chunk, `record_progress` moves the cursor and renews the lease;
   `record_failure` moves it to the last confirmed event, counts the failure and sets the
   retry after a back-off. Both only act for the dispatcher holding the lease: one that
   lost it (it stalled past the lease) stops there.

Events are published in id order, and the cursor moves only over confirmed (or filtered out)
events, so nothing is skipped; a batch cut short is re-sent from the first unconfirmed
event (at-least-once: consumers dedupe on the event uuid).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import BrokerCursor, Event, utcnow
from . import events as event_service
from . import outbox
from .common import add_if_new, fetch_one


@dataclasses.dataclass
class Claimed:
    name: str
    cursor: int  # the events after this one are the batch
    upto: int  # where the cursor goes once the whole batch is confirmed
    events: list[Event]


def ensure_cursor(session: Session, name: str) -> BrokerCursor:
    """The broker's row, made (at the newest event) when it has none."""
    row = session.scalar(select(BrokerCursor).where(BrokerCursor.name == name))
    if row is None:
        now = utcnow()
        add_if_new(session, BrokerCursor(
            name=name, last_event_id=event_service.latest_event_id(session), published=0,
            failures=0, failures_total=0, next_attempt=now, created=now))
        row = session.scalar(select(BrokerCursor).where(BrokerCursor.name == name))
    assert row is not None  # made just now, or by a dispatcher racing this one
    return row


def due(session: Session, name: str, *, now: dt.datetime | None = None) -> float | None:
    """Seconds until the broker's next batch may start (0: now); None when it is caught up
    (nothing to do until a new event)."""
    row = session.scalar(select(BrokerCursor).where(BrokerCursor.name == name))
    if row is None:
        return 0.0
    if row.last_event_id >= event_service.newest_event_id(session):
        return None
    return max(0.0, (row.next_attempt - (now or utcnow())).total_seconds())


def claim_broker(session: Session, name: str, *, owner: str, lease: float, batch: int,
                 now: dt.datetime | None = None) -> Claimed | None:
    """Lease the broker to `owner` and read its next events; None when another dispatcher
    holds it, or it is not due."""
    now = now or utcnow()
    row = session.scalar(outbox.skip_locked(
        session, select(BrokerCursor).where(BrokerCursor.name == name)))
    if row is None or row.next_attempt > now:
        return None
    events, upto = outbox.events_after(session, row.last_event_id, limit=batch)
    row.owner = owner
    row.next_attempt = outbox.lease_end(now, lease)
    return Claimed(name, row.last_event_id, upto, events)


def _held(session: Session, name: str, owner: str) -> BrokerCursor | None:
    row = fetch_one(session, select(BrokerCursor).where(BrokerCursor.name == name),
                    for_update=True)
    return row if row is not None and row.owner == owner else None


def _advance(row: BrokerCursor, position: int, published: int) -> None:
    """The cursor after the `published` messages the broker confirmed, up to `position`."""
    row.last_event_id = max(row.last_event_id, position)
    row.published += published


def record_progress(session: Session, name: str, *, owner: str, position: int, published: int,
                    lease: float | None, now: dt.datetime | None = None) -> bool:
    """The broker confirmed `published` more messages, up to event `position`. With a
    `lease` the owner goes on (the lease is renewed), without it the batch is done and the
    broker is free. False when `owner` no longer holds the lease (nothing recorded)."""
    now = now or utcnow()
    row = _held(session, name, owner)
    if row is None:
        return False
    _advance(row, position, published)
    row.failures = 0
    row.failing_since = None
    row.last_success = now
    if lease is None:
        row.owner = None
        row.next_attempt = now
    else:
        row.next_attempt = outbox.lease_end(now, lease)
    return True


def record_failure(session: Session, name: str, *, owner: str, position: int, published: int,
                   error: str, backoff_base: float, backoff_max: float,
                   now: dt.datetime | None = None) -> float | None:
    """A batch stopped after `published` confirmed messages (up to event `position`): the
    cursor stays after them, and the broker is retried after a back-off (its seconds, or
    None when `owner` no longer held the lease)."""
    now = now or utcnow()
    row = _held(session, name, owner)
    if row is None:
        return None
    _advance(row, position, published)
    row.failures += 1
    row.failures_total += 1
    row.failing_since = row.failing_since or now
    row.last_error = error[:2000]
    delay = outbox.backoff(backoff_base, backoff_max, row.failures)
    row.owner = None
    row.next_attempt = outbox.lease_end(now, delay)
    return delay


def list_brokers(session: Session) -> tuple[list[BrokerCursor], int]:
    """Every broker's row, by name, and the newest event id (lag = it - the cursor)."""
    rows = list(session.scalars(select(BrokerCursor).order_by(BrokerCursor.name)))
    return rows, event_service.newest_event_id(session)
