"""The runs table: one row per run, with its job counters kept beside it."""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Column, Computed, Index, Integer, String, Table, text
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from .base import Base, RowValues, UTCTime, str_enum, utcnow
from .statuses import COUNT_KEYS, RunStatus, run_status

if TYPE_CHECKING:
    from .jobs import Job


def _counter() -> Mapped[int]:
    return mapped_column(Integer, default=0, server_default="0")


class RunCounters:
    """A run's counter arithmetic, for the Run entity and for a run's values read without
    the ORM (services/jobs.py, a job write worked out before the run is locked). It reads
    and sets its attributes by name: it declares none (the entity maps them)."""

    def counts(self) -> dict[str, int]:
        out = {key: getattr(self, "count_" + key) or 0 for key in COUNT_KEYS}
        out["total"] = getattr(self, "count_total") or 0  # noqa: B009
        return out

    def add_to_count(self, key: str, delta: int) -> None:
        attr = "count_" + key
        setattr(self, attr, (getattr(self, attr) or 0) + delta)

    def refresh_status(self) -> bool:
        """Recompute the stored status from the counters; True when it changed."""
        new = run_status(self.counts())
        changed: bool = new != getattr(self, "status")  # noqa: B009
        setattr(self, "status", new)  # noqa: B010
        return changed


class RunValues(RowValues, RunCounters):
    """A run's values, with the counter arithmetic of Run: those a report's rules read, every
    column for a new job's stand-in (services/planned_jobs.py), or a run's row read for a
    document (services/runs.run_values)."""


class Run(Base, RunCounters):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_posted", "posted"),
        Index("ix_runs_scheduled", "scheduled"),
        Index("ix_runs_branch_scheduled", "branch", "scheduled"),
        Index("ix_runs_suite_scheduled", "suite", "scheduled"),
        Index("ix_runs_machine_type_scheduled", "machine_type", "scheduled"),
        Index("ix_runs_user_scheduled", "user", "scheduled"),
        Index("ix_runs_status_scheduled", "status", "scheduled"),
        # The queue's runs (GET /queue/): on has_queued, not count_queued, so that no index
        # names a column a job write changes and PostgreSQL updates the run's row in place
        # (HOT) instead of adding an entry to each of its indexes (migration 0010).
        Index("ix_runs_has_queued_scheduled", "scheduled", postgresql_where=text("has_queued"),
              sqlite_where=text("has_queued = 1")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    user: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, "run_status"),
                                              default=RunStatus.EMPTY)
    posted: Mapped[UTCTime] = mapped_column(default=utcnow)
    scheduled: Mapped[UTCTime]
    started: Mapped[UTCTime | None]
    updated: Mapped[UTCTime | None]
    branch: Mapped[str | None] = mapped_column(String(128), default="")
    suite: Mapped[str | None] = mapped_column(String(256), default="")
    machine_type: Mapped[str | None] = mapped_column(String(32), default="")

    # Kept by the job service in the same transaction as every job write (spec 10).
    count_queued: Mapped[int] = _counter()
    count_pass: Mapped[int] = _counter()
    count_running: Mapped[int] = _counter()
    count_waiting: Mapped[int] = _counter()
    count_fail: Mapped[int] = _counter()
    count_dead: Mapped[int] = _counter()
    count_unknown: Mapped[int] = _counter()
    count_total: Mapped[int] = _counter()
    # Copied from the first job in job_id order; null with no jobs.
    sha1: Mapped[str | None] = mapped_column(String(40))
    flavor: Mapped[str | None] = mapped_column(String(128))
    priority: Mapped[int | None]
    # Bumped in the transaction of every change to the run or its jobs (services/runs.py,
    # bump_run_versions): (id, version) names one state of GET /runs/NAME/ and its job list,
    # the key of the response cache and of their ETags.
    version: Mapped[int] = _counter()

    jobs: WriteOnlyMapped[Job] = relationship(back_populates="run",
                                                cascade="all, delete-orphan",
                                                passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.status}>"


# count_queued > 0, kept by the database (stored on PostgreSQL, computed when read on SQLite)
# for the queue's index: a column of the table, not of the entity, which never reads or
# writes it (added after the class is mapped, it is not mapped).
HAS_QUEUED = Column("has_queued", Boolean, Computed("count_queued > 0", persisted=True))
typing.cast(Table, Run.__table__).append_column(HAS_QUEUED)
