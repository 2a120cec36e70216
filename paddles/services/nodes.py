"""Nodes: inventory, the lock rules of spec section 9, and the per-node job views; the node
maintenance of the `paddles` admin commands (node-jobs, node-stats, import-nodes)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from ..errors import (AlreadyExists, Forbidden, InvalidRequest, NodeNotFound, PaddlesError,
                      Unavailable)
from ..models import Job, JobStatus, Node, Run, job_nodes, utcnow
from ..models.base import mapped_columns
from ..models.nodes import NodeValues
from ..models.statuses import JOB_STATUS_VALUES, count_key
from ..schemas.common import convert
from ..schemas.nodes import NODE_FIELDS
from . import events
from .common import Progress, add_if_new, in_batches, tick

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


_NODE_KEYS, _NODE_COLUMNS = mapped_columns(Node)


def list_nodes(session: Session, *, limit: int | None = None,
               **filters: Any) -> list[NodeValues]:
    """Nodes ordered by name, as values straight from the connection (no ORM entities);
    then the hosts their vm_host names, and the hosts' hosts, one SELECT by ids per level,
    and none when no node is a VM (a lock poll). The entity with its host joined eagerly
    (two self-joins) cost twice as much."""
    conn = session.connection()
    stmt = (select(*_NODE_COLUMNS).where(*_conditions(**filters)).order_by(Node.name)
            .limit(limit))
    nodes = [NodeValues.from_row(_NODE_KEYS, row) for row in conn.execute(stmt)]
    known = {node.id: node for node in nodes}
    level = nodes
    while level:
        wanted = {node.vm_host_id for node in level if node.vm_host_id is not None}
        wanted.difference_update(known)
        found = [NodeValues.from_row(_NODE_KEYS, row) for row in conn.execute(
            select(*_NODE_COLUMNS).where(Node.id.in_(wanted)))] if wanted else []
        known.update((node.id, node) for node in found)
        for node in level:  # a host deleted since its VM was read: none
            node.vm_host = known.get(node.vm_host_id) if node.vm_host_id is not None else None
        level = found
    return nodes


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


# ---- maintenance (the `paddles` admin commands: node-jobs, node-stats, import-nodes) -------

FINISHED_FOR_STATS = (JobStatus.PASS, JobStatus.FAIL, JobStatus.DEAD)


def find_node(session: Session, prefix: str) -> Node:
    """The node named exactly `prefix`, else the only node whose name starts with it."""
    node = session.scalar(select(Node).where(Node.name == prefix))
    if node is not None:
        return node
    names = list(session.scalars(select(Node.name)
                                 .where(Node.name.startswith(prefix, autoescape=True))
                                 .order_by(Node.name).limit(11)))
    if not names:
        raise NodeNotFound(f"no node name starts with {prefix!r}")
    if len(names) > 1:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise InvalidRequest(f"{prefix!r} matches several nodes: {shown}")
    return session.scalars(select(Node).where(Node.name == names[0])).one()


def list_node_jobs(session: Session, prefix: str, count: int = 10
                   ) -> tuple[str, list[tuple[str, str, dt.datetime | None]]]:
    """The node's name and its latest `count` jobs by `updated`: (run, job_id, updated)."""
    node = find_node(session, prefix)
    rows = session.execute(
        select(Run.name, Job.job_id, Job.updated)
        .join(Job, Job.run_id == Run.id)
        .join(job_nodes, job_nodes.c.job_id == Job.id)
        .where(job_nodes.c.node_id == node.id)
        .order_by(Job.updated.desc().nulls_last(), Job.id.desc()).limit(count)).all()
    return node.name, [tuple(r) for r in rows]


