"""A job write's rules (spec section 8): what a create or an update changes on its job and
on its run's counters and copied values, and the node links its targets make. Shared by
the general path (services/jobs.py) and the write worked out before the lock
(services/planned_jobs.py); nothing here commits."""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from sqlalchemy import CursorResult, ScalarSelect, String, bindparam, func, insert, select
from sqlalchemy.orm import Session

from ..models import Job, JobStatus, Node, Run, RunStatus, job_nodes, utcnow
from ..models.statuses import count_key
from . import nodes as node_service

if TYPE_CHECKING:
    from ..models.runs import RunValues
    from .planned_jobs import JobValues

FINISHED = (JobStatus.PASS, JobStatus.FAIL)
# Keys copied onto the run when a job write carries them (even as null).
RUN_COPIED_KEYS = ("suite", "branch", "machine_type")
FIRST_JOB_KEYS = ("sha1", "flavor", "priority")
NODE_NAME_LENGTH = typing.cast(String, Node.__table__.c.name.type).length

JOB_COLUMNS = tuple(c.key for c in Job.__table__.c if c.key != "id")


def first_job_values(run: Run | RunValues) -> tuple[Any, ...]:
    return run.sha1, run.flavor, run.priority


def apply_write(session: Session, run: Run | RunValues, job: Job | JobValues,
                 fields: Mapping[str, Any], *,
                 new: bool, insert: bool = False, linked: int | None = None) -> None:
    """The write's values on `job` and `run`. `insert`: the caller inserts the job row and
    links its targets and refreshes the first job itself (create_job). `linked`: how many
    nodes the job is linked to already, when known."""
    now = utcnow()
    job.updated = run.updated = now
    run_was = run.status
    old = job.status

    status = resolve_status(job, fields)
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
        link_targets(session, job, targets, fields.get("machine_type"), new=new,
                      linked=linked)


def resolve_status(job: Job | JobValues, fields: Mapping[str, Any]) -> JobStatus | None:
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


def link_targets(session: Session, job: Job | JobValues, targets: dict[str, Any],
                  machine_type: str | None, *,
                  new: bool, linked: int | None = None) -> None:
    """Link the job to the nodes its targets name, creating the nodes that do not exist.
    A new job's links go in with one INSERT ... SELECT over the nodes that exist; only
    hosts without a node cost more."""
    if linked is None:
        session.flush()
        linked = 0 if new else session.scalar(
            select(func.count()).select_from(job_nodes).where(job_nodes.c.job_id == job.id)) or 0
    if len(targets) <= linked:
        return
    hosts = hosts_of(targets)
    if not hosts:
        return
    if new:
        done = typing.cast(CursorResult[Any], session.execute(
            insert(job_nodes).from_select(
                ["job_id", "node_id"],
                select(bindparam("link_job", job.id, type_=Job.__table__.c.id.type),
                       Node.id)
                .where(Node.name.in_(hosts))))).rowcount
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


def link_count() -> ScalarSelect[int]:
    return (select(func.count()).select_from(job_nodes)
            .where(job_nodes.c.job_id == Job.id).scalar_subquery())


def hosts_of(targets: Any) -> list[str]:
    """The hosts a job's targets name (`user@host` keys), sorted, without repeats. A name is
    cut to the node column, so a lookup finds what was created; `user@` names no host."""
    if not isinstance(targets, dict):
        return []
    hosts = {str(key).rsplit("@", 1)[-1][:NODE_NAME_LENGTH] for key in targets}
    return sorted(h for h in hosts if h)
