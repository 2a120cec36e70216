"""Events: the outbox rows every state change writes, their replay, and message events.

Services call `record_event(session, type, payload, ...)` next to the change they make. The
event is written in the same transaction as the change: nothing is inserted right away; the
pending events go in at commit (a `before_commit` listener calls `flush_events`), and a
rollback drops them with the change. So a request that fails half way (a 400 after a run was
created, a failed commit) leaves no event behind, and no event exists without its change.

Ordering. Replay is `id > since`, so ids must become visible in id order: an id assigned
at INSERT but committed after a higher one would be skipped by a reader that already moved
past it. `flush_events` therefore inserts a transaction's events as its very last statements
and, on PostgreSQL, first takes a transaction-scoped advisory lock that is held until the
commit ends: event-writing transactions take their ids and commit one at a time, in id
order. Everything else the transaction does (row locks included) happens before the lock,
so the lock is held only for the INSERT and the commit itself, and it cannot deadlock with
row locks. SQLite allows one writer at a time anyway. The same transaction sends a
PostgreSQL NOTIFY, delivered at commit, which wakes event streams and the dispatch worker.

Record events outside `session.begin_nested()` blocks: a savepoint rolled back does not
take back an event recorded inside it.

Both listeners, and the topic prefix (settings.event_topic_prefix, in `Session.info`), are
on the session factory paddles builds (db.make_session_factory calls `listen`), not on the
Session class: a Session made otherwise records nothing at commit.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import uuid
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, delete, event, func, insert, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from ..models import Event, utcnow
from ..models.events import EVENT_TYPES

PENDING = "paddles.pending_events"  # Session.info key: events waiting for the commit
CHANNEL = "paddles_events"  # PostgreSQL NOTIFY channel
# pg_advisory_xact_lock key that orders event commits ("paddEVNT")
ADVISORY_KEY = 0x7061646445564E54
DEFAULT_TOPIC_PREFIX = "org.paddles"
TOPIC_PREFIX = "paddles.topic_prefix"  # Session.info key: settings.event_topic_prefix


def session_info(topic_prefix: str | None) -> dict[str, str]:
    """The `info` of a session factory whose sessions write topics under `topic_prefix`."""
    return {TOPIC_PREFIX: (topic_prefix or DEFAULT_TOPIC_PREFIX).strip(".")}


def topic_for(session: Session, kind: str) -> str:
    return f"{session.info.get(TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)}.{kind}"


# ---- writing ------------------------------------------------------------------------------

def record_event(session: Session, type: str, payload: Mapping[str, Any], *, subject: str,
                 run_name: str | None = None, job_id: str | None = None,
                 username: str | None = None, topic: str | None = None) -> dict[str, Any]:
    """Queue an event for this session's transaction; it is inserted at commit."""
    if type not in EVENT_TYPES:  # the one list, which the API documents and filters by
        raise ValueError(f"{type!r} is not one of models.events.EVENT_TYPES")
    row = {"uuid": str(uuid.uuid4()), "time": utcnow(),
           "topic": topic or topic_for(session, type.split(".", 1)[0]), "type": type,
           "subject": subject, "username": username, "run_name": run_name, "job_id": job_id,
           "data": dict(payload)}
    if not session.in_transaction():  # so that a rollback forgets the queue with the rest
        session.begin()
    session.info.setdefault(PENDING, []).append(row)
    return row


def flush_events(session: Session) -> list[int]:
    """Insert the pending events now, after every other change of the transaction; their ids.

    Called at commit by the listener below, or by a service that must answer with the id.
    """
    pending = session.info.pop(PENDING, None)
    if not pending:
        return []
    session.flush()  # every row lock this transaction takes is taken before the lock below
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key), pg_notify(:channel, '')"),
                        {"key": ADVISORY_KEY, "channel": CHANNEL})
    result = session.execute(insert(Event.__table__).returning(Event.__table__.c.id,
                                                               sort_by_parameter_order=True),
                             pending)
    return list(result.scalars())


def listen(factory: sessionmaker) -> None:
    """Pending events inserted at commit, forgotten at rollback, for `factory`'s sessions."""
    event.listen(factory, "before_commit", _flush_on_commit)
    event.listen(factory, "after_transaction_end", _forget_on_end)


def _flush_on_commit(session: Session) -> None:
    if session.info.get(PENDING):
        flush_events(session)


