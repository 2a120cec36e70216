"""Small database idioms the services share."""
from __future__ import annotations

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
