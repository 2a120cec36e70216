"""Nodes: inventory, the lock rules of spec section 9, and the per-node job views."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from ..errors import AlreadyExists, Forbidden, InvalidRequest, NodeNotFound, Unavailable
from ..models import Job, Node, job_nodes, utcnow
from ..models.statuses import JOB_STATUS_VALUES, count_key
from . import events
from .common import add_if_new

NOT_FOUND = "node not found"
MAX_LIMIT = 2**31 - 1


# ---- lookups and inventory --------------------------------------------------------------------

def get_node(session: Session, name: str, missing: str = NOT_FOUND) -> Node:
    node = session.scalar(select(Node).where(Node.name == name))
    if node is None:
        raise NodeNotFound(missing)
    return node


def _lock_rows(stmt, *, skip_locked: bool = False):
    """Row-lock the nodes a statement selects (not the joined vm_host rows). SQLite has no
    row locks; its write transactions are serialized by BEGIN IMMEDIATE (paddles.db)."""
    return (stmt.with_for_update(of=Node, skip_locked=skip_locked)
            .execution_options(populate_existing=True))


def _node_for_update(session: Session, name: str, missing: str) -> Node:
    node = session.scalar(_lock_rows(select(Node).where(Node.name == name)))
    if node is None:
        raise NodeNotFound(missing)
    return node


def create_node(session: Session, name: str, fields: Mapping[str, Any], *,
                as_owner: str | None = None) -> Node:
    """Insert a node; the lock checks do not apply, but a lock needs an owner (spec 12.22)
    and an owner-bound token names only its own."""
    check_acting_owner(as_owner, fields.get("locked_by"), "lock")
    if session.scalar(select(Node.id).where(Node.name == name)) is not None:
        raise AlreadyExists(f"Node with name {name} already exists")
    node = Node(name=name, locked=False, is_vm=False)
    _apply(session, node, fields)
    if node.locked and not node.locked_by:
        raise InvalidRequest("Cannot lock without specifying locked_by")
    if not add_if_new(session, node):  # created concurrently
        raise AlreadyExists(f"Node with name {name} already exists")
    events.record_node_created(session, node)
    return node


def ensure_node(session: Session, name: str, machine_type: str | None) -> tuple[Node, bool]:
    """The node of that name, created (with that machine type) when missing; True if new."""
    node = Node(name=name, machine_type=machine_type)
    if add_if_new(session, node):
        events.record_node_created(session, node)
        return node, True
    return session.scalars(select(Node).where(Node.name == name)).one(), False


def update_node(session: Session, name: str, fields: Mapping[str, Any], *,
                as_owner: str | None = None,
                missing: str = "attempted to update a non-existent node") -> Node:
    """PUT /nodes/NODE/: lock checks when the body carries `locked` (400/403, not 500)."""
    node = _node_for_update(session, name, missing)
    check_lock_change(node, fields, as_owner)
    before = events.node_snapshot(node)
    _apply(session, node, fields)
    events.record_node_change(session, node, before)
    return node


def lock_node(session: Session, name: str, fields: Mapping[str, Any], *,
              as_owner: str | None = None) -> Node:
    """PUT|POST /nodes/NODE/lock/: lock, unlock or update one node; the same change as
    update_node, with upstream's 404 message for this route."""
    return update_node(session, name, fields, as_owner=as_owner, missing=NOT_FOUND)


def delete_node(session: Session, name: str) -> None:
    """Job links go with the node (FK cascade); VMs it hosted keep a null vm_host."""
    if session.execute(delete(Node).where(Node.name == name)).rowcount == 0:
        raise NodeNotFound(NOT_FOUND)
    events.record_node_deleted(session, name)


