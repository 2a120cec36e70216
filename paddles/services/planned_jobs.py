"""Job writes on PostgreSQL worked out before the run is locked, then written by one
statement: a job report (services/jobs.update_job) and a new job in a run that exists
(services/jobs.create_job).

Every job write of a run queues on its run's row (the counters). The general path
(services/jobs.py, the one SQLite always takes) holds that lock from its first SELECT to
COMMIT, with the whole write's Python between. Here the write is worked out on the run's
and job's rows read without a lock (plan_update: the rules of services/job_rules.py on
RunValues and JobValues; a new job, plan_create, needs no read: the statement finds its
run by name and checks what the plan assumes), and then one prepared statement locks
the run, writes the job (an update only if its row is still the one read: its `xmin`,
which every UPDATE of the row changes), moves the counters by their deltas and the run's
status with them, takes the events' shared lock and inserts the events (apply_planned).
Run alone (pg.runs_alone: in autocommit, each on a pooled connection of its own, with no
Session transaction around them), the read and the write are each a transaction of their
own: the run's lock is held by the write statement alone, and it commits as it returns.
A write that does not fit (new targets to link, a first job that may move, a new run, no
job_id, a job written in between) goes down the general path, having changed nothing."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import typing
from typing import Any
from collections.abc import Mapping

from sqlalchemy import (BindParameter, ColumnElement, String, Table, Text, and_,
                        any_, bindparam, case, cast, func, insert, literal_column, null, or_,
                        select, true, union_all, update)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ..errors import AlreadyExists, JobNotFound
from ..models import Event, Job, Node, Run, RunStatus, job_nodes, utcnow
from ..models.base import RowValues, mapped_columns, sortable_job_id
from ..models.runs import RunValues
from ..models.statuses import COUNT_KEYS, count_key, run_status_sql
from ..pg import Prepared, execute_alone
from . import events
from .job_rules import (FIRST_JOB_KEYS, JOB_COLUMNS, RUN_COPIED_KEYS, apply_write,
                        hosts_of, link_count)


class JobValues(RowValues):
    """A job's values: those a report's rules read and those it names (_plan_read), or
    every column for a new job (plan_create)."""


@dataclasses.dataclass
class PlannedUpdate:
    run: RunValues  # the values read, then those the write gives it
    job: JobValues
    token: str | None  # the job row's xmin when read; None: a new job (plan_create)
    job_values: dict[str, Any]  # the job's changed values; a new job's every column
    deltas: dict[str, int]  # count_<key> -> change
    run_values: dict[str, Any]  # updated, and the keys a job write copies onto its run
    event: dict[str, Any] | None  # the job's event row; the run's part of its data to come
    hosts: tuple[str, ...] = ()  # a new job: the hosts its targets name (hosts_of)


def _xmin() -> ColumnElement[str]:
    return cast(literal_column(f"{Job.__tablename__}.xmin"), Text)


def plan_update(session: Session, run_name: str, job_id: str, fields: Mapping[str, Any],
                missing: str) -> PlannedUpdate | None:
    """The job update worked out on the run and job as read now, without a lock; None when
    the general path is to do it (it links new targets, may move the run's first job, or
    changes nothing on the job). JobNotFound when the job does not exist."""
    count_links = "targets" in fields
    read = _plan_read(count_links, _JOB_KEYS.intersection(fields))
    row = execute_alone(session, read.prepared,
                        {"p_name": run_name, "p_job_id": job_id}).first()
    if row is None:
        raise JobNotFound(missing)
    run = RunValues.from_row(_PLAN_RUN_KEYS, row)
    job_was = dict(zip(read.job_keys, row[_PLAN_RUN_WIDTH:]))
    job = JobValues(job_was)
    token = row[read.token_at]
    linked = row[read.token_at + 1] if count_links else None
    targets = fields.get("targets")
    if isinstance(targets, dict) and linked is not None and len(targets) > linked:
        return None
    if any(key in fields and fields[key] != job_was[key] for key in FIRST_JOB_KEYS):
        return None
    counts_was = run.counts()
    before, old_status = events.job_snapshot(job, fields), job.status
    apply_write(session, run, job, fields, new=False, linked=linked)
    # in the read's order (the rules' columns, then the named ones sorted): one write
    # statement per set of changed columns, whatever the body's order (_planned_statement)
    job_values = {key: value for key, value in vars(job).items()
                  if key in _JOB_KEYS and (key not in job_was or value != job_was[key])}
    if not job_values:  # it changes nothing on the job (the same `updated` again)
        return None
    type_, data = events.job_event(run, job, created=False, old_status=old_status,
                                   before=before)
    return PlannedUpdate(run, job, token, job_values, _deltas(run, counts_was),
                         _run_values(run, fields), _event_row(session, run, job, type_, data))


def plan_create(session: Session, run_name: str, fields: Mapping[str, Any]
                ) -> PlannedUpdate | None:
    """A new job (create_job) worked out without reading its run: the write statement finds
    the run by name and checks what the plan assumes (apply_planned). None when the general
    path is to do it: the job has no job_id (the next one is drawn under the run's lock).
    The run is a stand-in with no job: a create's deltas, event and copied values do not
    depend on what the run holds (the statement adds the deltas to the run's counters and
    fills the event's run context and counters from the run as written)."""
    job_id = fields.get("job_id")
    if job_id is None:
        return None
    hosts = tuple(hosts_of(fields.get("targets")))
    run = RunValues({**_NO_RUN, "name": run_name})
    job = JobValues({**_NO_JOB, "job_id": job_id,
                     "sort_key": sortable_job_id(job_id), "posted": utcnow()})
    counts_was = run.counts()
    run.add_to_count("total", 1)
    run.add_to_count(count_key(None), 1)  # counted as its (null) status until the write below
    apply_write(session, run, job, fields, new=True, insert=True)
    type_, data = events.job_event(run, job, created=True)
    return PlannedUpdate(run, job, None, {key: getattr(job, key) for key in JOB_COLUMNS},
                         _deltas(run, counts_was), _run_values(run, fields),
                         _event_row(session, run, job, type_, data), hosts)


_COUNT_COLUMNS = tuple(f"count_{key}" for key in COUNT_KEYS)  # a write moves these
# Those a report's rules and events read (job_rules.apply_write, events.job_event): the
# plan reads no other (posted, scheduled, the first job's values, version).
_PLAN_RUN_KEYS = ("id", "name", "user", "suite", "branch", "machine_type", "status", "started",
                  "updated", *_COUNT_COLUMNS, "count_total")
_PLAN_RUN_WIDTH = len(_PLAN_RUN_KEYS)
# A new job's stand-ins before its values (plan_create): every column, as null
_NO_RUN = dict.fromkeys(mapped_columns(Run)[0])
_NO_JOB = dict.fromkeys(("id", *JOB_COLUMNS))
_JOB_KEYS = frozenset(JOB_COLUMNS)
# The job's columns every report's rules read or set (job_rules.apply_write, resolve_status;
# events.job_event; apply_planned): with those the write names, all the plan reads. A
# column it does not read is one the write leaves as it is.
_RULE_JOB_KEYS = ("id", "job_id", "status", "success", "started", "updated")


class _PlanRead(typing.NamedTuple):
    prepared: Prepared
    job_keys: tuple[str, ...]  # the job's columns it reads, after the run's
    token_at: int  # the xmin's position in its row (the links' count follows it)


@functools.lru_cache(maxsize=64)
def _plan_read(count_links: bool, named: frozenset[str]) -> _PlanRead:
    """The run's columns the rules read (_PLAN_RUN_KEYS), the job's the rules read and
    those the write names (`named`), the job row's xmin (and its links' count), by run name
    and job_id; prepared, its rows processed as SQLAlchemy's (pg.Prepared). One statement
    per shape of report: teuthology sends a handful (the `running` report, the final one
    with the job's config)."""
    runs, jobs = Run.__table__, Job.__table__
    job_keys = (*_RULE_JOB_KEYS, *sorted(named.difference(_RULE_JOB_KEYS)))
    columns = [*(runs.c[key].label(f"r_{key}") for key in _PLAN_RUN_KEYS),
               *(jobs.c[key].label(f"j_{key}") for key in job_keys),
               _xmin().label("token")]
    if count_links:
        columns.append(link_count().label("linked"))
    statement = (select(*columns).select_from(jobs.join(runs, runs.c.id == jobs.c.run_id))
                 .where(runs.c.name == bindparam("p_name", type_=runs.c.name.type),
                        jobs.c.job_id == bindparam("p_job_id", type_=jobs.c.job_id.type)))
    shape = hashlib.sha1(repr((count_links, job_keys)).encode()).hexdigest()[:16]
    prepared = Prepared(f"paddles_plan_report_{shape}", statement, ("p_name", "p_job_id"),
                        process_results=True)
    return _PlanRead(prepared, job_keys, _PLAN_RUN_WIDTH + len(job_keys))


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
        params.update(p_name=run.name, p_first_sha1=job.sha1, p_first_flavor=job.flavor,
                      p_first_priority=job.priority, p_hosts=list(plan.hosts))
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
                                   bool(plan.hosts))
    got = execute_alone(session, statement, params).first()
    if got is None:
        return False
    if create:
        if got[1] is None:
            raise AlreadyExists(f"job with job_id {job.job_id} already exists")
        run.id = job.run_id = got[0]
        job.id = got[1]
    if plan.event is not None:
        events.writer_locked(session)
    return True


def _run_status_event(session: Session, run: RunValues) -> dict[str, Any]:
    """The run.status event's row but for what the statement fills in (its data, username)."""
    row = events.event_row(session, "run.status", {}, subject=f"runs/{run.name}",
                           run_name=run.name)
    return {key: row[key] for key in ("uuid", "time", "topic", "subject", "run_name")}


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
    finds the run by name (`p_name`; the plan read nothing) and also requires it to have
    no job or the first job's values the job has (it cannot move the run's first job's
    values, which the run takes when it had no job) and, with `links`, a node for every
    host in `p_hosts`; `job_insert` (INSERT ... SELECT ... FROM run_lock ON CONFLICT DO
    NOTHING) takes the place of job_update, `links` inserts its node links, and the
    statement returns (run id, job id or null: the job_id is taken), no row when run_lock
    found none (the general path then creates the run or the nodes, or moves the first
    job).

    The run is locked first, the lock order of every job write: `run_lock` is evaluated
    before the job's row is written (an InitPlan of the UPDATE, the source of the INSERT),
    and gives the run's status on the newest version of its row (a locking read in READ
    COMMITTED follows the row to its newest version and re-checks its conditions there).
    The job's row is checked against `xmin` on its newest version (a row updated since the
    statement's snapshot is re-checked by PostgreSQL's EvalPlanQual); the run is written
    only when the job was, and on its newest version; the events' lock is taken after every
    row lock, before the events' ids are drawn (the job's first, then the run's); the
    events' data take the run's context and counters (`results`) from the run as written.
    It is a whole job write: run alone (autocommit), it commits as it returns.

    An update is sent behind `paddles_lock_run` (the run's lock alone, pg.Prepared's
    `first`), in the same message and transaction: a report waits for its run there, and
    its statement then starts on the run's newest row. The jobs of a run finish together,
    and when the statement itself waited for the lock, PostgreSQL re-checked the row
    against the statement's whole plan, twice (run_lock, run_update): that was a tenth of
    PostgreSQL's time in a run's `running` reports from 8 clients. A create's run is
    rarely contended (a run's jobs are posted one after another): it locks in the
    statement."""
    jobs, runs = typing.cast(Table, Job.__table__), typing.cast(Table, Run.__table__)
    types: dict[str, Any] = {}

    def bound(name: str, type_: Any) -> BindParameter[Any]:
        types[name] = type_
        return bindparam(name, type_=type_)

    first = [(runs.c[key], bound(f"p_first_{key}", runs.c[key].type))
             for key in FIRST_JOB_KEYS] if create else []
    nodes = typing.cast(Table, Node.__table__)
    hosts = bound("p_hosts", ARRAY(String)) if links else None
    if create:  # by name; no job yet, or the first job's values are the new job's
        locked = select(runs.c.id, runs.c.status).where(
            runs.c.name == bound("p_name", runs.c.name.type),
            or_(runs.c.count_total == literal_column("0"),
                and_(*(c.is_not_distinct_from(v) for c, v in first))))
        if hosts is not None:  # and a node for every host its targets name
            locked = locked.where(
                select(func.count()).where(nodes.c.name == any_(hosts)).scalar_subquery()
                == func.cardinality(hosts))
    else:
        locked = select(runs.c.id, runs.c.status).where(
            runs.c.id == bound("p_run", runs.c.id.type))
    run_lock = locked.with_for_update(key_share=True).cte("run_lock")
    run_id = select(run_lock.c.id).scalar_subquery()
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
                            _xmin() == bound("p_token", Text()), jobs.c.run_id == run_id)
                     .values({key: bound(f"p_{key}", jobs.c[key].type) for key in job_keys})
                     .returning(jobs.c.id).cte("job_write"))
    ctes = []
    if hosts is not None:
        ctes.append(insert(job_nodes).from_select(
            ["job_id", "node_id"],
            select(job_write.c.id, nodes.c.id).where(nodes.c.name == any_(hosts)),
            include_defaults=False).cte("links"))
    counted = (*COUNT_KEYS, "total") if create else COUNT_KEYS
    new_counts = {key: runs.c[f"count_{key}"] + bound(f"p_d_count_{key}",
                                                        runs.c.count_total.type)
                  for key in counted}
    run_values: dict[str, Any] = {f"count_{key}": value for key, value in new_counts.items()}
    if moves:
        status = run_status_sql({"total": runs.c.count_total, **new_counts})
        running: ColumnElement[str] = literal_column(f"'{RunStatus.RUNNING.value}'")
        run_values["status"] = status
        run_values["started"] = case(
            (and_(runs.c.status.is_distinct_from(running), status == running),
             bound("p_job_started", runs.c.started.type)), else_=runs.c.started)
    if create:  # the run's only job is its first
        run_values.update({c.key: case((runs.c.count_total == literal_column("0"), v),
                                       else_=c) for c, v in first})
    run_values.update({key: bound(f"p_run_{key}", runs.c[key].type) for key in run_keys})
    run_values["version"] = runs.c.version + literal_column("1")
    run_update = (update(runs).where(runs.c.id == run_id, select(job_write.c.id).exists())
                  .values(run_values))
    name = "paddles_" + ("create_" if create else "report_") + hashlib.sha1(
        repr((job_keys, run_keys, with_event, moves, links)).encode()).hexdigest()[:16]
    if not with_event:  # no events' lock: nothing to insert
        if moves or create:
            raise ValueError("a write that moves the counters records its job's event")
        return Prepared(name, run_update.returning(runs.c.status), tuple(types), types,
                        first=None if create else _lock_run())
    written = run_update.returning(runs.c.status, runs.c.name, runs.c.user, runs.c.suite,
                                   runs.c.branch, runs.c.machine_type, runs.c.count_total,
                                   *(runs.c[key] for key in _COUNT_COLUMNS),
                                   events.writer_lock()).cte("run_update")
    table = typing.cast(Table, Event.__table__)
    context = _pairs(run=written.c.name, user=written.c.user, suite=written.c.suite,
                     branch=written.c.branch, machine_type=written.c.machine_type)
    results = _pairs(results=func.jsonb_build_object(*_pairs(
        **{key: written.c[f"count_{key}"] for key in (*COUNT_KEYS, "total")})))
    columns = ("uuid", "time", "topic", "type", "subject", "run_name", "job_id", "username",
               "data")

    def value(prefix: str, key: str) -> ColumnElement[Any]:
        # typed in the SQL: a UNION's parameters would be text
        return cast(bound(f"{prefix}{key}", table.c[key].type), table.c[key].type)

    job_data = cast(bound("p_ev_data", table.c.data.type), JSONB).op("||")(
        func.jsonb_build_object(*context, *results))
    rows: Any = select(*(value("p_ev_", key) for key in columns[:7]), written.c.user, job_data,
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
    return Prepared(name, result.add_cte(*ctes), tuple(types), types,
                    first=None if create else _lock_run())


@functools.cache
def _lock_run() -> Prepared:
    """The run's row lock, sent ahead of a report's statement (Prepared's `first`)."""
    runs = Run.__table__
    return Prepared("paddles_lock_run", select(runs.c.id).where(
        runs.c.id == bindparam("p_run", type_=runs.c.id.type)).with_for_update(key_share=True),
        ("p_run",))


def _pairs(**values: Any) -> list[Any]:
    """jsonb_build_object's arguments: key, value, key, value, ..."""
    out: list[Any] = []
    for key, value in values.items():
        out += (literal_column(f"'{key}'"), value)
    return out
