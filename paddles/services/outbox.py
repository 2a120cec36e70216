"""Reading the event outbox behind a cursor, and leasing the rows that hold cursors and work.

The one mechanism behind everything `paddles dispatch` does, shared by webhooks
(services/webhooks.py: a cursor per subscription, a lease per delivery) and message brokers
(services/brokers.py: a cursor and a lease per broker):

- a cursor is the id of the last event a consumer has dealt with; `events_after` reads the
  next events in id order, up to a settled horizon (events.latest_event_id: every id below it
  is committed or gone), so a cursor that moves to it never skips an event committed later;
- a row that several dispatchers may want is taken with `skip_locked` (FOR UPDATE SKIP
  LOCKED on PostgreSQL: another dispatcher takes other rows instead of waiting; SQLite has
  one writer at a time anyway), and held beyond the transaction by a lease: a due time
  (`next_attempt`) set to now + the lease, so that a dispatcher that dies holding it only
  delays the work until the lease ends;
- a failed attempt is retried after `backoff`.
"""
from __future__ import annotations

import datetime as dt
import random

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..models import Event
from . import events as event_service


def skip_locked(session: Session, stmt: Select[Any], *, of: Any = None) -> Select[Any]:
    """`stmt` locking the rows it reads, skipping those another transaction holds
    (PostgreSQL); unchanged on SQLite, where a writer is alone."""
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=of, skip_locked=True)
    return stmt.execution_options(populate_existing=True)


def events_after(session: Session, cursor: int, *, limit: int,
                 top: int | None = None) -> tuple[list[Event], int]:
    """(up to `limit` events with id > cursor, in id order; where the cursor may move once
    they are dealt with): the last one's id when the page is full, else the newest event
    id (`top`, read now when not given), so that events a consumer's filter skips are not
    read again."""
    top = event_service.latest_event_id(session) if top is None else top
    if cursor >= top:
        return [], cursor
    events = list(session.scalars(select(Event).where(Event.id > cursor, Event.id <= top)
                                  .order_by(Event.id).limit(limit)))
    return events, (events[-1].id if len(events) >= limit else top)


def lease_end(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=seconds)


def backoff(base: float, cap: float, attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): doubling from `base`, capped at
    `cap`, plus 0-10 % jitter so that retries of many consumers spread out."""
    delay = min(cap, base * 2.0 ** (max(1, attempt) - 1))
    return float(delay * (1 + random.random() * 0.1))