def _conditions(*, machine_types: Iterable[str] | None = None, up: bool | None = None,
                locked: bool | None = None, locked_by: str | None = None,
                os_type: str | None = None, os_version: str | None = None,
                arch: str | None = None) -> list[ColumnElement]:
    """The node filters GET /nodes/ and lock_many share; None means "any"."""
    conds: list[ColumnElement] = []
    if machine_types:
        conds.append(Node.machine_type.in_(list(machine_types)))
    for column, value in ((Node.up, up), (Node.locked, locked), (Node.locked_by, locked_by),
                          (Node.os_type, os_type), (Node.os_version, os_version),
                          (Node.arch, arch)):
        if value is not None:
            conds.append(column == value)
    return conds


def list_nodes(session: Session, *, limit: int | None = None, **filters: Any) -> list[Node]:
    """Nodes ordered by name; vm_host comes in the same SELECT (joined eager load)."""
    stmt = select(Node).where(*_conditions(**filters)).order_by(Node.name).limit(limit)
    return list(session.scalars(stmt))


def machine_types(session: Session) -> list[str]:
    rows = session.scalars(select(Node.machine_type).distinct()
                           .where(Node.machine_type.is_not(None), Node.machine_type != ""))
    return sorted(rows)


# ---- locking (spec 9) -------------------------------------------------------------------------

def check_acting_owner(as_owner: str | None, locked_by: str | None, verb: str) -> None:
    """A token with an owner locks and unlocks only as that owner (services/tokens.py
    acting_owner; None: no restriction). An empty locked_by is left to spec rule 2."""
    if as_owner is not None and locked_by and locked_by != as_owner:
        raise Forbidden(f"Cannot {verb} - this token may only {verb} nodes as {as_owner}")


def _check_owner_edit(node: Node, fields: Mapping[str, Any], as_owner: str | None) -> None:
    """A body without `locked` may still set locked_by (spec 6.3): an owner-bound token may
    neither name another owner nor rewrite the owner of a lock that is not its own (it
    could then unlock it)."""
    if as_owner is None or "locked_by" not in fields:
        return
    check_acting_owner(as_owner, fields["locked_by"], "lock")
    if node.locked and node.locked_by != as_owner:
        raise Forbidden(f"Cannot change locked_by - the node is locked by {node.locked_by}")


def check_lock_change(node: Node, fields: Mapping[str, Any],
                      as_owner: str | None = None) -> None:
    """Spec 9.1, in order. No `locked` in the body (or null): nothing to check. First of
    all, the token's owner rule."""
    locked = fields.get("locked")
    if locked is None:
        _check_owner_edit(node, fields, as_owner)
        return
    owner, description = fields.get("locked_by"), fields.get("description")
    verb = "lock" if locked else "unlock"
    check_acting_owner(as_owner, owner, verb)
    if node.locked == locked:  # 1 / 1': only an identical re-lock by the owner is allowed
        if node.locked_by == owner and description is not None \
                and description == node.description:
            return
        raise Forbidden(f"Cannot {verb} an already-{verb}ed node")
    if not owner:  # 2
        raise InvalidRequest(f"Cannot {verb} without specifying locked_by")
    if not locked:  # unlocking a locked node
        if owner != node.locked_by:  # 3
            raise Forbidden("Cannot unlock - locked_by values must match")
        if description and description != node.description:  # 4
            raise Forbidden("Cannot unlock - description values must match")


def _apply(session: Session, node: Node, fields: Mapping[str, Any]) -> None:
    """Spec 9.2: store every updatable key, then the locked_since/locked_by side effects."""
    was_locked = node.locked
    for key, value in fields.items():
        if key == "vm_host":
            node.vm_host = None if value is None else _vm_host(session, value)
        else:
            setattr(node, key, value)
    if "locked" in fields:
        if node.locked != was_locked:
            node.locked_since = utcnow() if node.locked else None
        if not node.locked:
            node.locked_by = None


def _vm_host(session: Session, name: str) -> Node:
    host = session.scalar(select(Node).where(Node.name == name))
    if host is None:
        raise InvalidRequest("vm_host not found")
    return host


