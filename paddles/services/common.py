"""Small database idioms the services share."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def add_if_new(session: Session, obj) -> bool:
    """INSERT `obj` in a savepoint; False (and nothing added) when a unique key says it
    exists already, e.g. because a concurrent request inserted it first."""
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        return False
    return True


def fetch_one(session: Session, stmt: Select, *, for_update: bool = False,
              missing: Exception | None = None):
    """The row `stmt` selects, or None (or `missing` raised); with `for_update` it is locked
    until the transaction ends and reloaded, so a waiter sees what the lock holder wrote."""
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = session.scalar(stmt)
    if row is None and missing is not None:
        raise missing
    return row


# ---- maintenance scans (the `paddles` admin commands) --------------------------------------

Progress = Callable[[int, int], None]  # progress(done, total)
BATCH = 500  # rows per IN (...) list / per scan step


def in_batches(items: Sequence, size: int = BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