def _seconds(later: dt.datetime | None, earlier: dt.datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return int(round((later - earlier).total_seconds()))


def get_node_stats(session: Session, days: int, machine_type: str | None = None,
                   now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Finished jobs (pass/fail/dead, with `started`) posted in the last `days` days."""
    now = now or utcnow()
    stmt = (select(Job, Run.name).join(Run, Job.run_id == Run.id)
            .where(Job.status.in_(FINISHED_FOR_STATS), Job.started.is_not(None),
                   Job.posted >= now - dt.timedelta(days=days))
            .order_by(Job.posted, Job.id))
    if machine_type:
        stmt = stmt.where(Job.machine_type == machine_type)
    rows = session.execute(stmt).all()
    nodes: dict[int, list[str]] = {}
    for ids in in_batches([job.id for job, _ in rows]):
        for job_id, name in session.execute(
                select(job_nodes.c.job_id, Node.name)
                .join(Node, Node.id == job_nodes.c.node_id)
                .where(job_nodes.c.job_id.in_(ids)).order_by(Node.name)):
            nodes.setdefault(job_id, []).append(name)
    out = []
    for job, run_name in rows:
        runtime = _seconds(job.updated, job.started)
        out.append({
            "job": f"{run_name}/{job.job_id}",
            "status": job.status.value,
            "suite": job.suite,
            "nodes": nodes.get(job.id, []),
            "duration": job.duration,
            "runtime": runtime,
            "waited": None if runtime is None or job.duration is None
            else runtime - job.duration,
            "description": job.description,
        })
    return out


# ---- import-nodes -------------------------------------------------------------------------

@dataclasses.dataclass
class ImportReport:
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # exist, no --update
    ignored_keys: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def normalise_node_records(data: Any) -> list[dict[str, Any]]:
    """A list of node objects with `name`, or a mapping name -> attributes, as records."""
    if isinstance(data, dict):
        records = []
        for name, attrs in data.items():
            if attrs is None:
                attrs = {}
            if not isinstance(attrs, dict):
                raise InvalidRequest(f"node {name!r}: attributes must be a mapping")
            records.append({**attrs, "name": name})
    elif isinstance(data, list):
        records = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or not item.get("name"):
                raise InvalidRequest(f"entry {i}: a node object with a 'name' is required")
            records.append(dict(item))
    else:
        raise InvalidRequest("expected a list of node objects or a mapping of name to node")
    seen: set[str] = set()
    for record in records:
        name = record["name"]
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidRequest(f"node name {name!r} must be a string of 1-256 characters")
        if name in seen:
            raise InvalidRequest(f"node {name!r} appears twice")
        seen.add(name)
    return records


def _node_fields(name: str, record: Mapping[str, Any], ignored: dict[str, list[str]]
                 ) -> dict[str, Any]:
    """The record's updatable node keys, validated as a node PUT body is (schemas)."""
    fields: dict[str, Any] = {}
    for key, value in record.items():
        key = str(key).replace("-", "_")
        if key == "name":
            continue
        if key not in NODE_FIELDS:
            ignored.setdefault(key, []).append(name)
            continue
        if value is None and key in ("locked", "is_vm"):
            continue  # as in the API: null means absent
        if isinstance(value, (dt.datetime, dt.date)):  # YAML reads timestamps itself
            value = value.isoformat()
        try:
            fields[key] = convert(key, NODE_FIELDS[key], value)
        except InvalidRequest as exc:
            raise InvalidRequest(f"node {name!r}: {exc.message}") from None
    return fields


_NODE_STATE = ("description", "up", "machine_type", "is_vm", "vm_host_id", "os_type",
               "os_version", "arch", "locked", "locked_since", "locked_by", "mac_address",
               "ssh_pub_key")


def _state(node: Node) -> tuple:
    return tuple(getattr(node, key) for key in _NODE_STATE)


def import_nodes(session: Session, records: Sequence[Mapping[str, Any]], *,
                 update: bool = False, progress: Progress | None = None) -> ImportReport:
    """Create the nodes that do not exist; with `update`, rewrite the given keys of the rest.

    Each node goes through the node service (services.nodes): creation needs an owner for a
    lock, an update that changes `locked` passes the API's lock checks (an unchanged `locked`
    is left out, so a file can be imported again). A `locked_since` in the file is kept as
    given. Keys that are not updatable node keys are ignored and reported. `vm_host` names a
    node in the database or in the same file.
    """
    report = ImportReport()
    wanted = [(r["name"], _node_fields(r["name"], r, report.ignored_keys)) for r in records]
    names = [name for name, _ in wanted]
    existing: dict[str, Node] = {}
    for chunk in in_batches(names):
        existing.update((n.name, n) for n in session.scalars(
            select(Node).where(Node.name.in_(chunk)).with_for_update(of=Node)))
    hosts = {f["vm_host"] for _, f in wanted if f.get("vm_host")} - set(names) - set(existing)
    if hosts:
        unknown = sorted(hosts - set(session.scalars(select(Node.name)
                                                     .where(Node.name.in_(sorted(hosts))))))
        if unknown:
            raise InvalidRequest(f"unknown vm_host: {', '.join(unknown)}")

    def node_call(call, name, fields):
        try:
            node = call(session, name, fields)
        except PaddlesError as exc:
            raise type(exc)(f"node {name!r}: {exc.message}") from None
        if "locked_since" in fields:  # a time the file gives wins over "locked now"
            node.locked_since = fields["locked_since"]
        return node

    total, done = 2 * len(wanted), 0
    for name, fields in wanted:  # 1: new nodes, without vm_host (it may come later)
        if name not in existing:
            node_call(create_node, name,
                      {k: v for k, v in fields.items() if k != "vm_host"})
            report.created.append(name)
        done += 1
        tick(progress, done, total)
    session.flush()
    for name, fields in wanted:  # 2: vm_host of new nodes; updates of existing ones
        node = existing.get(name)
        if node is None:
            if fields.get("vm_host") is not None:
                node_call(update_node, name, {"vm_host": fields["vm_host"]})
        elif not update:
            report.skipped.append(name)
        else:
            before = _state(node)
            if "locked" in fields and fields["locked"] == node.locked:
                fields = {k: v for k, v in fields.items() if k != "locked"}
            node = node_call(update_node, name, fields)
            session.flush()
            (report.updated if _state(node) != before else report.unchanged).append(name)
        done += 1
        tick(progress, done, total)
    session.flush()
    return report
