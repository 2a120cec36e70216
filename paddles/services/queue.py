"""Queues (spec 11): pause state, and the queued jobs that name a queue, best first; the
jobs finished per day (`paddles queue-stats`)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from collections.abc import Mapping

from sqlalchemy import Row, Select, case, func, select
from sqlalchemy.orm import Session

from ..errors import AlreadyExists, Forbidden, InvalidRequest, QueueNotFound, Unavailable
from ..models import Job, JobStatus, Queue, Run, utcnow
from .common import add_if_new, fetch_one
from .jobs import select_job_rows

RAW_KEYS = ("paused_by", "paused_since", "paused_until")


def get_queue(session: Session, name: str, *, for_update: bool = False) -> Queue:
    return fetch_one(session, select(Queue).where(Queue.name == name), for_update=for_update,
                     missing=QueueNotFound("specified queue does not exist"))


def list_queues(session: Session, *, machine_type: str | None = None,
                paused_by: str | None = None) -> list[Queue]:
    """`machine_type` with a `|` names several types: their jobs go to the `multi` queue."""
    stmt = select(Queue).order_by(Queue.name)
    if machine_type:
        stmt = stmt.where(Queue.name == ("multi" if "|" in machine_type else machine_type))
    if paused_by:
        stmt = stmt.where(Queue.paused_by == paused_by)
    return list(session.scalars(stmt))


def create_queue(session: Session, name: str, fields: Mapping[str, Any]) -> Queue:
    if session.get(Queue, name) is not None:
        raise AlreadyExists(f"Queue {name} already exists")
    queue = Queue(name=name)
    _apply(queue, fields, utcnow())
    if not add_if_new(session, queue):  # created concurrently
        raise AlreadyExists(f"Queue {name} already exists")
    return queue


def update_queue(session: Session, name: str, fields: Mapping[str, Any]) -> Queue:
    queue = get_queue(session, name, for_update=True)
    _apply(queue, fields, utcnow())
    return queue


def _apply(queue: Queue, fields: Mapping[str, Any], now: dt.datetime) -> None:
    """Raw keys first; then `pause_duration`: > 0 pauses for that many seconds, null or
    <= 0 unpauses (paused_until cleared, paused_by kept)."""
    pausing = "pause_duration" in fields and (fields["pause_duration"] or 0) > 0
    if pausing:
        if queue.is_paused(now):
            raise Forbidden("Cannot pause an already-paused queue")
        if not fields.get("paused_by"):
            raise InvalidRequest("Cannot pause without specifying paused_by")
    for key in RAW_KEYS:
        if key in fields:
            setattr(queue, key, fields[key])
    if pausing:
        queue.paused_since = now
        queue.paused_until = now + dt.timedelta(seconds=fields["pause_duration"])
    elif "pause_duration" in fields:
        queue.paused_until = None


def _queued(name: str) -> Select:
    """Queued jobs of a queue, best first: priority ascending with nulls last, then age."""
    return (select_job_rows()
            .where(Job.queue == name, Job.status == JobStatus.QUEUED)
            .order_by(Job.priority.asc().nulls_last(), Job.posted, Job.sort_key, Job.id))


def peek_queue(session: Session, name: str) -> Row | None:
    """The job pop_queue answers with; it is not claimed. Unknown queue: None."""
    queue = session.get(Queue, name)
    if queue is None:
        return None
    if queue.is_paused():
        raise Unavailable("queue is paused, cannot retrieve job")
    return session.execute(_queued(name).limit(1)).first()


def queue_stats(session: Session, name: str) -> tuple[Queue, int]:
    queue = get_queue(session, name)
    count = session.scalar(select(func.count()).select_from(Job)
                           .where(Job.queue == name, Job.status == JobStatus.QUEUED))
    return queue, count


def list_queued_jobs(session: Session, name: str, *, user: str | None = None,
                     run_name: str | None = None) -> list[Row]:
    """`run_name` (still within the queue) wins over `user`; neither: the whole queue."""
    get_queue(session, name)
    stmt = _queued(name)
    if run_name is not None:
        stmt = stmt.where(Run.name == run_name)
    elif user is not None:
        stmt = stmt.where(Job.user == user)
    return list(session.execute(stmt))


# ---- queue-stats (a `paddles` admin command) ------------------------------------------------

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
    today = now.astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)
    finished = func.sum(case((Job.status.in_((JobStatus.PASS, JobStatus.FAIL)), 1), else_=0))
    rows = session.execute(
        select(Run.scheduled, func.count(Job.id), finished)
        .join(Job, Job.run_id == Run.id)
        .where(Run.scheduled >= start, Run.scheduled < start + dt.timedelta(days=days))
        .group_by(Run.id, Run.scheduled))
    per_day = {first + dt.timedelta(days=i): [0, 0] for i in range(days)}
    for scheduled, jobs, done in rows:
        day = scheduled.astimezone(dt.UTC).date()
        per_day[day][0] += jobs
        per_day[day][1] += done or 0
    return [DayStats(day, jobs, done) for day, (jobs, done) in per_day.items()]
