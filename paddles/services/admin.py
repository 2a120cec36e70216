"""Maintenance rules behind the `paddles` admin commands (spec section 13).

Every function takes a session, never commits, and returns plain records the command
prints. Functions that rewrite runs take the run rows with SELECT ... FOR UPDATE in id order
(the job service takes the same lock before every job write), and decide only under that
lock, so a concurrent job write can neither be lost nor make a counter drift. Long scans
first look without locks, then lock only the runs they will change.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from ..errors import InvalidRequest, NodeNotFound, PaddlesError, RunNotFound
from ..models import Job, JobStatus, Node, Run, job_nodes, utcnow
from ..models.statuses import COUNT_KEYS, count_key, run_status
from ..run_names import parse_run_name
from ..schemas.common import convert
from ..schemas.nodes import NODE_FIELDS
from . import events
from . import nodes as node_service

Progress = Callable[[int, int], None]  # progress(done, total)
BATCH = 500  # rows per IN (...) list / per scan step

ACTIVE = (JobStatus.RUNNING, JobStatus.WAITING, JobStatus.UNKNOWN)
FINISHED_FOR_STATS = (JobStatus.PASS, JobStatus.FAIL, JobStatus.DEAD)
# Host-name prefixes that name their machine type (spec 13, set_targets); `vpm*` -> vps.
MACHINE_TYPE_PREFIXES = ("plana", "mira", "vps", "burnupi", "tala", "saya", "dubia")


def _chunks(items: Sequence, size: int = BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def lock_runs(session: Session, run_ids: Iterable[int]) -> dict[int, Run]:
    """The runs locked FOR UPDATE in id order (one fixed order: no deadlock between us)."""
    out: dict[int, Run] = {}
    for chunk in _chunks(sorted(set(run_ids))):
        stmt = (select(Run).where(Run.id.in_(chunk)).order_by(Run.id).with_for_update()
                .execution_options(populate_existing=True))
        out.update((run.id, run) for run in session.scalars(stmt))
    return out


def _last_touch():
    """When a job was last written; a job never written since its POST counts from `posted`."""
    return func.coalesce(Job.updated, Job.posted)


# ---- expire-jobs --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ExpiredJob:
    run: str
    job_id: str
    old_status: str
    last_touch: dt.datetime


@dataclasses.dataclass(frozen=True)
class RunChange:
    run: str
    old_status: str
    new_status: str
    details: tuple[str, ...] = ()


def expire_stale_jobs(session: Session, *, running_minutes: float = 30, queued_days: float = 14,
                      now: dt.datetime | None = None, progress: Progress | None = None
                      ) -> tuple[list[ExpiredJob], list[RunChange]]:
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
    changes: list[RunChange] = []
    done = 0
    for chunk in _chunks(sorted(run_ids)):
        runs = lock_runs(session, chunk)
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
                changes.append(RunChange(run.name, old_status, run.status.value))
                events.record_run_status(session, run, old_status)
        done += len(chunk)
        _tick(progress, done, len(run_ids))
    session.flush()
    return expired, changes


def _aware(value: Any) -> dt.datetime:
    """coalesce() results come back raw on SQLite: normalise them to aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


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
        _tick(progress, done, total)
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


def _fit(value: str, attr: str) -> str:
    return value[: Run.__table__.c[attr].type.length]


def _reparse_changes(run: Run, job_set: Mapping[str, bool], timezone: str
                     ) -> dict[str, tuple[Any, Any]]:
    parsed = parse_run_name(run.name, timezone)
    want: dict[str, Any] = {"user": _fit(parsed.user, "user")}
    if parsed.scheduled is not None:  # unparsable: keep the stored time (it is posted)
        want["scheduled"] = parsed.scheduled
    for attr in _FROM_JOBS:
        if not job_set.get(attr):  # a value a job reported wins over the name
            want[attr] = _fit(getattr(parsed, attr), attr)
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


# ---- set-targets --------------------------------------------------------------------------

def guess_machine_type(host: str) -> str | None:
    """Machine type from a host-name prefix (`vpm*` is a vps), or None."""
    short = host.split(".", 1)[0]
    if short.startswith("vpm"):
        return "vps"
    return next((p for p in MACHINE_TYPE_PREFIXES if short.startswith(p)), None)


def _hosts(targets: Any) -> list[str]:
    if not isinstance(targets, dict):
        return []
    hosts = {str(key).rsplit("@", 1)[-1][:256] for key in targets}
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
    for chunk in _chunks(sorted(candidates)):
        runs = lock_runs(session, chunk)
        job_ids = [j for rid in chunk for j in candidates[rid]]
        for ids in _chunks(job_ids):
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
            _tick(progress, done, total)
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


# ---- node-jobs / node-stats / queue-stats -------------------------------------------------

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
    for ids in _chunks([job.id for job, _ in rows]):
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


@dataclasses.dataclass(frozen=True)
class DayStats:
    day: dt.date
    jobs: int
    finished: int

    @property
    def percent(self) -> float | None:
        return None if self.jobs == 0 else round(100.0 * self.finished / self.jobs, 1)


def get_queue_stats(session: Session, days: int, now: dt.datetime | None = None
                    ) -> list[DayStats]:
    """For each of the last `days` UTC days (today included, oldest first): the jobs of runs
    scheduled that day and how many of them finished `pass` or `fail`."""
    now = now or utcnow()
    today = now.astimezone(dt.timezone.utc).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc)
    finished = func.sum(case((Job.status.in_((JobStatus.PASS, JobStatus.FAIL)), 1), else_=0))
    rows = session.execute(
        select(Run.scheduled, func.count(Job.id), finished)
        .join(Job, Job.run_id == Run.id)
        .where(Run.scheduled >= start, Run.scheduled < start + dt.timedelta(days=days))
        .group_by(Run.id, Run.scheduled))
    per_day = {first + dt.timedelta(days=i): [0, 0] for i in range(days)}
    for scheduled, jobs, done in rows:
        day = scheduled.astimezone(dt.timezone.utc).date()
        per_day[day][0] += jobs
        per_day[day][1] += done or 0
    return [DayStats(day, jobs, done) for day, (jobs, done) in per_day.items()]


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
    for chunk in _chunks(names):
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
            node_call(node_service.create_node, name,
                      {k: v for k, v in fields.items() if k != "vm_host"})
            report.created.append(name)
        done += 1
        _tick(progress, done, total)
    session.flush()
    for name, fields in wanted:  # 2: vm_host of new nodes; updates of existing ones
        node = existing.get(name)
        if node is None:
            if fields.get("vm_host") is not None:
                node_call(node_service.update_node, name, {"vm_host": fields["vm_host"]})
        elif not update:
            report.skipped.append(name)
        else:
            before = _state(node)
            if "locked" in fields and fields["locked"] == node.locked:
                fields = {k: v for k, v in fields.items() if k != "locked"}
            node = node_call(node_service.update_node, name, fields)
            session.flush()
            (report.updated if _state(node) != before else report.unchanged).append(name)
        done += 1
        _tick(progress, done, total)
    session.flush()
    return report
