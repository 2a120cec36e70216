"""Runs: creation from a name, lookups, listing and deletion."""
from __future__ import annotations

import datetime as dt
from itertools import chain

from sqlalchemy import bindparam, delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..pg import Prepared, execute_alone
from ..errors import AlreadyExists, NotFound, RunNotFound
from ..models import Run, RunStatus, utcnow
from ..run_names import parse_run_name
from . import events
from .common import add_if_new, fetch_one


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
    from ..models import Job
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
    return run_id, posted.astimezone(dt.timezone.utc).isoformat(), version


_RUN_STATE = Prepared(
    "paddles_run_state",
    select(Run.id, Run.posted, Run.version).where(
        Run.name == bindparam("rs_name", type_=Run.__table__.c.name.type)),
    ("rs_name",))


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
              offset: int = 0) -> list[Run]:
    """One SELECT whatever the number of jobs: counts and first-job values live on the run."""
    stmt = select(Run).where(*conditions).order_by(*(order if order is not None
                                                      else (Run.posted.desc(),)), Run.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    elif offset:
        stmt = stmt.offset(offset)
    return list(session.scalars(stmt))


def list_filtered_runs(session: Session, chain, *, limit: int | None, offset: int = 0,
                       since=None) -> list[Run]:
    conds = chain.conditions()
    if since is not None:
        conds.append(Run.scheduled >= since)
    return list_runs(session, conds, order=(Run.scheduled.desc(),), limit=limit, offset=offset)


def list_queued_runs(session: Session) -> list[Run]:
    """Runs with a queued job: read from the stored counter, not the jobs table."""
    return list_runs(session, (Run.count_queued > 0,), order=(Run.scheduled.asc(),))


def list_values(session: Session, chain) -> list[str]:
    """Distinct non-empty values of the chain's index field among the matching runs."""
    from ..filters import FILTERS
    from ..models import Job
    target = FILTERS[chain.index]
    column = target.index_column
    stmt = select(column).distinct().where(*chain.conditions())
    if target.on_jobs:
        stmt = stmt.select_from(Job).join(Run, Job.run_id == Run.id)
    values = {str(v) if chain.index == "date" else (v.value if hasattr(v, "value") else v)
              for v in session.scalars(stmt)}
    return sorted(v for v in values if v)