def lock_many(session: Session, *, count: int, locked_by: str, machine_types: list[str],
              description: str | None, os_type: str | None = None,
              os_version: str | None = None, arch: str | None = None,
              as_owner: str | None = None) -> list[Node]:
    """Lock `count` free nodes, first by name, all or none.

    PostgreSQL: candidates are row-locked with FOR UPDATE SKIP LOCKED, so concurrent callers
    each take different rows without waiting; a row another caller locked and released in
    between is re-checked by PostgreSQL before it is returned.
    """
    check_acting_owner(as_owner, locked_by, "lock")
    conds = _conditions(machine_types=machine_types, up=True, locked=False, os_type=os_type,
                        os_version=os_version, arch=arch)
    stmt = select(Node).where(*conds).order_by(Node.name).limit(min(count, MAX_LIMIT))
    nodes = list(session.scalars(_lock_rows(stmt, skip_locked=True)))
    if len(nodes) < count:
        raise Unavailable(f"only {len(nodes)} nodes available")
    change = {"locked": True, "locked_by": locked_by, "description": description}
    for node in nodes:
        check_lock_change(node, change)
        before = events.node_snapshot(node)
        _apply(session, node, change)
        events.record_node_change(session, node, before)
    return nodes


def unlock_many(session: Session, names: list[str], locked_by: str | None, *,
                as_owner: str | None = None) -> list[Node]:
    """Unlock every named node or none; the first offending name in request order decides."""
    check_acting_owner(as_owner, locked_by, "unlock")
    if not names:
        return []
    # Rows are locked in name order, so concurrent unlocks cannot deadlock each other.
    stmt = _lock_rows(select(Node).where(Node.name.in_(set(names))).order_by(Node.name))
    by_name = {node.name: node for node in session.scalars(stmt)}
    if len(set(names)) != len(names) or len(by_name) != len(names):
        raise InvalidRequest("Could not find all nodes!")
    change = {"locked": False, "locked_by": locked_by}  # the description is not checked
    nodes = [by_name[name] for name in names]
    for node in nodes:
        check_lock_change(node, change)
    for node in nodes:
        before = events.node_snapshot(node)
        _apply(session, node, change)
        events.record_node_change(session, node, before)
    return nodes


# ---- jobs per node ----------------------------------------------------------------------------

def node_id_of(session: Session, name: str) -> int:
    node_id = session.scalar(select(Node.id).where(Node.name == name))
    if node_id is None:
        raise NodeNotFound(NOT_FOUND)
    return node_id


def node_job_stats(session: Session, name: str) -> dict[str, int]:
    """All-time job counts of one node, every status key present."""
    node_id = node_id_of(session, name)
    rows = session.execute(
        select(Job.status, func.count())
        .join(job_nodes, job_nodes.c.job_id == Job.id)
        .where(job_nodes.c.node_id == node_id, Job.status.is_not(None))
        .group_by(Job.status))
    stats = dict.fromkeys(JOB_STATUS_VALUES, 0)
    for status, count in rows:
        stats[status.value] = count
    return stats


def job_stats(session: Session, *, since_days: int,
              machine_type: str | None = None) -> dict[str, dict[str, int]]:
    """Per-node status counts of recent jobs in one grouped query, smallest total first.

    A job with no status is counted as `unknown`, as in run results.
    """
    since = utcnow() - dt.timedelta(days=since_days)
    stmt = (select(Node.name, Job.status, func.count())
            .select_from(Node)
            .join(job_nodes, job_nodes.c.node_id == Node.id)
            .join(Job, Job.id == job_nodes.c.job_id)
            .where(Job.posted >= since)
            .group_by(Node.name, Job.status))
    if machine_type:
        stmt = stmt.where(Job.machine_type.in_((machine_type, "multi")),
                          Node.machine_type == machine_type)
    stats: dict[str, dict[str, int]] = {}
    for name, status, count in session.execute(stmt):
        per_node = stats.setdefault(name, {})
        key = count_key(status)
        per_node[key] = per_node.get(key, 0) + count
    ordered = sorted(stats.items(), key=lambda item: (sum(item[1].values()), item[0]))
    return {name: {key: counts[key] for key in JOB_STATUS_VALUES if key in counts}
            for name, counts in ordered}
