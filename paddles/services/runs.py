"""Runs: creation from a name, lookups, listing and deletion; the run maintenance of the
`paddles` admin commands (set-status, dedupe, delete-run, reparse)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from itertools import chain
from typing import Any
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Integer, bindparam, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..pg import Prepared, execute_alone
from ..errors import AlreadyExists, NotFound, RunNotFound
from ..models import Job, Run, RunStatus, utcnow
from ..models.base import mapped_columns
from ..models.runs import HAS_QUEUED, RunValues
from ..models.statuses import COUNT_KEYS, count_key, run_status
from ..run_names import parse_run_name
from . import events
from .common import BATCH, Progress, add_if_new, fetch_one, in_batches, tick


# ---- run versions -------------------------------------------------------------------------
# runs.version moves on every change to a run or its jobs, in the same transaction, so a
# reader holding (run id, version) knows the run detail it built is still current
# (paddles/cache.py). ORM changes are caught here, at flush; the Core statements that write
# runs or jobs (the heartbeat) bump it themselves with VERSION_BUMP. The listener is on the
# session factory paddles builds (db.make_session_factory calls `listen`).
VERSION_BUMP = Run.version + 1


def listen(factory: sessionmaker) -> None:
    event.listen(factory, "before_flush", bump_run_versions)


def bump_run_versions(session: Session, _context, _instances) -> None:
    bumped: set[int] = set()
    for obj in session.dirty:
        if isinstance(obj, Run) and session.is_modified(obj):
            obj.version = VERSION_BUMP
            bumped.add(obj.id)
    touched: set[int] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Job) and obj.run_id is not None \
                and (obj not in session.dirty or session.is_modified(obj)):
            touched.add(obj.run_id)
    for run_id in touched - bumped:
        run = session.identity_map.get(session.identity_key(Run, run_id))
        if run is not None:
            run.version = VERSION_BUMP
        else:
            session.execute(update(Run).where(Run.id == run_id).values(version=VERSION_BUMP)
                            .execution_options(synchronize_session=False))


def _fit(value: str, column) -> str:
    """Values parsed from a name are cut to their column (a name is never refused for them)."""
    return value[: column.type.length]


def new_run(name: str, timezone: str = "UTC") -> Run:
    parsed = parse_run_name(name, timezone)
    now = utcnow()
    cols = Run.__table__.c
    return Run(name=name, user=_fit(parsed.user, cols.user), status=RunStatus.EMPTY,
               posted=now, scheduled=parsed.scheduled or now,
               suite=_fit(parsed.suite, cols.suite), branch=_fit(parsed.branch, cols.branch),
               machine_type=_fit(parsed.machine_type, cols.machine_type))


def create_run(session: Session, name: str, timezone: str = "UTC") -> Run:
    """Insert a run; AlreadyExists if the name is taken (also when a racer wins)."""
    if session.scalar(select(Run.id).where(Run.name == name)) is not None:
        raise AlreadyExists(f"run with name {name} already exists")
    run = new_run(name, timezone)
    if not add_if_new(session, run):  # a concurrent request created it first
        raise AlreadyExists(f"run with name {name} already exists")
    events.record_run_created(session, run)
    return run


def get_run(session: Session, name: str, *, for_update: bool = False,
            missing: str = "run not found") -> Run:
    return fetch_one(session, select(Run).where(Run.name == name), for_update=for_update,
                     missing=RunNotFound(missing))


def run_values(session: Session, run_id: int, *, missing: str = "run not found") -> RunValues:
    """The row of the run `run_id` as values, no ORM object (a run document is rendered from
    it): one prepared SELECT, on a pooled connection of its own when the request has run
    nothing else (pg.execute_alone). Loading it as a Run cost a quarter of a run document's
    miss, the SQL a tenth of that."""
    row = execute_alone(session, _RUN_ROW, {"rv_id": run_id}).first()
    if row is None:
        raise RunNotFound(missing)
    return RunValues.from_row(_RUN_KEYS, row)


def run_state(session: Session, name: str, *, missing: str = "run not found") -> tuple:
    """What names the current state of the run and its jobs (paddles/cache.py), read with one
    narrow SELECT and no ORM object: (id, posted, version). The version moves with every
    change; `posted` tells apart a run re-created under a reused id (SQLite). Prepared on
    PostgreSQL, and on a pooled connection of its own when the request has run nothing else
    (pg.execute_alone): a cached run document costs this one round trip."""
    row = execute_alone(session, _RUN_STATE, {"rs_name": name}).first()
    if row is None:
        raise RunNotFound(missing)
    run_id, posted, version = row  # posted: aware (UTCDateTime, or psycopg2's timestamptz)
    return run_id, posted.astimezone(dt.UTC).isoformat(), version


_RUN_STATE = Prepared(
    "paddles_run_state",
    select(Run.id, Run.posted, Run.version).where(
        Run.name == bindparam("rs_name", type_=Run.__table__.c.name.type)),
    ("rs_name",))


_RUN_KEYS, _RUN_COLUMNS = mapped_columns(Run)
_RUN_ROW = Prepared(
    "paddles_run_row",
    select(*_RUN_COLUMNS).where(Run.id == bindparam("rv_id", type_=Run.__table__.c.id.type)),
    ("rv_id",), process_results=True)

# the newest runs, a page of them (GET /runs/, pulpito's front page): built and planned once
# per connection; building the statement and SQLAlchemy's execution of it were a third of
# a 25-run list
_LATEST_RUNS = Prepared(
    "paddles_latest_runs",
    select(*_RUN_COLUMNS).order_by(Run.posted.desc(), Run.id.desc())
    .limit(bindparam("lr_limit", type_=Integer)).offset(bindparam("lr_offset", type_=Integer)),
    ("lr_limit", "lr_offset"), process_results=True)


def lock_or_create_run(session: Session, name: str, timezone: str = "UTC") -> Run:
    """The run row locked for this transaction, created first when it does not exist."""
    try:
        return get_run(session, name, for_update=True)
    except NotFound:
        pass
    try:
        create_run(session, name, timezone)
    except AlreadyExists:
        pass  # a concurrent request created it: take theirs
    return get_run(session, name, for_update=True)


def run_exists(session: Session, name: str) -> bool:
    return session.scalar(select(Run.id).where(Run.name == name)) is not None


def delete_run(session: Session, name: str) -> None:
    """Set-based: the database cascades to jobs and their node links."""
    gone = session.execute(delete(Run).where(Run.name == name).returning(
        Run.user, Run.suite, Run.branch, Run.machine_type, Run.status)).first()
    if gone is None:
        raise RunNotFound("attempted to delete a non-existent run")
    events.record_run_deleted(session, name, *gone)


# ---- listings -----------------------------------------------------------------------------

def list_runs(session: Session, conditions=(), *, order=None, limit: int | None = None,
              offset: int = 0) -> list[RunValues]:
    """One SELECT whatever the number of jobs: counts and first-job values live on the run.
    The runs come as values (Core rows, no ORM entities): loading 25 entities and reading
    their attributes back cost a sixth of a run list's instructions."""
    if not conditions and order is None and limit is not None:  # GET /runs/: prepared
        rows = execute_alone(session, _LATEST_RUNS,
                             {"lr_limit": limit, "lr_offset": offset}).rows
    else:
        stmt = select(*_RUN_COLUMNS).where(*conditions).order_by(
            *(order if order is not None else (Run.posted.desc(),)), Run.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        elif offset:
            stmt = stmt.offset(offset)
        # straight from the connection: the session's ORM execution adds nothing for columns
        rows = session.connection().execute(stmt)
    return [RunValues.from_row(_RUN_KEYS, row) for row in rows]


def list_filtered_runs(session: Session, chain, *, limit: int | None, offset: int = 0,
                       since=None) -> list[RunValues]:
    conds = chain.conditions()
    if since is not None:
        conds.append(Run.scheduled >= since)
    return list_runs(session, conds, order=(Run.scheduled.desc(),), limit=limit, offset=offset)


def list_queued_runs(session: Session) -> list[RunValues]:
    """Runs with a queued job: from runs.has_queued (count_queued > 0, kept by the
    database), not the jobs table."""
    return list_runs(session, (HAS_QUEUED,), order=(Run.scheduled.asc(),))


def list_values(session: Session, chain) -> list[str]:
    """Distinct non-empty values of the chain's index field among the matching runs."""
    from ..filters import FILTERS
    target = FILTERS[chain.index]
    column = target.index_column
    stmt = select(column).distinct().where(*chain.conditions())
    if target.on_jobs:
        stmt = stmt.select_from(Job).join(Run, Job.run_id == Run.id)
    values = {str(v) if chain.index == "date" else (v.value if hasattr(v, "value") else v)
              for v in session.scalars(stmt)}
    return sorted(v for v in values if v)


# ---- maintenance (the `paddles` admin commands, spec section 13) ----------------------------
# They take a session, never commit, and return plain records the command prints. Those that
# rewrite runs take the run rows with SELECT ... FOR UPDATE in id order (the job service
# takes the same lock before every job write), and decide only under that lock, so a
# concurrent job write can neither be lost nor make a counter drift. Long scans first look
# without locks, then lock only the runs they will change.

def lock_runs(session: Session, run_ids: Iterable[int]) -> dict[int, Run]:
    """The runs locked FOR UPDATE in id order (one fixed order: no deadlock between us)."""
    out: dict[int, Run] = {}
    for chunk in in_batches(sorted(set(run_ids))):
        stmt = (select(Run).where(Run.id.in_(chunk)).order_by(Run.id).with_for_update()
                .execution_options(populate_existing=True))
        out.update((run.id, run) for run in session.scalars(stmt))
    return out


@dataclasses.dataclass(frozen=True)
class RunChange:
    run: str
    old_status: str
    new_status: str
    details: tuple[str, ...] = ()


# ---- set-status ---------------------------------------------------------------------------

_DERIVED = ("sha1", "flavor", "priority")


def _derived_values(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Counters and first-job values as the jobs say they should be, per run id."""
    out: dict[int, dict[str, Any]] = {
        rid: {**{k: 0 for k in COUNT_KEYS}, "total": 0, "sha1": None, "flavor": None,
              "priority": None} for rid in run_ids}
    rows = session.execute(select(Job.run_id, Job.status, func.count())
                           .where(Job.run_id.in_(run_ids)).group_by(Job.run_id, Job.status))
    for run_id, status, n in rows:
        out[run_id][count_key(status)] += n
        out[run_id]["total"] += n
    rank = func.row_number().over(partition_by=Job.run_id, order_by=Job.sort_key).label("rank")
    first = (select(Job.run_id, Job.sha1, Job.flavor, Job.priority, rank)
             .where(Job.run_id.in_(run_ids)).subquery())
    for run_id, sha1, flavor, priority in session.execute(
            select(first.c.run_id, first.c.sha1, first.c.flavor, first.c.priority)
            .where(first.c.rank == 1)):
        out[run_id].update(sha1=sha1, flavor=flavor, priority=priority)
    return out


def _stored_values(run: Run) -> dict[str, Any]:
    values: dict[str, Any] = run.counts()
    values.update(sha1=run.sha1, flavor=run.flavor, priority=run.priority)
    return values


def _differences(run: Run, want: Mapping[str, Any]) -> tuple[str, ...]:
    have = _stored_values(run)
    diffs = [f"{key} {have[key]!r} -> {want[key]!r}" for key in (*COUNT_KEYS, "total", *_DERIVED)
             if have[key] != want[key]]
    status = run_status(want)
    if run.status != status:
        diffs.insert(0, f"status {run.status.value!r} -> {status.value!r}")
    return tuple(diffs)


def _run_batches(session: Session, progress: Progress | None) -> Iterator[list[Run]]:
    """Every run, BATCH at a time in id order (unlocked: callers lock what they change);
    each batch's changes are flushed and forgotten before the next, progress ticked."""
    total = session.scalar(select(func.count()).select_from(Run)) or 0
    done, last_id = 0, 0
    while batch := list(session.scalars(select(Run).where(Run.id > last_id)
                                        .order_by(Run.id).limit(BATCH))):
        last_id = batch[-1].id
        yield batch
        done += len(batch)
        tick(progress, done, total)
        session.flush()
        session.expunge_all()


def recompute_run_status(session: Session, *, progress: Progress | None = None
                         ) -> list[RunChange]:
    """Recompute every run's counters, first-job values and status from its jobs."""
    changes: list[RunChange] = []
    for batch in _run_batches(session, progress):
        want = _derived_values(session, [r.id for r in batch])
        drifted = [r.id for r in batch if _differences(r, want[r.id])]
        if drifted:
            runs = lock_runs(session, drifted)
            want = _derived_values(session, drifted)  # again, under the lock
            for run_id in drifted:
                run = runs[run_id]
                diffs = _differences(run, want[run_id])
                if not diffs:
                    continue
                old_status = run.status.value
                for key in (*COUNT_KEYS, "total"):
                    setattr(run, "count_" + key, want[run_id][key])
                for key in _DERIVED:
                    setattr(run, key, want[run_id][key])
                run.refresh_status()
                changes.append(RunChange(run.name, old_status, run.status.value, diffs))
                events.record_run_status(session, run, old_status)
    return changes


# ---- dedupe -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DuplicateReport:
    matching_runs: int
    duplicate_runs: list[tuple[str, int]]
    duplicate_jobs: list[tuple[str, str, int]]


def find_duplicates(session: Session, pattern: str) -> DuplicateReport:
    """Runs sharing a name and jobs sharing (run, job_id) among runs named LIKE pattern.

    The schema's unique constraints (runs.name; jobs (run_id, job_id)) make both lists
    empty on any database this server manages; the check remains for imported data.
    """
    like = Run.name.like(pattern)
    matching = session.scalar(select(func.count()).select_from(Run).where(like)) or 0
    runs = session.execute(select(Run.name, func.count()).where(like).group_by(Run.name)
                           .having(func.count() > 1).order_by(Run.name)).all()
    jobs = session.execute(select(Run.name, Job.job_id, func.count())
                           .join(Job, Job.run_id == Run.id).where(like)
                           .group_by(Run.name, Job.job_id).having(func.count() > 1)
                           .order_by(Run.name, Job.job_id)).all()
    return DuplicateReport(matching, [tuple(r) for r in runs], [tuple(j) for j in jobs])


# ---- delete-run ---------------------------------------------------------------------------

def delete_run_and_jobs(session: Session, name: str) -> int:
    """Delete a run (the database cascades to its jobs and node links); its job count."""
    run = session.scalar(select(Run).where(Run.name == name).with_for_update())
    if run is None:
        raise RunNotFound(f"run {name!r} not found")
    jobs = session.scalar(select(func.count()).select_from(Job).where(Job.run_id == run.id))
    session.execute(delete(Run).where(Run.id == run.id))
    session.expunge(run)
    events.record_run_deleted(session, run.name, run.user, run.suite, run.branch,
                              run.machine_type, run.status)
    return jobs or 0

# ---- reparse ------------------------------------------------------------------------------

_FROM_JOBS = ("suite", "branch", "machine_type")


def _reparse_changes(run: Run, job_set: Mapping[str, bool], timezone: str
                     ) -> dict[str, tuple[Any, Any]]:
    parsed = parse_run_name(run.name, timezone)
    want: dict[str, Any] = {"user": _fit(parsed.user, Run.__table__.c.user)}
    if parsed.scheduled is not None:  # unparsable: keep the stored time (it is posted)
        want["scheduled"] = parsed.scheduled
    for attr in _FROM_JOBS:
        if not job_set.get(attr):  # a value a job reported wins over the name
            want[attr] = _fit(getattr(parsed, attr), Run.__table__.c[attr])
    return {attr: (getattr(run, attr), value) for attr, value in want.items()
            if getattr(run, attr) != value}


def _job_set_fields(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, bool]]:
    rows = session.execute(select(Job.run_id, *(func.count(getattr(Job, a)) for a in _FROM_JOBS))
                           .where(Job.run_id.in_(run_ids)).group_by(Job.run_id))
    return {row[0]: {a: n > 0 for a, n in zip(_FROM_JOBS, row[1:])} for row in rows}


@dataclasses.dataclass(frozen=True)
class RunRewrite:
    run: str
    changes: dict[str, tuple[Any, Any]]


def reparse_run_names(session: Session, *, timezone: str = "UTC",
                      progress: Progress | None = None) -> list[RunRewrite]:
    """Rewrite user/scheduled/suite/branch/machine_type from each run's name where they differ.

    Fields a job of the run has reported (non-null suite/branch/machine_type) keep their
    job-derived value; a name without a valid timestamp keeps its stored `scheduled`.
    """
    out: list[RunRewrite] = []
    for batch in _run_batches(session, progress):
        job_set = _job_set_fields(session, [r.id for r in batch])
        candidates = [r.id for r in batch if _reparse_changes(r, job_set.get(r.id, {}), timezone)]
        if candidates:
            runs = lock_runs(session, candidates)
            job_set = _job_set_fields(session, candidates)
            for run_id in candidates:
                run = runs[run_id]
                changes = _reparse_changes(run, job_set.get(run_id, {}), timezone)
                for attr, (_old, new) in changes.items():
                    setattr(run, attr, new)
                if changes:
                    out.append(RunRewrite(run.name, changes))
    return out