def _forget_on_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed or rolled back
        session.info.pop(PENDING, None)


def pending_events(session: Session) -> list[dict[str, Any]]:
    return list(session.info.get(PENDING, ()))


def post_message(session: Session, *, message: Any, topic: str | None, run_name: str | None,
                 job_id: str | None, username: str | None,
                 data: Mapping[str, Any] | None = None) -> Event:
    """A `message` event posted by test code (LAVA's test-shell events)."""
    subject = "events"
    if run_name is not None:
        subject = f"runs/{run_name}" + (f"/jobs/{job_id}" if job_id is not None else "")
    payload = {"message": message, **({"run": run_name} if run_name else {}),
               **({"job": job_id} if job_id else {}), **(dict(data) if data else {})}
    row = record_event(session, "message", payload, subject=subject, run_name=run_name,
                       job_id=job_id, username=username,
                       topic=topic_for(session, "message") + (f".{topic}" if topic else ""))
    (event_id,) = flush_events(session)
    return Event(id=event_id, **row)


# ---- what the services record -------------------------------------------------------------
# One call per change, next to it in the service. Data stays small: identifiers, statuses and
# the values webhook criteria look at (run user, suite, branch, machine type), taken from
# objects the service has in hand; no extra queries.

def _run_context(run) -> dict[str, Any]:
    return {"run": run.name, "user": run.user, "suite": run.suite, "branch": run.branch,
            "machine_type": run.machine_type}


def _status(value) -> str | None:
    return None if value is None else getattr(value, "value", value)


def record_run_created(session: Session, run) -> None:
    record_event(session, "run.created", {**_run_context(run), "status": _status(run.status)},
                 subject=f"runs/{run.name}", run_name=run.name, username=run.user)


def record_run_status(session: Session, run, old_status) -> None:
    """run.status when the run's status is not `old_status` any more."""
    if run.status == old_status:
        return
    record_event(session, "run.status",
                 {**_run_context(run), "status": _status(run.status),
                  "old_status": _status(old_status), "results": run.counts()},
                 subject=f"runs/{run.name}", run_name=run.name, username=run.user)


def record_run_deleted(session: Session, name: str, user: str | None, suite: str | None,
                       branch: str | None, machine_type: str | None, status) -> None:
    record_event(session, "run.deleted",
                 {"run": name, "user": user, "suite": suite, "branch": branch,
                  "machine_type": machine_type, "status": _status(status)},
                 subject=f"runs/{name}", run_name=name, username=user)


