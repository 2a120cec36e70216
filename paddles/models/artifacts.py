"""Artifacts: files attached to a job or a run, their content-addressed blobs, and what was
parsed out of them (test cases from subunit/JUnit, a timeline from dstat)."""
from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONValue, UTCTime, str_enum, utcnow


class ArtifactKind(str, enum.Enum):
    SUBUNIT = "subunit"
    JUNIT = "junit"
    DSTAT = "dstat"
    LOG = "log"
    BINARY = "binary"


class ParseStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"


class TestStatus(str, enum.Enum):
    __test__ = False  # not a pytest test class

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"
    XFAIL = "xfail"
    UXSUCCESS = "uxsuccess"


TEST_STATUS_VALUES = tuple(s.value for s in TestStatus)
ARTIFACT_KINDS = tuple(k.value for k in ArtifactKind)  # ?kind=, parsers, the OpenAPI enum


class Blob(Base):
    """One stored file per distinct content, however many artifacts name it.

    The row is also the lock that serialises an upload re-using a blob against `purge`
    deleting it (both take it FOR UPDATE; on SQLite writers are serialised anyway).
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[UTCTime] = mapped_column(default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        # job artifacts are unique per job, run artifacts (job_id null) per run
        Index("uq_artifacts_job_id_name", "job_id", "name", unique=True,
              postgresql_where=text("job_id IS NOT NULL"),
              sqlite_where=text("job_id IS NOT NULL")),
        Index("uq_artifacts_run_id_name", "run_id", "name", unique=True,
              postgresql_where=text("job_id IS NULL"), sqlite_where=text("job_id IS NULL")),
        Index("ix_artifacts_created", "created"),
        Index("ix_artifacts_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    # RESTRICT: a blob row cannot go while an artifact still names it
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="RESTRICT"))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
    content_encoding: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[ArtifactKind] = mapped_column(str_enum(ArtifactKind, "artifact_kind"))
    created: Mapped[UTCTime] = mapped_column(default=utcnow)
    parse_status: Mapped[ParseStatus | None] = mapped_column(
        str_enum(ParseStatus, "artifact_parse_status"))
    parse_error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<Artifact {self.name!r} {self.sha256[:12]}>"


class TestCase(Base):
    __tablename__ = "test_cases"
    __test__ = False  # not a pytest test class
    __table_args__ = (
        Index("ix_test_cases_job_id_status", "job_id", "status"),
        Index("ix_test_cases_run_id_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"),
                                             index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    test_id: Mapped[str] = mapped_column(Text)
    status: Mapped[TestStatus] = mapped_column(str_enum(TestStatus, "test_status"))
    start: Mapped[UTCTime | None]
    stop: Mapped[UTCTime | None]
    duration: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[JSONValue | None]
    message: Mapped[str | None] = mapped_column(Text)
    details: Mapped[JSONValue | None]  # attachment name -> text (tracebacks, captured output)

    def __repr__(self) -> str:
        return f"<TestCase {self.test_id!r} {self.status}>"


class Timeline(Base):
    """A parsed dstat artifact: column names and rows of [time, values...]."""

    __tablename__ = "timelines"

    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"),
                                             primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                               index=True)
    columns: Mapped[JSONValue]
    rows: Mapped[JSONValue]
