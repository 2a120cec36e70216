"""The jobs table: one row per teuthology job, columns as the wire contract names them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONValue, UTCTime, key_string, sortable_job_id, str_enum, utcnow
from .nodes import job_nodes
from .statuses import JobStatus

if TYPE_CHECKING:
    from .nodes import Node
    from .runs import Run


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "job_id"),
        # covering on PostgreSQL: a run's first job (sha1, flavor, priority, read on every
        # job POST) and a run's sha1s (/runs/branch/X/sha1/) come from the index alone
        Index("ix_jobs_run_id_sort_key", "run_id", "sort_key",
              postgresql_include=["sha1", "flavor", "priority"]),
        Index("ix_jobs_run_id_posted", "run_id", "posted"),
        Index("ix_jobs_posted", "posted"),
        Index("ix_jobs_status", "status"),
        # pattern ops: the sha1 filter is a prefix match (LIKE 'abc%'), which a B-tree in a
        # locale collation cannot serve on PostgreSQL
        Index("ix_jobs_sha1", "sha1", postgresql_ops={"sha1": "varchar_pattern_ops"}),
        Index("ix_jobs_flavor", "flavor"),
        Index("ix_jobs_queue_status_priority", "queue", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(32))
    # job_id rewritten so that one ORDER BY gives numeric order for numeric ids
    sort_key: Mapped[str] = mapped_column(key_string(64))

    archive_path: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[int | None] = mapped_column(BigInteger)
    email: Mapped[str | None] = mapped_column(String(128))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    flavor: Mapped[str | None] = mapped_column(String(128))
    kernel: Mapped[JSONValue | None]
    last_in_suite: Mapped[bool | None]
    machine_type: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(512))
    nuke_on_error: Mapped[bool | None]
    os_type: Mapped[str | None] = mapped_column(String(32))
    os_version: Mapped[str | None] = mapped_column(String(16))
    overrides: Mapped[JSONValue | None]
    owner: Mapped[str | None] = mapped_column(String(128))
    pid: Mapped[str | None] = mapped_column(String(32))
    roles: Mapped[JSONValue | None]
    sentry_event: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[JobStatus | None] = mapped_column(str_enum(JobStatus, "job_status"))
    success: Mapped[bool | None]
    branch: Mapped[str | None] = mapped_column(String(128))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    sha1: Mapped[str | None] = mapped_column(String(40))
    subset: Mapped[str | None] = mapped_column(String(32))
    suite: Mapped[str | None] = mapped_column(String(256))
    suite_branch: Mapped[str | None] = mapped_column(String(128))
    suite_path: Mapped[str | None] = mapped_column(String(256))
    suite_relpath: Mapped[str | None] = mapped_column(String(256))
    suite_repo: Mapped[str | None] = mapped_column(String(256))
    suite_sha1: Mapped[str | None] = mapped_column(String(40))
    targets: Mapped[JSONValue | None]
    tasks: Mapped[JSONValue | None]
    timestamp: Mapped[UTCTime | None]
    teuthology_branch: Mapped[str | None] = mapped_column(String(64))
    verbose: Mapped[bool | None]
    pcp_grafana_url: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int | None] = mapped_column(Integer)
    user: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(32))
    package_source: Mapped[str | None] = mapped_column(String(32))
    posted: Mapped[UTCTime] = mapped_column(default=utcnow)
    started: Mapped[UTCTime | None]
    updated: Mapped[UTCTime | None]

    run: Mapped[Run] = relationship(back_populates="jobs", lazy="raise")
    target_nodes: Mapped[list[Node]] = relationship(secondary=job_nodes,
                                                      back_populates="jobs", lazy="raise")

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        if self.job_id is not None:
            self.sort_key = sortable_job_id(self.job_id)

    def __repr__(self) -> str:
        return f"<Job {self.job_id!r} {self.status}>"
