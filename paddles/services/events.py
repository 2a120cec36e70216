"""Events: the outbox rows every state change writes, their replay, and message events.

Services call `record_event(session, type, payload, ...)` next to the change they make. The
event is written in the same transaction as the change: nothing is inserted right away; the
pending events go in at commit (a `before_commit` listener calls `flush_events`), and a
rollback drops them with the change. So a request that fails half way (a 400 after a run was
created, a failed commit) leaves no event behind, and no event exists without its change.

Ordering. Replay is `id > since`, so a reader must never move past an id that can still
appear: an id is assigned at INSERT but becomes visible at COMMIT, and commits do not come
in id order. Writers and readers share one advisory key (docs/events.md, "No id is
skipped"). `flush_events` inserts a transaction's events as its very last statements, after
taking the key in SHARED mode (transaction-scoped, held until the commit has ended): every
id is handed out while its writer holds the shared lock, and writers still commit together.
Everything else the transaction does (row locks included) happens before the lock, so it
cannot deadlock with row locks. A reader asks `latest_event_id` for a horizon: it reads
max(id), then takes the key EXCLUSIVELY and lets go at once, which waits for every writer
that held the shared lock when max(id) was read; from the reader's next statement on, every
id up to the horizon is committed or gone for good. SQLite allows one writer at a time
anyway. After the commit, the same connection sends a PostgreSQL NOTIFY (a transaction of
its own: a NOTIFY inside the writing transaction would serialise every event commit on
PostgreSQL's notify queue lock), which wakes event streams and the dispatch worker.

Record events outside `session.begin_nested()` blocks: a savepoint rolled back does not
take back an event recorded inside it.

Both listeners, and the topic prefix (settings.event_topic_prefix, in `Session.info`), are
on the session factory paddles builds (db.make_session_factory calls `listen`), not on the
Session class: a Session made otherwise records nothing at commit.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import typing
import uuid
from typing import Any
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import (ColumnElement, Engine, delete, event, func, insert, literal_column, or_,
                        select, text)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .. import pg
from ..models import Event, utcnow
from ..models.events import EVENT_TYPES

log = logging.getLogger(__name__)

PENDING = "paddles.pending_events"  # Session.info key: events waiting for the commit
NOTIFY_ON = "paddles.notify_on"  # Session.info key: the Connection to NOTIFY on
WRITER_LOCKED = "paddles.writer_locked"  # Session.info key: the shared lock is held
CHANNEL = "paddles_events"  # PostgreSQL NOTIFY channel
# advisory key: event writers hold it shared to their commit's end, readers of a horizon
# take it exclusive for an instant ("paddEVNT")
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
    row = event_row(session, type, payload, subject=subject, run_name=run_name,
                    job_id=job_id, username=username, topic=topic)
    if not session.in_transaction():  # so that a rollback forgets the queue with the rest
        session.begin()
    session.info.setdefault(PENDING, []).append(row)
    return row


def event_row(session: Session, type: str, payload: Mapping[str, Any], *, subject: str,
              run_name: str | None = None, job_id: str | None = None,
              username: str | None = None, topic: str | None = None) -> dict[str, Any]:
    """The events row of an event (the values of its columns), as record_event queues it."""
    if type not in EVENT_TYPES:  # the one list, which the API documents and filters by
        raise ValueError(f"{type!r} is not one of models.events.EVENT_TYPES")
    return {"uuid": str(uuid.uuid4()), "time": utcnow(),
            "topic": topic or topic_for(session, type.split(".", 1)[0]), "type": type,
            "subject": subject, "username": username, "run_name": run_name, "job_id": job_id,
            "data": dict(payload)}


def flush_events(session: Session) -> list[int]:
    """Insert the pending events now, after every other change of the transaction; their ids.

    Called at commit by the listener below, or by a service that must answer with the id.
    """
    pending = session.info.pop(PENDING, None)
    if not pending:
        return []
    session.flush()  # every row lock this transaction takes is taken before the lock below
    if session.get_bind().dialect.name == "postgresql":
        connection = session.connection()
        if not session.info.get(WRITER_LOCKED):
            connection.execute(_WRITER_LOCK, {"key": ADVISORY_KEY})
        session.info[NOTIFY_ON] = connection
    result = session.execute(insert(Event.__table__).returning(Event.__table__.c.id,
                                                               sort_by_parameter_order=True),
                             pending)
    return list(result.scalars())


_WRITER_LOCK = text("SELECT pg_advisory_xact_lock_shared(:key)")


def writer_lock() -> ColumnElement[Any]:
    """The writers' shared lock as an expression, for a statement that takes it itself
    (services/planned_jobs.py, with its row locks): once it has run, `writer_locked(session)`."""
    return func.pg_advisory_xact_lock_shared(literal_column(str(ADVISORY_KEY)))


def writer_locked(session: Session) -> None:
    """A statement of `session` took the writers' lock (after every row lock of its
    transaction, as flush_events would) and inserted events. In the session's transaction:
    flush_events does not take the lock again, and the commit NOTIFYs. Run alone
    (pg.runs_alone: committed as it returned, the lock gone): NOTIFY soon, from this
    process's NOTIFY thread (pg.run_pooled_soon): at once after a quiet spell, and under
    load one NOTIFY every NOTIFY_GAP seconds at most for all the writes in between, off the
    request's way and its pooled connections."""
    if session.in_transaction():
        session.info[WRITER_LOCKED] = True
        session.info[NOTIFY_ON] = session.connection()
        return
    pg.run_pooled_soon(typing.cast(Engine, session.get_bind()), _NOTIFY_SQL, gap=NOTIFY_GAP,
                       on_error=_notify_failed)


