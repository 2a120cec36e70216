"""paddles.services.nodes: the lock rules as a table, row locking, and no commits."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from paddles.errors import Forbidden, InvalidRequest, Unavailable
from paddles.models import Node
from paddles.services import nodes as node_service

ALICE, BOB = "alice@host", "bob@host"


def node(locked=False, locked_by=None, description=None):
    return Node(name="n", locked=locked, locked_by=locked_by, description=description)


LOCKED = dict(locked=True, locked_by=ALICE, description="run-a")
FREE = dict(locked=False, locked_by=None, description="run-a")


# (stored node, body) -> None when allowed, else (exception, message); spec 9.1 in order
@pytest.mark.parametrize("stored,body,expected", [
    (FREE, {}, None),
    (FREE, {"locked": None, "locked_by": ""}, None),
    (LOCKED, {"up": False}, None),
    # 1: already in the requested state
    (LOCKED, {"locked": True, "locked_by": BOB, "description": "run-a"},
     (Forbidden, "Cannot lock an already-locked node")),
    (LOCKED, {"locked": True, "locked_by": ALICE, "description": "run-b"},
     (Forbidden, "Cannot lock an already-locked node")),
    (LOCKED, {"locked": True, "locked_by": ALICE},
     (Forbidden, "Cannot lock an already-locked node")),
    (FREE, {"locked": False, "locked_by": ALICE, "description": "run-a"},
     (Forbidden, "Cannot unlock an already-unlocked node")),
    (FREE, {"locked": False}, (Forbidden, "Cannot unlock an already-unlocked node")),
    # 1': identical re-lock by the owner
    (LOCKED, {"locked": True, "locked_by": ALICE, "description": "run-a"}, None),
    # 2: no owner
    (FREE, {"locked": True, "description": "d"},
     (InvalidRequest, "Cannot lock without specifying locked_by")),
    (FREE, {"locked": True, "locked_by": ""},
     (InvalidRequest, "Cannot lock without specifying locked_by")),
    (LOCKED, {"locked": False, "locked_by": None},
     (InvalidRequest, "Cannot unlock without specifying locked_by")),
    # 3: another owner unlocking
    (LOCKED, {"locked": False, "locked_by": BOB, "description": "run-a"},
     (Forbidden, "Cannot unlock - locked_by values must match")),
    (LOCKED, {"locked": False, "locked_by": BOB, "description": "other"},
     (Forbidden, "Cannot unlock - locked_by values must match")),
    # 4: another description
    (LOCKED, {"locked": False, "locked_by": ALICE, "description": "other"},
     (Forbidden, "Cannot unlock - description values must match")),
    # 5: allowed
    (LOCKED, {"locked": False, "locked_by": ALICE}, None),
    (LOCKED, {"locked": False, "locked_by": ALICE, "description": ""}, None),
    (LOCKED, {"locked": False, "locked_by": ALICE, "description": "run-a"}, None),
    (FREE, {"locked": True, "locked_by": BOB}, None),
])
def test_lock_checks(stored, body, expected):
    subject = node(**stored)
    if expected is None:
        node_service.check_lock_change(subject, body)
        return
    exc_type, message = expected
    with pytest.raises(exc_type) as info:
        node_service.check_lock_change(subject, body)
    assert info.value.message == message


@pytest.fixture
def smithi(session):
    names = [f"smithi{i:03d}.x" for i in range(1, 6)]
    session.add_all(Node(name=n, machine_type="smithi", up=True, locked=False, is_vm=False)
                    for n in reversed(names))
    session.commit()
    return names


def test_lock_many_is_deterministic_by_name(session, smithi):
    got = node_service.lock_many(session, count=2, locked_by=ALICE, machine_types=["smithi"],
                                 description="run-a")
    assert [n.name for n in got] == smithi[:2]
    assert all(n.locked and n.locked_by == ALICE and n.locked_since for n in got)


def test_lock_many_row_locks_with_skip_locked_on_postgresql(session, smithi, queries,
                                                             backend):
    node_service.lock_many(session, count=1, locked_by=ALICE, machine_types=["smithi"],
                           description=None)
    [select_sql] = [s for s in queries.statements if s.lstrip().upper().startswith("SELECT")]
    if backend == "postgresql":
        assert "FOR UPDATE OF nodes SKIP LOCKED" in select_sql
    else:  # SQLite: BEGIN IMMEDIATE serializes writers instead
        assert "FOR UPDATE" not in select_sql


def test_lock_many_short_raises_before_changing_anything(session, smithi):
    with pytest.raises(Unavailable) as info:
        node_service.lock_many(session, count=6, locked_by=ALICE, machine_types=["smithi"],
                               description=None)
    assert info.value.message == "only 5 nodes available"
    assert not any(n.locked for n in session.scalars(select(Node)))


def test_unlock_many_checks_every_node_before_changing_any(session, smithi):
    node_service.lock_many(session, count=2, locked_by=ALICE, machine_types=["smithi"],
                           description=None)
    with pytest.raises(Forbidden):
        node_service.unlock_many(session, [smithi[0], smithi[1], smithi[2]], ALICE)
    # nothing applied even before the request's rollback
    assert [n.locked_by for n in session.scalars(select(Node).order_by(Node.name))][:3] == [
        ALICE, ALICE, None]


def test_services_never_commit(session, smithi):
    node_service.create_node(session, "new.x", {"machine_type": "mira"})
    node_service.lock_node(session, smithi[0], {"locked": True, "locked_by": ALICE})
    node_service.delete_node(session, smithi[1])
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Node)) == 5
    assert not session.scalar(select(Node.locked).where(Node.name == smithi[0]))
