"""Jobs: the write rules of spec section 8, and the run counters kept in step with them;
the job maintenance of the `paddles` admin commands (expire-jobs, set-targets)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from typing import Any
from collections.abc import Mapping

from sqlalchemy import (JSON, Integer, Row, Select, String, Text, and_, any_, bindparam, case,
                        cast, delete, exists, false, func, insert, literal_column, null, or_,
                        select, true, union_all, update)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import pg
from ..pg import Prepared, execute_alone
from ..errors import AlreadyExists, JobNotFound
from ..models import Event, Job, JobStatus, Node, Run, RunStatus, job_nodes, utcnow
from ..models.base import sortable_job_id
from ..models.runs import RunCounters
from ..models.statuses import COUNT_KEYS, JOB_STATUS_VALUES, count_key, run_status_sql
from . import nodes as node_service
from . import events
from . import runs as run_service
from .common import BATCH, Progress, in_batches, tick

FINISHED = (JobStatus.PASS, JobStatus.FAIL)
# Keys copied onto the run when a job write carries them (even as null).
RUN_COPIED_KEYS = ("suite", "branch", "machine_type")
FIRST_JOB_KEYS = ("sha1", "flavor", "priority")
NODE_NAME_LENGTH = Node.__table__.c.name.type.length


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


def list_jobs(session: Session, run: Run, status: str | None = None) -> list[Row]:
    stmt = select_job_rows().where(Job.run_id == run.id).order_by(Job.posted.desc(),
                                                                  Job.id.desc())
    if status is not None:
        stmt = stmt.where(status_is(status))
    return list(session.execute(stmt))


def jobs_in_id_order(session: Session, run: Run) -> list[Row]:
    return list(session.execute(select_job_rows().where(Job.run_id == run.id)
                                .order_by(Job.sort_key)))


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
        alone = pg.statements_alone(session)
        plan = plan_create(session, run_name, fields)
        try:
            if plan is not None and apply_planned(session, plan):
                return plan.job
        except IntegrityError:  # a node deleted since it was read: nothing was written
            if not alone:
                raise
        if alone:  # the general path below is a transaction
            session.rollback()
    run = run_service.lock_or_create_run(session, run_name, timezone)
    job_id = fields.get("job_id")
    if job_id is None:
        job_id = _next_job_id(session, run)
    job = Job(run_id=run.id, job_id=job_id, posted=utcnow())
    run_was, first_was = run.status, _first_job_values(run)
    total_was = run.count_total or 0
    run.add_to_count("total", 1)
    run.add_to_count(count_key(None), 1)  # counted as its (null) status until the write below
    _apply_write(session, run, job, fields, new=True, insert=True)
    job.id = session.execute(*_insert_job(session, job)).scalar()
    if job.id is None:
        raise AlreadyExists(f"job with job_id {job_id} already exists")
    targets = fields.get("targets")
    if isinstance(targets, dict) and targets:
        _link_targets(session, job, targets, fields.get("machine_type"), new=True)
    if total_was == 0:  # the run's only job is its first
        run.sha1, run.flavor, run.priority = job.sha1, job.flavor, job.priority
    elif (job.sha1, job.flavor, job.priority) != first_was:
        _refresh_first_job(session, run)  # whichever job is first, it may have moved
    events.record_job_write(session, run, job, created=True, run_was=run_was)
    return job


_JOB_COLUMNS = tuple(c.key for c in Job.__table__.c if c.key != "id")


def _insert_job(session: Session, job: Job):
    """(statement, parameters) of the job's INSERT: the statement is built once per dialect
    and the values bound per request (building and cache-keying a 45-column VALUES clause
    each time cost as much as the statements it saved)."""
    values = {key: getattr(job, key) for key in _JOB_COLUMNS}
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


def _first_job_values(run: Run) -> tuple:
    return run.sha1, run.flavor, run.priority


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
        # has begun none (pg.statements_alone), so no transaction stays open between them
        alone = pg.statements_alone(session)
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
    _apply_write(session, run, job, fields, new=False, linked=linked)
    if first_keys and tuple(getattr(job, key) for key in first_keys) != job_first_was:
        _refresh_first_job(session, run)  # only a changed value can change the first job's
    events.record_job_write(session, run, job, created=False, old_status=old_status,
                            before=before, run_was=run_was)


# ---- a job update on PostgreSQL: worked out before the run is locked ---------------------
# Every job write of a run queues on its run's row (the counters). The general path below
# holds that lock from its first SELECT to COMMIT, with the whole write's Python between;
# here the write is worked out on rows read without a lock, and then one statement locks
# the run, writes the job's new values and the counters' deltas, provided the job row is
# still the one that was read (its `xmin`, which every UPDATE of the row changes), takes
# the events' shared lock and inserts the job's event. The run's lock is held for that
# statement and the COMMIT (and one UPDATE more when the run's status moves).

class _Values:
    """A row's values as attributes, standing in for the Run or Job a write is worked out on
    before the lock: the session never sees it (loading entities and expunging them cost a
    third of a report's Python)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # every column is set; for type checkers
        raise AttributeError(name)


class RunValues(_Values, RunCounters):
    """A run's row (all its columns), with the counter arithmetic of Run."""


class JobValues(_Values):
    """A job's row (all its columns)."""


@dataclasses.dataclass
class PlannedUpdate:
    run: RunValues  # the values read, then those the write gives it
    job: JobValues
    token: str | None  # the job row's xmin when read; None: a new job (plan_create)
    job_values: dict[str, Any]  # the job's changed values; a new job's every column
    deltas: dict[str, int]  # count_<key> -> change
    run_values: dict[str, Any]  # updated, and the keys a job write copies onto its run
    event: dict[str, Any] | None  # the job's event row; the run's part of its data to come
    node_ids: tuple[int, ...] = ()  # a new job: the nodes its targets name


def _xmin():
    return cast(literal_column(f"{Job.__tablename__}.xmin"), Text)


def plan_update(session: Session, run_name: str, job_id: str, fields: Mapping[str, Any],
                missing: str) -> PlannedUpdate | None:
    """The job update worked out on the run and job as read now, without a lock; None when
    the general path is to do it (it links new targets, may move the run's first job, or
    changes nothing on the job). JobNotFound when the job does not exist."""
    count_links = "targets" in fields
    row = execute_alone(session, _plan_read(count_links),
                        {"p_name": run_name, "p_job_id": job_id}).first()
    if row is None:
        raise JobNotFound(missing)
    run, job = _run_values_of(row), _job_values_of(row)
    token = row[_RUN_WIDTH + _JOB_WIDTH]
    linked = row[_RUN_WIDTH + _JOB_WIDTH + 1] if count_links else None
    targets = fields.get("targets")
    if isinstance(targets, dict) and linked is not None and len(targets) > linked:
        return None
    if any(key in fields and fields[key] != getattr(job, key) for key in FIRST_JOB_KEYS):
        return None
    job_was = {key: getattr(job, key) for key in _JOB_COLUMNS}
    counts_was = run.counts()
    before, old_status = events.job_snapshot(job, fields), job.status
    _apply_write(session, run, job, fields, new=False, linked=linked)
    job_values = {key: getattr(job, key) for key in _JOB_COLUMNS
                  if getattr(job, key) != job_was[key]}
    if not job_values:  # it changes nothing on the job (the same `updated` again)
        return None
    type_, data = events.job_event(run, job, created=False, old_status=old_status,
                                   before=before)
    return PlannedUpdate(run, job, token, job_values, _deltas(run, counts_was),
                         _run_values(run, fields), _event_row(session, run, job, type_, data))


def plan_create(session: Session, run_name: str, fields: Mapping[str, Any]
                ) -> PlannedUpdate | None:
    """A new job (create_job) worked out on its run as read now, without a lock; None when
    the general path is to do it: the run does not exist yet, the job has no job_id (the
    next one is drawn under the run's lock), it may become the run's first job with other
    values than the first job's, or a target names a host without a node."""
    job_id = fields.get("job_id")
    if job_id is None:
        return None
    hosts = _hosts(fields.get("targets")) if fields.get("targets") else []
    row = execute_alone(session, _plan_read_run(), {"p_name": run_name, "p_hosts": hosts}
                        ).first()
    if row is None:
        return None
    run = _run_values_of(row)
    node_ids = tuple(row[_RUN_WIDTH] or ())
    if len(node_ids) < len(hosts):
        return None
    job = JobValues({"id": None, **dict.fromkeys(_JOB_COLUMNS), "run_id": run.id,
                     "job_id": job_id, "sort_key": sortable_job_id(job_id), "posted": utcnow()})
    first_was, counts_was = _first_job_values(run), run.counts()
    run.add_to_count("total", 1)
    run.add_to_count(count_key(None), 1)  # counted as its (null) status until the write below
    _apply_write(session, run, job, fields, new=True, insert=True)
    if counts_was["total"] and (job.sha1, job.flavor, job.priority) != first_was:
        return None  # it may be the first job: the general path refreshes the first job's
    type_, data = events.job_event(run, job, created=True)
    return PlannedUpdate(run, job, None, {key: getattr(job, key) for key in _JOB_COLUMNS},
                         _deltas(run, counts_was), _run_values(run, fields),
                         _event_row(session, run, job, type_, data), node_ids)


_RUN_WIDTH, _JOB_WIDTH = len(Run.__table__.c), len(Job.__table__.c)


def _run_values_of(row) -> RunValues:
    return RunValues({c.key: row[i] for i, c in enumerate(Run.__table__.c)})


def _job_values_of(row) -> JobValues:
    return JobValues({c.key: row[_RUN_WIDTH + i] for i, c in enumerate(Job.__table__.c)})


def _run_columns() -> list:
    return [c.label(f"r_{c.key}") for c in Run.__table__.c]


@functools.cache
def _plan_read(count_links: bool) -> Prepared:
    """The run's and the job's columns, the job row's xmin (and its links' count), by run
    name and job_id; prepared, its rows processed as SQLAlchemy's (pg.Prepared)."""
    runs, jobs = Run.__table__, Job.__table__
    columns = [*_run_columns(), *(c.label(f"j_{c.key}") for c in jobs.c),
               _xmin().label("token")]
    if count_links:
        columns.append(_link_count().label("linked"))
    statement = (select(*columns).select_from(jobs.join(runs, runs.c.id == jobs.c.run_id))
                 .where(runs.c.name == bindparam("p_name", type_=runs.c.name.type),
                        jobs.c.job_id == bindparam("p_job_id", type_=jobs.c.job_id.type)))
    return Prepared("paddles_plan_report" + ("_linked" if count_links else ""), statement,
                    ("p_name", "p_job_id"), process_results=True)


@functools.cache
def _plan_read_run() -> Prepared:
    """The run's columns by name, and the ids of the nodes named `p_hosts` (an array)."""
    runs, nodes = Run.__table__, Node.__table__
    node_ids = (select(func.array_agg(nodes.c.id))
                .where(nodes.c.name == any_(bindparam("p_hosts", type_=ARRAY(String))))
                .scalar_subquery().label("node_ids"))
    statement = (select(*_run_columns(), node_ids)
                 .where(runs.c.name == bindparam("p_name", type_=runs.c.name.type)))
    return Prepared("paddles_plan_create", statement, ("p_name", "p_hosts"),
                    {"p_hosts": ARRAY(String)}, process_results=True)


def _deltas(run: RunValues, counts_was: dict[str, int]) -> dict[str, int]:
    return {f"count_{key}": value - counts_was[key] for key, value in run.counts().items()}


def _run_values(run: RunValues, fields: Mapping[str, Any]) -> dict[str, Any]:
    """What the write sets on the run besides counters and status: `updated`, and the keys
    it copies from the job (set whatever the run holds by then, as the general path does)."""
    return {"updated": run.updated,
            **{key: getattr(run, key) for key in RUN_COPIED_KEYS if key in fields}}


def _event_row(session: Session, run: RunValues, job: JobValues, type_: str | None,
               data: dict[str, Any]) -> dict[str, Any] | None:
    return None if type_ is None else events.event_row(
        session, type_, data, subject=f"runs/{run.name}/jobs/{job.job_id}",
        run_name=run.name, job_id=job.job_id)


def apply_planned(session: Session, plan: PlannedUpdate) -> bool:
    """Write the plan and its events if it still holds: an update's job is still the row it
    was worked out on; a new job's run still has the first job's values it was planned
    with. False, having changed nothing, when not (or the run or job is gone). A new job
    whose job_id the run has by then is AlreadyExists (400); its id is set on plan.job."""
    run, job = plan.run, plan.job
    create = plan.token is None
    moves = any(plan.deltas.values())
    params = {"p_run": run.id,
              **{f"p_{key}": value for key, value in plan.job_values.items()},
              **{f"p_run_{key}": value for key, value in plan.run_values.items()},
              **{f"p_d_{key}": delta for key, delta in plan.deltas.items()}}
    if create:
        params.update(p_first_sha1=job.sha1, p_first_flavor=job.flavor,
                      p_first_priority=job.priority, p_nodes=list(plan.node_ids))
    else:
        params.update(p_job=job.id, p_token=plan.token)
    if plan.event is not None:
        params.update({f"p_ev_{key}": value for key, value in plan.event.items()})
    if moves:  # the run's status may move: its event is worked out in the statement
        params["p_job_started"] = job.started
        params.update({f"p_rs_{key}": value for key, value in _run_status_event(
            session, run).items()})
    statement = _planned_statement(tuple(plan.job_values), tuple(plan.run_values),
                                   plan.event is not None, moves, create,
                                   bool(plan.node_ids))
    got = execute_alone(session, statement, params).first()
    if got is None:
        return False
    if create:
        if got[1] is None:
            raise AlreadyExists(f"job with job_id {job.job_id} already exists")
        job.id = got[1]
    if plan.event is not None:
        events.writer_locked(session)
    return True


def _run_status_event(session: Session, run: RunValues) -> dict[str, Any]:
    """The run.status event's row but for what the statement fills in (its data, username)."""
    row = events.event_row(session, "run.status", {}, subject=f"runs/{run.name}",
                           run_name=run.name)
    return {key: row[key] for key in ("uuid", "time", "topic", "subject", "run_name")}


_COUNT_COLUMNS = tuple(f"count_{key}" for key in COUNT_KEYS)  # a write moves these


@functools.lru_cache(maxsize=256)
def _planned_statement(job_keys: tuple[str, ...], run_keys: tuple[str, ...], with_event: bool,
                       moves: bool, create: bool = False, links: bool = False) -> Prepared:
    """One statement, built once per shape of write, prepared on the server per connection
    (pg.Prepared: parsed and planned once) and bound per request. An update:

        WITH run_lock AS (SELECT id, status FROM runs WHERE id = :p_run
                          FOR NO KEY UPDATE),
             job_update AS (UPDATE jobs SET ... WHERE id = :p_job AND xmin = :p_token
                            AND run_id = (SELECT id FROM run_lock) RETURNING id),
             run_update AS (UPDATE runs SET count_* = count_* + :p_d_*,
                            status = <run_status_sql of the new counters>, started = ...,
                            version = version + 1, ...
                            WHERE id = :p_run AND EXISTS (SELECT FROM job_update)
                            RETURNING <the run's values>,
                                      pg_advisory_xact_lock_shared(<events key>)),
             inserted AS (INSERT INTO events (...)
                          SELECT <the job's event> FROM run_update
                          UNION ALL
                          SELECT <run.status> FROM run_update, run_lock
                          WHERE run_update.status <> run_lock.status)
        SELECT run_update.status FROM run_update

    (without an event, run_update is the statement, without the events' lock; the status
    and run.status only when the counters move, `moves`). A new job (`create`): run_lock
    also requires the run to have no job or the first job's values the job has (it cannot
    move the run's first job's values, which the run takes when it had no job);
    `job_insert` (INSERT ... SELECT ... FROM run_lock ON CONFLICT DO NOTHING) takes the
    place of job_update, `links` inserts its node links (`links`), and the statement
    returns (run id, job id or null: the job_id is taken), no row when run_lock found none.

    The run is locked first, the lock order of every job write: `run_lock` is evaluated
    before the job's row is written (an InitPlan of the UPDATE, the source of the INSERT),
    and gives the run's status on the newest version of its row (a locking read in READ
    COMMITTED follows the row to its newest version and re-checks its conditions there).
    The job's row is checked against `xmin` on its newest version (a row updated since the
    statement's snapshot is re-checked by PostgreSQL's EvalPlanQual); the run is written
    only when the job was, and on its newest version; the events' lock is taken after every
    row lock, before the events' ids are drawn (the job's first, then the run's); the
    events' data take the run's context and counters (`results`) from the run as written.
    It is a whole job write: run alone (autocommit), it commits as it returns."""
    jobs, runs = Job.__table__, Run.__table__
    types: dict[str, Any] = {}

    def bound(name: str, type_):
        types[name] = type_
        return bindparam(name, type_=type_)

    first = [(runs.c[key], bound(f"p_first_{key}", runs.c[key].type))
             for key in FIRST_JOB_KEYS] if create else []
    run_lock = select(runs.c.id, runs.c.status).where(runs.c.id == bound("p_run", runs.c.id.type))
    if create:  # no job yet, or the first job's values are the new job's
        run_lock = run_lock.where(or_(runs.c.count_total == literal_column("0"),
                                      and_(*(c.is_not_distinct_from(v) for c, v in first))))
    run_lock = run_lock.with_for_update(key_share=True).cte("run_lock")
    if create:  # the run's id from run_lock
        inserted_keys = [key for key in job_keys if key != "run_id"]
        job_write = (pg_insert(jobs).from_select(
            ["run_id", *inserted_keys],
            select(run_lock.c.id, *(bound(f"p_{key}", jobs.c[key].type)
                                    for key in inserted_keys)),
            include_defaults=False)
            .on_conflict_do_nothing(index_elements=["run_id", "job_id"])
            .returning(jobs.c.id).cte("job_write"))
    else:
        job_write = (update(jobs)
                     .where(jobs.c.id == bound("p_job", jobs.c.id.type),
                            _xmin() == bound("p_token", Text()),
                            jobs.c.run_id == select(run_lock.c.id).scalar_subquery())
                     .values({key: bound(f"p_{key}", jobs.c[key].type) for key in job_keys})
                     .returning(jobs.c.id).cte("job_write"))
    ctes = []
    if links:
        nodes = (func.unnest(bound("p_nodes", ARRAY(Integer))).table_valued("node_id")
                 .render_derived())
        ctes.append(insert(job_nodes).from_select(
            ["job_id", "node_id"], select(job_write.c.id, nodes.c.node_id),
            include_defaults=False).cte("links"))
    counted = (*COUNT_KEYS, "total") if create else COUNT_KEYS
    new_counts = {key: runs.c[f"count_{key}"] + bound(f"p_d_count_{key}",
                                                        runs.c.count_total.type)
                  for key in counted}
    run_values: dict[str, Any] = {f"count_{key}": value for key, value in new_counts.items()}
    if moves:
        status = run_status_sql({"total": runs.c.count_total, **new_counts})
        running = literal_column(f"'{RunStatus.RUNNING.value}'")
        run_values["status"] = status
        run_values["started"] = case(
            (and_(runs.c.status.is_distinct_from(running), status == running),
             bound("p_job_started", runs.c.started.type)), else_=runs.c.started)
    if create:  # the run's only job is its first
        run_values.update({c.key: case((runs.c.count_total == literal_column("0"), v),
                                       else_=c) for c, v in first})
    run_values.update({key: bound(f"p_run_{key}", runs.c[key].type) for key in run_keys})
    run_values["version"] = runs.c.version + literal_column("1")
    run_update = (update(runs).where(runs.c.id == bound("p_run", runs.c.id.type),
                                     select(job_write.c.id).exists())
                  .values(run_values))
    name = "paddles_" + ("create_" if create else "report_") + hashlib.sha1(
        repr((job_keys, run_keys, with_event, moves, links)).encode()).hexdigest()[:16]
    if not with_event:  # no events' lock: nothing to insert
        if moves or create:
            raise ValueError("a write that moves the counters records its job's event")
        return Prepared(name, run_update.returning(runs.c.status), tuple(types), types)
    written = run_update.returning(runs.c.status, runs.c.name, runs.c.user, runs.c.suite,
                                   runs.c.branch, runs.c.machine_type, runs.c.count_total,
                                   *(runs.c[key] for key in _COUNT_COLUMNS),
                                   events.writer_lock()).cte("run_update")
    table = Event.__table__
    context = _pairs(run=written.c.name, user=written.c.user, suite=written.c.suite,
                     branch=written.c.branch, machine_type=written.c.machine_type)
    results = _pairs(results=func.jsonb_build_object(*_pairs(
        **{key: written.c[f"count_{key}"] for key in (*COUNT_KEYS, "total")})))
    columns = ("uuid", "time", "topic", "type", "subject", "run_name", "job_id", "username",
               "data")

    def value(prefix: str, key: str):  # typed in the SQL: a UNION's parameters are text
        return cast(bound(f"{prefix}{key}", table.c[key].type), table.c[key].type)

    job_data = cast(bound("p_ev_data", table.c.data.type), JSONB).op("||")(
        func.jsonb_build_object(*context, *results))
    rows = select(*(value("p_ev_", key) for key in columns[:7]), written.c.user, job_data,
                  literal_column("1").label("ord"))
    if moves:
        run_data = func.jsonb_build_object(*context, *results, *_pairs(
            status=written.c.status, old_status=run_lock.c.status))
        run_event = select(*(value("p_rs_", key) for key in ("uuid", "time", "topic")),
                           literal_column("'run.status'"), value("p_rs_", "subject"),
                           value("p_rs_", "run_name"), null(), written.c.user, run_data,
                           literal_column("2")).where(written.c.status != run_lock.c.status)
        rows = union_all(rows, run_event)
    ordered = rows.subquery("new_events")
    ctes.append(insert(table).from_select(
        list(columns), select(*(ordered.c[i] for i in range(len(columns))))
        .order_by(ordered.c.ord)).returning(table.c.id).cte("inserted"))
    if create:
        result = (select(run_lock.c.id, job_write.c.id)
                  .select_from(run_lock.outerjoin(job_write, true()))
                  .add_cte(written))
    else:
        result = select(written.c.status)
    return Prepared(name, result.add_cte(*ctes), tuple(types), types)


def _pairs(**values) -> list:
    """jsonb_build_object's arguments: key, value, key, value, ..."""
    return [arg for key, value in values.items()
            for arg in (literal_column(f"'{key}'"), value)]


def _link_count():
    return (select(func.count()).select_from(job_nodes)
            .where(job_nodes.c.job_id == Job.id).scalar_subquery())


def _lock_run_and_job(session: Session, run_name: str, job_id: str, count_links: bool,
                      missing: str) -> tuple[Run, Job, int | None]:
    """The run and its job in one SELECT, both rows locked (run first: the lock order of
    every job write) and reloaded, so a waiter sees what the lock holder wrote; with
    `count_links`, also how many nodes the job is linked to."""
    columns: list = [Run, Job]
    if count_links:
        columns.append(_link_count())
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


def _apply_write(session: Session, run: Run | RunValues, job: Job | JobValues,
                 fields: Mapping[str, Any], *,
                 new: bool, insert: bool = False, linked: int | None = None) -> None:
    """The write's values on `job` and `run`. `insert`: the caller inserts the job row and
    links its targets and refreshes the first job itself (create_job). `linked`: how many
    nodes the job is linked to already, when known."""
    now = utcnow()
    job.updated = run.updated = now
    run_was = run.status
    old = job.status

    status = _resolve_status(job, fields)
    if status is not None and status != old:
        if status == JobStatus.RUNNING and (old in (None, JobStatus.QUEUED)
                                            or job.started is None):
            job.started = now
        job.status = status
        run.add_to_count(count_key(old), -1)
        run.add_to_count(count_key(status), 1)
        run.refresh_status()
        if run_was != RunStatus.RUNNING and run.status == RunStatus.RUNNING:
            run.started = job.started
    elif new:
        run.refresh_status()

    if "success" in fields:
        job.success = fields["success"]
    for key, value in fields.items():
        if key in ("status", "success", "job_id", "updated"):
            continue
        if key == "priority" and not new and value != job.priority \
                and old != JobStatus.QUEUED:
            continue  # priority only moves while the job waits in the queue
        setattr(job, key, value)
        if key in RUN_COPIED_KEYS and getattr(run, key) != value:
            setattr(run, key, value)
    if fields.get("updated") is not None:
        job.updated = run.updated = fields["updated"]

    if insert:
        return
    targets = fields.get("targets")
    if isinstance(targets, dict) and targets:
        _link_targets(session, job, targets, fields.get("machine_type"), new=new,
                      linked=linked)


def _resolve_status(job: Job | JobValues, fields: Mapping[str, Any]) -> JobStatus | None:
    """Status rules 3a-3c: what the job's status becomes, or None to leave it."""
    if "status" in fields:
        if job.status in FINISHED:
            return None
        return JobStatus(fields["status"])
    if "success" in fields:
        success = fields["success"]
        if success is None:
            return None if job.status in FINISHED else JobStatus.UNKNOWN
        return JobStatus.PASS if success else JobStatus.FAIL
    if job.success is None and job.status is None:
        return JobStatus.UNKNOWN
    return None


def _refresh_first_job(session: Session, run: Run) -> None:
    session.flush()
    first = session.execute(select(Job.sha1, Job.flavor, Job.priority)
                            .where(Job.run_id == run.id)
                            .order_by(Job.sort_key).limit(1)).first()
    run.sha1, run.flavor, run.priority = first if first is not None else (None, None, None)


def _link_targets(session: Session, job: Job | JobValues, targets: dict,
                  machine_type: str | None, *,
                  new: bool, linked: int | None = None) -> None:
    """Link the job to the nodes its targets name, creating the nodes that do not exist.
    A new job's links go in with one INSERT ... SELECT over the nodes that exist; only
    hosts without a node cost more."""
    if linked is None:
        session.flush()
        linked = 0 if new else session.scalar(
            select(func.count()).select_from(job_nodes).where(job_nodes.c.job_id == job.id))
    if len(targets) <= linked:
        return
    hosts = _hosts(targets)
    if not hosts:
        return
    if new:
        done = session.execute(
            insert(job_nodes).from_select(
                ["job_id", "node_id"],
                select(bindparam("link_job", job.id, type_=Job.__table__.c.id.type),
                       Node.id)
                .where(Node.name.in_(hosts)))).rowcount
        if done == len(hosts):
            return
    existing = dict(session.execute(select(Node.name, Node.id).where(Node.name.in_(hosts))).all())
    for host in hosts:
        if host not in existing:
            existing[host] = _create_node_for_host(session, host, machine_type)
    already = set(session.scalars(select(job_nodes.c.node_id)
                                  .where(job_nodes.c.job_id == job.id)))
    rows = [{"job_id": job.id, "node_id": existing[h]} for h in hosts
            if existing[h] not in already]
    if rows:
        session.execute(insert(job_nodes), rows)


def _create_node_for_host(session: Session, host: str, machine_type: str | None) -> int:
    return node_service.ensure_node(session, host, machine_type)[0].id



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


def _hosts(targets: Any) -> list[str]:
    """The hosts a job's targets name (`user@host` keys), sorted, without repeats. A name is
    cut to the node column, so a lookup finds what was created; `user@` names no host."""
    if not isinstance(targets, dict):
        return []
    hosts = {str(key).rsplit("@", 1)[-1][:NODE_NAME_LENGTH] for key in targets}
    return sorted(h for h in hosts if h)


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
        if _hosts(targets):
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
                hosts = _hosts(job.targets)
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