# Under load, one NOTIFY per process for the lone writes of this many seconds: a reader
# woken once reads them all; the first after a quiet spell goes at once.
NOTIFY_GAP = 0.02


def _notify_failed(exc: Exception) -> None:
    # the events are committed; readers look again on their own
    log.warning("NOTIFY after an event commit failed: %s", str(exc).strip())


# Asynchronous commit: a NOTIFY only wakes readers (they also look again on their own), so
# losing one in a crash costs nothing, and the notify queue's lock is held for no WAL flush
_NOTIFY_SQL = f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{CHANNEL}', '')"


def listen(factory: sessionmaker) -> None:
    """Pending events inserted at commit, forgotten at rollback, for `factory`'s sessions."""
    event.listen(factory, "before_commit", _flush_on_commit)
    event.listen(factory, "after_commit", _notify_after_commit)
    event.listen(factory, "after_transaction_end", _forget_on_end)


def _flush_on_commit(session: Session) -> None:
    if session.info.get(PENDING):
        flush_events(session)


def _notify_after_commit(session: Session) -> None:
    """NOTIFY on the connection that just committed events (still checked out here), as a
    statement of its own: one round trip, after the writers' lock is gone."""
    connection = session.info.get(NOTIFY_ON)
    if connection is None:
        return
    try:
        if not pg.run_after_commit(connection.connection.dbapi_connection, _NOTIFY_SQL):
            return  # a savepoint's commit: the transaction goes on
    except Exception as exc:
        _notify_failed(exc)
        # not through SQLAlchemy's statement path: drop the connection here (a server gone
        # away would otherwise fail the pool's reset of it)
        connection.invalidate()
    session.info.pop(NOTIFY_ON, None)


def _forget_on_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed or rolled back
        session.info.pop(PENDING, None)
        session.info.pop(NOTIFY_ON, None)
        session.info.pop(WRITER_LOCKED, None)


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
    type_, data = job_event(run, job, created=created, old_status=old_status, before=before)
    if type_ is not None:
        record_event(session, type_, data, subject=f"runs/{run.name}/jobs/{job.job_id}",
                     run_name=run.name, job_id=job.job_id, username=run.user)
    if run_was is not None:
        record_run_status(session, run, run_was)


def job_event(run, job, *, created: bool, old_status=None,
              before: Mapping[str, Any] | None = None) -> tuple[str | None, dict[str, Any]]:
    """The type and data of a job write's event (None: it records none), with the run's
    values as `run` has them (its context and `results`, the counters after the write)."""
    data = {**_run_context(run), "job_id": job.job_id, "status": _status(job.status)}
    if created:
        type_: str | None = "job.created"
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
    data["results"] = run.counts()
    return type_, data


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
    """The horizon: the newest event id such that every id up to it is, from the caller's
    next statement on, committed (and visible) or rolled back for good, so that a reader
    that moves its cursor to it skips nothing that could still appear.

    On PostgreSQL, one statement reads max(id) in its snapshot, then takes ADVISORY_KEY
    exclusively and lets go: the lock is granted once every writer that held it shared (as
    writers do from before their ids are handed out to after their commit has ended) when
    max(id) was read has ended. A new exclusive request queues later shared ones behind it,
    so readers are not starved. It needs READ COMMITTED (the next statement's snapshot is
    taken after the wait); a session-level lock, so that it is not kept to the end of the
    caller's transaction. SQLite: one writer at a time, max(id) is the horizon."""
    if session.get_bind().dialect.name != "postgresql":
        return newest_event_id(session)
    connection = session.connection()
    try:
        top, _, released, isolation = connection.execute(
            _HORIZON, {"key": ADVISORY_KEY}).one()
    except DBAPIError:
        # whatever failed, no session-level lock may stay on a pooled connection: closing
        # the backend drops every lock it held
        connection.invalidate()
        raise
    if not released:  # pragma: no cover - the statement's evaluation order changed
        connection.invalidate()
        raise RuntimeError("the events horizon lock was not released")
    if isolation != "read committed":
        raise RuntimeError(f"latest_event_id needs READ COMMITTED, not {isolation}: a "
                           "transaction snapshot taken before the wait would miss events")
    return top


# The scalar subquery is read in the statement's snapshot, taken before the lock is asked
# for; the target list is evaluated left to right, so the unlock follows the lock
_HORIZON = text("SELECT (SELECT coalesce(max(id), 0) FROM events) AS top, "
                "pg_advisory_lock(:key), pg_advisory_unlock(:key) AS released, "
                "current_setting('transaction_isolation') AS isolation")


def newest_event_id(session: Session) -> int:
    """max(id) now, with no wait: for deciding whether there may be work (a cursor behind
    it), never for moving a cursor (latest_event_id)."""
    return session.scalar(select(func.coalesce(func.max(Event.id), 0)))


def list_events(session: Session, *, since: int = 0, types: Sequence[str] = (),
                run_name: str | None = None, job_id: str | None = None,
                limit: int = 100) -> tuple[list[Event], int]:
    """(events with id > since in id order, at most `limit`; the cursor to continue from).

    The cursor is the last id returned or, when the page is not full, the horizon the page
    was read up to (latest_event_id): a filtered reader then does not scan the same
    non-matching events again. The horizon makes that safe (nothing below it can still
    appear)."""
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
