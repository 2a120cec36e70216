"""Jobs: reads, and the writes of spec section 8 with the run counters kept in step with them
(their rules are services/job_rules.py; on PostgreSQL most are worked out before the lock,
services/planned_jobs.py); the job maintenance of the `paddles` admin commands
(expire-jobs, set-targets)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import typing
from collections import namedtuple
from typing import Any
from collections.abc import Mapping

from sqlalchemy import (JSON, Integer, Row, Select, Text, and_, any_, bindparam, cast, delete,
                        exists, false, func, insert, literal_column, or_, select, true, update)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import pg
from ..pg import Prepared, execute_alone
from ..errors import AlreadyExists, JobNotFound
from ..models import Job, JobStatus, Node, Run, job_nodes, utcnow
from ..models.statuses import JOB_STATUS_VALUES, count_key
from . import nodes as node_service
from . import events
from . import runs as run_service
from .common import BATCH, Progress, in_batches, tick
from .job_rules import (FIRST_JOB_KEYS, JOB_COLUMNS, apply_write, first_job_values, hosts_of,
                        link_count, link_targets)
from .planned_jobs import apply_planned, plan_create, plan_update



def get_job(session: Session, run_name: str, job_id: str,
            missing: str = "job not found") -> tuple[Run, Job]:
    row = session.execute(
        select(Run, Job).join(Job, Job.run_id == Run.id)
        .where(Run.name == run_name, Job.job_id == job_id)
    ).first()
    if row is None:
        raise JobNotFound(missing)
    return row[0], row[1]


_DEFAULT_DIALECT = sqlite.dialect()


# ---- reads: rows, not ORM objects --------------------------------------------------------
# JSON columns come back as their JSON text, which serializers pass through without parsing
# and re-encoding (most of a 300-job run's cost). `run_name` rides along on every row.
JSON_KEYS = frozenset(c.name for c in Job.__table__.c
                      if isinstance(c.type.dialect_impl(_DEFAULT_DIALECT), JSON))
_READ_COLUMNS = [cast(c, Text).label(c.name) if c.name in JSON_KEYS else c
                 for c in Job.__table__.c]


def select_job_rows() -> Select:
    """SELECT of job rows for the wire (see serializers.job_detail), joined to their run."""
    return (select(*_READ_COLUMNS, Run.name.label("run_name"))
            .select_from(Job.__table__).join(Run, Run.id == Job.run_id))


def read_job(session: Session, run_name: str, job_id: str) -> Row:
    row = session.execute(select_job_rows().where(Run.name == run_name,
                                                  Job.job_id == job_id)).first()
    if row is None:
        raise JobNotFound("job not found")
    return row


# PostgreSQL's row version: the transaction that wrote this version of the row. Every UPDATE
# writes a new version, so (id, xmin) names a job's content (paddles/rendered_jobs.py).
_ROW_VERSION = literal_column("jobs.xmin::text")


@functools.cache
def _of_run(versions: bool, status: str | None, newest_first: bool) -> Select:
    """One run's jobs (bound as `run_id`; of one status) in a document's order: newest posted
    first (the job list) or by job id (the run document); their wire rows, or only their ids
    and row versions. Built once per shape: they cost as much to build as to run."""
    stmt = select(Job.id, _ROW_VERSION.label("row_version")) if versions else select_job_rows()
    stmt = stmt.where(Job.run_id == bindparam("run_id")).order_by(
        *((Job.posted.desc(), Job.id.desc()) if newest_first else (Job.sort_key,)))
    return stmt if status is None else stmt.where(status_is(status))


class _PreparedRead(typing.NamedTuple):
    """A prepared read (pg.Prepared), run by execute_alone. With `named`, its rows come back
    as named tuples of its columns whichever way it ran (the serializers read wire rows by
    name); else as they came (a row version is unpacked, and naming it would cost a tenth
    of a run document's Python)."""
    prepared: Prepared
    row: Any  # the namedtuple class, or None

    @classmethod
    def of(cls, name: str, statement: Select, params: tuple[str, ...], *,
           named: bool) -> _PreparedRead:
        return cls(Prepared(name, statement, params, process_results=named),
                   namedtuple(name, [c.key for c in statement.selected_columns])
                   if named else None)

    def rows(self, session: Session, params: dict) -> list[Any]:
        rows = execute_alone(session, self.prepared, params).rows
        return rows if self.row is None else [self.row._make(row) for row in rows]


# All of a run's jobs, their rows or their versions, in either order: read alone and
# prepared, as the run's state and row before them, so that a run document or job list
# that misses the cache opens no transaction and has no statement parsed and planned again.
_OF_RUN = {(versions, newest_first): _PreparedRead.of(
    f"paddles_job_{'versions' if versions else 'rows'}_{'newest' if newest_first else 'id'}",
    _of_run(versions, None, newest_first), ("run_id",), named=not versions)
    for versions in (False, True) for newest_first in (False, True)}


def _of_run_rows(session: Session, versions: bool, run_id: int, status: str | None,
                 newest_first: bool) -> list[Any]:
    if status is None:
        return _OF_RUN[(versions, newest_first)].rows(session, {"run_id": run_id})
    if status not in JOB_STATUS_VALUES:
        status = ""  # matches nothing, as every other value that is no status
    # Core rows straight from the connection: the ORM's loading of these plain columns
    # cost about as much as rendering them.
    return session.connection().execute(_of_run(versions, status, newest_first),
                                        {"run_id": run_id}).all()


def run_job_rows(session: Session, run_id: int, status: str | None = None, *,
                 newest_first: bool = False) -> list[Any]:
    """Wire rows (select_job_rows) of the run's jobs (of one status), in a document's order
    (_of_run)."""
    return _of_run_rows(session, False, run_id, status, newest_first)


def job_versions(session: Session, run_id: int, status: str | None = None, *,
                 newest_first: bool = False) -> list[Any]:
    """(id, row version) of the run's jobs, as run_job_rows orders them (PostgreSQL only)."""
    return _of_run_rows(session, True, run_id, status, newest_first)


# the jobs' ids as one array parameter: one statement whatever their number, where an
# expanding IN was a statement of its own for each number of ids, parsed and planned
_BY_ID = _PreparedRead.of(
    "paddles_job_rows_by_id",
    select_job_rows().add_columns(_ROW_VERSION.label("row_version"))
    .where(Job.id == any_(bindparam("ids", type_=ARRAY(Integer)))),
    ("ids",), named=True)


def job_rows_by_id(session: Session, ids: list[int]) -> list[Any]:
    """Wire rows (select_job_rows, as named tuples) of the jobs with these ids, in no order,
    each with its `row_version` (PostgreSQL only); read alone and prepared (_OF_RUN)."""
    return _BY_ID.rows(session, {"ids": ids})


def create_job(session: Session, run_name: str, fields: Mapping[str, Any],
               timezone: str = "UTC") -> Job:
    """Insert a job and count it on its run; a job_id the run has is AlreadyExists (400).

    The job row goes in with one Core INSERT ... ON CONFLICT DO NOTHING: the run row is
    locked, so a conflict is a job_id the run already has. The Job built here never enters
    the session (its unit of work cost more than the rest of a create); the run does, and
    its one UPDATE at flush carries the counters, status and first-job values.

    On PostgreSQL a new job in a run that exists is worked out first, without a lock, and
    written by one statement (plan_create, apply_planned), as a job update is."""
    if session.get_bind().dialect.name == "postgresql":
        alone = pg.runs_alone(session)
        plan = plan_create(session, run_name, fields)
        try:
            if plan is not None and apply_planned(session, plan):
                return plan.job
        except IntegrityError:  # a node deleted while the statement ran: nothing written
            if not alone:
                raise
        if alone:  # the general path below is a transaction
            session.rollback()
    run = run_service.lock_or_create_run(session, run_name, timezone)
    job_id = fields.get("job_id")
    if job_id is None:
        job_id = _next_job_id(session, run)
    job = Job(run_id=run.id, job_id=job_id, posted=utcnow())
    run_was, first_was = run.status, first_job_values(run)
    total_was = run.count_total or 0
    run.add_to_count("total", 1)
    run.add_to_count(count_key(None), 1)  # counted as its (null) status until the write below
    apply_write(session, run, job, fields, new=True, insert=True)
    job.id = session.execute(*_insert_job(session, job)).scalar()
    if job.id is None:
        raise AlreadyExists(f"job with job_id {job_id} already exists")
    targets = fields.get("targets")
    if isinstance(targets, dict) and targets:
        link_targets(session, job, targets, fields.get("machine_type"), new=True)
    if total_was == 0:  # the run's only job is its first
        run.sha1, run.flavor, run.priority = job.sha1, job.flavor, job.priority
    elif (job.sha1, job.flavor, job.priority) != first_was:
        _refresh_first_job(session, run)  # whichever job is first, it may have moved
    events.record_job_write(session, run, job, created=True, run_was=run_was)
    return job


def _insert_job(session: Session, job: Job):
    """(statement, parameters) of the job's INSERT: the statement is built once per dialect
    and the values bound per request (building and cache-keying a 45-column VALUES clause
    each time cost as much as the statements it saved)."""
    values = {key: getattr(job, key) for key in JOB_COLUMNS}
    return _job_insert_statement(session.get_bind().dialect.name), values


@functools.cache
def _job_insert_statement(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return (dialect_insert(Job.__table__)
            .on_conflict_do_nothing(index_elements=["run_id", "job_id"])
            .returning(Job.__table__.c.id))


# A PUT carrying only these keys (teuthology's watchdog) is a heartbeat: it refreshes
# `updated` (and stores `name`) and can change nothing else, so it skips loading the rows.
HEARTBEAT_KEYS = frozenset({"name", "job_id"})


def update_job(session: Session, run_name: str, job_id: str,
               fields: Mapping[str, Any]) -> None:
    missing = "attempted to update a non-existent job"
    if fields.keys() <= HEARTBEAT_KEYS:
        _heartbeat(session, run_name, job_id, fields, missing)
        return
    if session.get_bind().dialect.name == "postgresql":
        # read, then write in one statement: each a transaction of its own when the request
        # has begun none (pg.runs_alone), so no transaction stays open between them
        alone = pg.runs_alone(session)
        with pg.one_connection(session):  # the read and the write: one checkout
            plan = plan_update(session, run_name, job_id, fields, missing)
            if plan is not None and apply_planned(session, plan):
                return
        if alone:  # the general path below is a transaction
            session.rollback()
    run, job, linked = _lock_run_and_job(session, run_name, job_id, "targets" in fields,
                                         missing)
    before, old_status, run_was = events.job_snapshot(job, fields), job.status, run.status
    first_keys = [key for key in FIRST_JOB_KEYS if key in fields]
    job_first_was = tuple(getattr(job, key) for key in first_keys)
    apply_write(session, run, job, fields, new=False, linked=linked)
    if first_keys and tuple(getattr(job, key) for key in first_keys) != job_first_was:
        _refresh_first_job(session, run)  # only a changed value can change the first job's
    events.record_job_write(session, run, job, created=False, old_status=old_status,
                            before=before, run_was=run_was)


def _lock_run_and_job(session: Session, run_name: str, job_id: str, count_links: bool,
                      missing: str) -> tuple[Run, Job, int | None]:
    """The run and its job in one SELECT, both rows locked (run first: the lock order of
    every job write) and reloaded, so a waiter sees what the lock holder wrote; with
    `count_links`, also how many nodes the job is linked to."""
    columns: list = [Run, Job]
    if count_links:
        columns.append(link_count())
    row = session.execute(
        select(*columns).join(Job, Job.run_id == Run.id)
        .where(Run.name == run_name, Job.job_id == job_id)
        .with_for_update(of=[Run.__table__, Job.__table__])
        .execution_options(populate_existing=True)).first()
    if row is None:
        raise JobNotFound(missing)
    return row[0], row[1], (row[2] if count_links else None)


def _heartbeat(session: Session, run_name: str, job_id: str, fields: Mapping[str, Any],
               missing: str) -> None:
    """On PostgreSQL one statement: the job's UPDATE, whose WHERE first updates the run (a
    CTE evaluated as an InitPlan before any job row is read: the lock order of every job
    write). SQLite has no UPDATE in a subquery: two statements there (it has one writer).

    PostgreSQL heartbeats also commit asynchronously (`synchronous_commit` off for their
    own transaction, set in the same statement): the commit does not wait for the WAL
    flush. A server crash may lose the last few hundred milliseconds of heartbeats (only
    `updated` and `name`; the database stays consistent), which moves a job's silence
    for expire-jobs back by as much; statuses and every other write stay synchronous."""
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # built once per shape (with or without `name`), bound per request: building and
        # coercing the statement was a third of a heartbeat's Python time
        params = {"hb_run": run_name, "hb_job": job_id, "hb_now": now}
        if "name" in fields:
            params["hb_name"] = fields["name"]
        done = execute_alone(session, _pg_heartbeat("name" in fields), params).rowcount
        if not done:
            raise JobNotFound(missing)
        return
    values: dict[str, Any] = {"updated": now}
    if "name" in fields:
        values["name"] = fields["name"]
    touch_run = update(Run).where(Run.name == run_name).values(
        updated=now, version=run_service.VERSION_BUMP).returning(Run.id)
    run_id = session.scalar(touch_run.execution_options(synchronize_session=False))
    if run_id is None:
        raise JobNotFound(missing)
    done = session.execute(
        update(Job).where(Job.run_id == run_id, Job.job_id == job_id).values(**values)
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        raise JobNotFound(missing)


@functools.cache
def _pg_heartbeat(with_name: bool) -> Prepared:
    """The PostgreSQL heartbeat statement, parameters hb_run, hb_job, hb_now (and hb_name),
    prepared on the server (pg.Prepared)."""
    params = ("hb_run", "hb_job", "hb_now", "hb_name")[:4 if with_name else 3]
    return Prepared(f"paddles_heartbeat{'_named' if with_name else ''}",
                    _pg_heartbeat_statement(with_name), params)


def _pg_heartbeat_statement(with_name: bool):
    now = bindparam("hb_now", type_=Job.__table__.c.updated.type)
    run_name = bindparam("hb_run", type_=Run.__table__.c.name.type)
    job_id = bindparam("hb_job", type_=Job.__table__.c.job_id.type)
    # the run is touched only when its job exists: the statement commits on its own
    # (pg.execute_alone), so a 404 must have changed nothing
    job_exists = select(Job.id).where(Job.run_id == Run.id, Job.job_id == job_id).exists()
    touch_run = (update(Run).where(Run.name == run_name, job_exists, _ASYNC_COMMIT)
                 .values(updated=now, version=Run.version + literal_column("1"))
                 .returning(Run.id))
    run_id = touch_run.cte("touched_run").select().scalar_subquery()
    values: dict[str, Any] = {"updated": now}
    if with_name:
        values["name"] = bindparam("hb_name", type_=Job.__table__.c.name.type)
    return update(Job).where(Job.run_id == run_id, Job.job_id == job_id).values(**values)


# set_config(..., is_local => true) is SET LOCAL, as an expression (true), so the setting
# rides in the heartbeat's one statement instead of a round trip of its own
# (literal SQL, not parameters: the statement is prepared with only its values as parameters)
_ASYNC_COMMIT = func.set_config(literal_column("'synchronous_commit'"),
                                literal_column("'off'"), true()).is_not(None)


def delete_job(session: Session, run_name: str, job_id: str) -> None:
    missing = "attempted to delete a non-existent job"
    run = run_service.get_run(session, run_name, for_update=True, missing=missing)
    job = session.scalar(select(Job).where(Job.run_id == run.id, Job.job_id == job_id))
    if job is None:
        raise JobNotFound(missing)
    run_was = run.status
    run.add_to_count("total", -1)
    run.add_to_count(count_key(job.status), -1)
    session.execute(delete(Job).where(Job.id == job.id))
    session.expunge(job)
    run.refresh_status()
    _refresh_first_job(session, run)
    events.record_job_deleted(session, run, job_id, job.status, run_was)


def _next_job_id(session: Session, run: Run) -> str:
    """One more than the largest numeric id of the run (the run row is locked).

    Ids of more than 20 digits sort as text, so the maximum cannot see them; when the
    next number would be that long, probe upwards from the job count for a free id."""
    top = session.scalar(select(func.max(Job.sort_key))
                         .where(Job.run_id == run.id, Job.sort_key < "1"))
    candidate = int(top[1:21]) + 1 if top else 1
    if candidate < 10**20:
        return str(candidate)
    candidate = (run.count_total or 0) + 1
    while session.scalar(select(Job.id).where(Job.run_id == run.id,
                                              Job.job_id == str(candidate))) is not None:
        candidate += 1
    return str(candidate)


def _refresh_first_job(session: Session, run: Run) -> None:
    session.flush()
    first = session.execute(select(Job.sha1, Job.flavor, Job.priority)
                            .where(Job.run_id == run.id)
                            .order_by(Job.sort_key).limit(1)).first()
    run.sha1, run.flavor, run.priority = first if first is not None else (None, None, None)



def list_recent_jobs(session: Session, query: Mapping[str, Any], *, limit: int | None,
                     offset: int = 0) -> list[Row]:
    """Jobs across runs, newest first, with their run names (spec 4.6)."""
    stmt = select_job_rows()
    if "description" in query:
        stmt = stmt.where(Job.description.contains(query["description"], autoescape=True))
    if "status" in query:
        stmt = stmt.where(status_is(query["status"]))
    if "sha1" in query:
        stmt = stmt.where(Job.sha1 == query["sha1"])
    elif "branch" in query:
        stmt = stmt.where(Job.branch == query["branch"])
    if "user" in query:
        stmt = stmt.where(Job.user == query["user"])
    if "posted_after" in query:
        stmt = stmt.where(Job.posted > query["posted_after"])
    if "posted_before" in query:
        stmt = stmt.where(Job.posted < query["posted_before"])
    stmt = stmt.order_by(Job.posted.desc(), Job.id.desc()).limit(limit).offset(offset)
    return list(session.execute(stmt))


def status_is(value: str):
    """A filter on job status; a value that is no status matches nothing."""
    return Job.status == value if value in JOB_STATUS_VALUES else false()


def node_jobs(session: Session, name: str, *, job_name: str | None = None,
              status: str | None = None, limit: int | None = None,
              offset: int = 0) -> list[Row]:
    """Jobs whose targets included the node, newest posted first, with their run names."""
    node_id = node_service.node_id_of(session, name)
    stmt = (select_job_rows()
            .join(job_nodes, job_nodes.c.job_id == Job.id)
            .where(job_nodes.c.node_id == node_id))
    if job_name is not None:
        stmt = stmt.where(Job.name == job_name)
    if status is not None:
        stmt = stmt.where(status_is(status))
    stmt = stmt.order_by(Job.posted.desc(), Job.id.desc()).limit(limit).offset(offset)
    return list(session.execute(stmt))


# ---- maintenance (the `paddles` admin commands: expire-jobs, set-targets) ------------------
# As the run maintenance in services/runs.py: runs locked in id order, decided under the lock.

ACTIVE = (JobStatus.RUNNING, JobStatus.WAITING, JobStatus.UNKNOWN)
# Host-name prefixes that name their machine type (spec 13, set_targets); `vpm*` -> vps.
MACHINE_TYPE_PREFIXES = ("plana", "mira", "vps", "burnupi", "tala", "saya", "dubia")


def _last_touch():
    """When a job was last written; a job never written since its POST counts from `posted`."""
    return func.coalesce(Job.updated, Job.posted)


@dataclasses.dataclass(frozen=True)
class ExpiredJob:
    run: str
    job_id: str
    old_status: str
    last_touch: dt.datetime


def expire_stale_jobs(session: Session, *, running_minutes: float = 30, queued_days: float = 14,
                      now: dt.datetime | None = None, progress: Progress | None = None
                      ) -> tuple[list[ExpiredJob], list[run_service.RunChange]]:
    """Mark stale jobs `dead`, keeping their runs' counters and stored status exact.

    Stale: `running`/`waiting`/`unknown` (or null) jobs last written before now − running
    minutes, and `queued` ones last written before now − queued days. "Last written" is
    `updated`, or `posted` when `updated` is null; a time in the future is never stale.
    Only the status changes (no `updated`, `success` or `started`).
    """
    now = now or utcnow()
    stale = or_(
        and_(or_(Job.status.in_(ACTIVE), Job.status.is_(None)),
             _last_touch() < now - dt.timedelta(minutes=running_minutes)),
        and_(Job.status == JobStatus.QUEUED,
             _last_touch() < now - dt.timedelta(days=queued_days)),
    )
    run_ids = list(session.scalars(select(Job.run_id).where(stale).distinct()))
    expired: list[ExpiredJob] = []
    changes: list[run_service.RunChange] = []
    done = 0
    for chunk in in_batches(sorted(run_ids)):
        runs = run_service.lock_runs(session, chunk)
        # Re-read under the lock: a job write may have refreshed a job since the first look.
        rows = session.execute(select(Job, _last_touch()).where(Job.run_id.in_(chunk), stale)
                               .order_by(Job.run_id, Job.sort_key)
                               .execution_options(populate_existing=True)).all()
        touched: dict[int, str] = {}
        for job, touch in rows:
            run = runs[job.run_id]
            touched.setdefault(run.id, run.status.value)
            old = job.status
            run.add_to_count(count_key(old), -1)
            run.add_to_count(count_key(JobStatus.DEAD), 1)
            job.status = JobStatus.DEAD
            events.record_job_write(session, run, job, created=False, old_status=old,
                                    before={"status": old})
            expired.append(ExpiredJob(run.name, job.job_id, old.value if old else "null",
                                      _aware(touch)))
        for run_id, old_status in touched.items():
            run = runs[run_id]
            run.refresh_status()
            if run.status.value != old_status:
                changes.append(run_service.RunChange(run.name, old_status, run.status.value))
                events.record_run_status(session, run, old_status)
        done += len(chunk)
        tick(progress, done, len(run_ids))
    session.flush()
    return expired, changes


def _aware(value: Any) -> dt.datetime:
    """coalesce() results come back raw on SQLite: normalise them to aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def guess_machine_type(host: str) -> str | None:
    """Machine type from a host-name prefix (`vpm*` is a vps), or None."""
    short = host.split(".", 1)[0]
    if short.startswith("vpm"):
        return "vps"
    return next((p for p in MACHINE_TYPE_PREFIXES if short.startswith(p)), None)


def _job_machine_type(value: str | None) -> str | None:
    """A job's machine type names one type only without `|`/`,` (multi-type jobs)."""
    if value and "|" not in value and "," not in value:
        return value[:32]
    return None


@dataclasses.dataclass(frozen=True)
class TargetLink:
    run: str
    job_id: str
    hosts: list[str]
    created: list[str]


def _unlinked():
    return ~exists(select(job_nodes.c.job_id).where(job_nodes.c.job_id == Job.id))


def link_job_targets(session: Session, *, progress: Progress | None = None) -> list[TargetLink]:
    """For jobs without linked nodes, link (creating when missing) the hosts of `targets`.

    A node created here, or found without a machine type, gets the one its host-name
    prefix names, else the job's own machine type.
    """
    candidates: dict[int, list[int]] = {}
    for job_id, run_id, targets in session.execute(
            select(Job.id, Job.run_id, Job.targets).where(_unlinked())
            .execution_options(yield_per=BATCH)):
        if hosts_of(targets):
            candidates.setdefault(run_id, []).append(job_id)
    total = sum(len(v) for v in candidates.values())
    out: list[TargetLink] = []
    done = 0
    for chunk in in_batches(sorted(candidates)):
        runs = run_service.lock_runs(session, chunk)
        job_ids = [j for rid in chunk for j in candidates[rid]]
        for ids in in_batches(job_ids):
            jobs = session.scalars(select(Job).where(Job.id.in_(ids), _unlinked())
                                   .order_by(Job.run_id, Job.sort_key)
                                   .execution_options(populate_existing=True)).all()
            for job in jobs:
                hosts = hosts_of(job.targets)
                if not hosts:
                    continue
                created = _link_hosts(session, job, hosts)
                out.append(TargetLink(runs[job.run_id].name, job.job_id, hosts, created))
            done += len(ids)
            tick(progress, done, total)
    session.flush()
    return out


def _link_hosts(session: Session, job: Job, hosts: list[str]) -> list[str]:
    nodes = {n.name: n for n in session.scalars(select(Node).where(Node.name.in_(hosts)))}
    created = []
    fallback = _job_machine_type(job.machine_type)
    for host in hosts:
        node = nodes.get(host)
        if node is None:
            node, new = node_service.ensure_node(session, host,
                                                 guess_machine_type(host) or fallback)
            if new:
                created.append(host)
            nodes[host] = node
        elif node.machine_type is None:
            node.machine_type = guess_machine_type(host) or fallback
    session.execute(insert(job_nodes), [{"job_id": job.id, "node_id": nodes[h].id}
                                        for h in hosts])
    return created
