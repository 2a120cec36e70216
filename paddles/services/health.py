"""Liveness and readiness: what a load balancer or supervisor asks before sending traffic."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import migrations
from ..errors import Unavailable


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration this code ships (the scripts do not change while it runs)."""
    return migrations.head_revision("")


def check_ready(session: Session) -> dict:
    """`{"database": "ok", "migrations": "current", "revision": ...}`, or Unavailable naming
    what is wrong: the database unreachable, or its schema not at this code's head."""
    try:
        session.execute(text("SELECT 1"))
        current = None
        if inspect(session.connection()).has_table("alembic_version"):
            current = session.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        raise Unavailable(f"database unreachable: {_first_line(exc.orig or exc)}",
                          headers={"Retry-After": "5"}) from None
    head = head_revision()
    if current != head:
        raise Unavailable(f"database schema is at revision {current or 'none (empty)'}, "
                          f"this code needs {head}: run `paddles migrate`",
                          headers={"Retry-After": "30"})
    return {"database": "ok", "migrations": "current", "revision": head}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