def job_snapshot(job, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The values a job write may change, before it (compared by record_job_write)."""
    return {key: getattr(job, key) for key in fields if key != "updated" and hasattr(job, key)}


def record_job_write(session: Session, run, job, *, created: bool, old_status=None,
                     before: Mapping[str, Any] | None = None, run_was=None) -> None:
    """One job event per write: job.created, else job.status when the status changed, else
    job.updated when a value changed (a write that changes nothing records nothing); then
    run.status when the run's status moved."""
    data = {**_run_context(run), "job_id": job.job_id, "status": _status(job.status)}
    if created:
        type_ = "job.created"
    else:
        changed = [key for key, value in (before or {}).items() if getattr(job, key) != value]
        data["changed"] = changed
        if job.status != old_status:
            type_ = "job.status"
            data["old_status"] = _status(old_status)
        elif changed:
            type_ = "job.updated"
        else:
            type_ = None
    if type_ is not None:
        data["results"] = run.counts()
        record_event(session, type_, data, subject=f"runs/{run.name}/jobs/{job.job_id}",
                     run_name=run.name, job_id=job.job_id, username=run.user)
    if run_was is not None:
        record_run_status(session, run, run_was)


def record_job_deleted(session: Session, run, job_id: str, status, run_was) -> None:
    record_event(session, "job.deleted",
                 {**_run_context(run), "job_id": job_id, "status": _status(status),
                  "results": run.counts()},
                 subject=f"runs/{run.name}/jobs/{job_id}", run_name=run.name, job_id=job_id,
                 username=run.user)
    record_run_status(session, run, run_was)


NODE_KEYS = ("machine_type", "up", "locked", "locked_by", "description")


def _node_values(node) -> dict[str, Any]:
    values = {c.key: getattr(node, c.key) for c in node.__table__.c
              if c.key not in ("id", "vm_host_id")}
    values["vm_host"] = node.vm_host.name if node.vm_host is not None else None
    return values


def node_snapshot(node) -> dict[str, Any]:
    return {"locked": node.locked, "locked_by": node.locked_by, "values": _node_values(node)}


def _node_data(node) -> dict[str, Any]:
    return {"name": node.name, **{key: getattr(node, key) for key in NODE_KEYS}}


def record_node_created(session: Session, node) -> None:
    record_event(session, "node.created", _node_data(node), subject=f"nodes/{node.name}",
                 username=node.locked_by)


def record_node_change(session: Session, node, before: Mapping[str, Any]) -> None:
    """node.locked / node.unlocked when the lock changed, else node.updated when a value did."""
    now = _node_values(node)
    changed = [key for key, value in before["values"].items() if now[key] != value]
    if node.locked != before["locked"]:
        type_ = "node.locked" if node.locked else "node.unlocked"
    elif changed:
        type_ = "node.updated"
    else:
        return
    data = {**_node_data(node), "changed": changed}
    if type_ == "node.unlocked":
        data["old_locked_by"] = before["locked_by"]
    record_event(session, type_, data, subject=f"nodes/{node.name}",
                 username=node.locked_by or before["locked_by"])


def record_node_deleted(session: Session, name: str) -> None:
    record_event(session, "node.deleted", {"name": name}, subject=f"nodes/{name}")


def record_artifact(session: Session, type_: str, run, job, name: str, artifact=None) -> None:
    """artifact.created (a new name), artifact.updated (new content) or artifact.deleted."""
    job_id = job.job_id if job is not None else None
    subject = f"runs/{run.name}" + (f"/jobs/{job_id}" if job_id else "") + f"/artifacts/{name}"
    data = {**_run_context(run), "job_id": job_id, "name": name}
    if artifact is not None:
        data.update(size=artifact.size, sha256=artifact.sha256, kind=_status(artifact.kind),
                    content_type=artifact.content_type)
    record_event(session, type_, data, subject=subject, run_name=run.name, job_id=job_id,
                 username=run.user)


# ---- reading ------------------------------------------------------------------------------

def glob_condition(column, patterns: Iterable[str]) -> ColumnElement | None:
    """`*`/`?` globs as LIKE conditions, OR'ed; None when there are none."""
    conds = []
    for pattern in patterns:
        if "*" not in pattern and "?" not in pattern:
            conds.append(column == pattern)
            continue
        like = (pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                .replace("*", "%").replace("?", "_"))
        conds.append(column.like(like, escape="\\"))
    return or_(*conds) if conds else None


def latest_event_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(Event.id), 0)))


def list_events(session: Session, *, since: int = 0, types: Sequence[str] = (),
                run_name: str | None = None, job_id: str | None = None,
                limit: int = 100) -> tuple[list[Event], int]:
    """(events with id > since in id order, at most `limit`; the cursor to continue from).

    The cursor is the last id returned or, when the page is not full, the newest id that
    existed when the page was read: a filtered reader then does not scan the same
    non-matching events again. Commit-ordered ids make that safe (nothing below it can
    still appear)."""
    top = latest_event_id(session)
    stmt = select(Event).where(Event.id > since, Event.id <= top)
    cond = glob_condition(Event.type, types)
    if cond is not None:
        stmt = stmt.where(cond)
    if run_name is not None:
        stmt = stmt.where(Event.run_name == run_name)
    if job_id is not None:
        stmt = stmt.where(Event.job_id == job_id)
    events = list(session.scalars(stmt.order_by(Event.id).limit(limit)))
    cursor = events[-1].id if len(events) >= limit else max(top, since)
    return events, cursor


def type_matches(event_type: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


# ---- retention ----------------------------------------------------------------------------

def count_events_before(session: Session, cutoff: dt.datetime) -> int:
    return session.scalar(select(func.count()).select_from(Event).where(Event.time < cutoff))


def delete_events_before(session: Session, cutoff: dt.datetime, *, batch: int = 5000) -> int:
    """Delete up to `batch` events older than `cutoff` (their deliveries cascade)."""
    ids = select(Event.id).where(Event.time < cutoff).order_by(Event.id).limit(batch)
    return session.execute(delete(Event).where(Event.id.in_(ids.scalar_subquery()))
                           .execution_options(synchronize_session=False)).rowcount
