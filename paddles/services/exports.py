"""Exports: the queries behind runs, jobs and test results as byte streams (CSV, JSON, JSON
Lines, JUnit XML, subunit v2; the stackviz dataset is in stackviz.py). The formats are
written by paddles/writers/, which never touch the database.

One implementation, two doors: the HTTP controller and `paddles export` both build an
`Export` here and iterate `Export.chunks()`. Building one checks its input (unknown run:
RunNotFound) and runs no big query; the chunks then stream the rows from the database in
batches (`yield_per`: a server-side cursor on PostgreSQL), so memory does not grow with
the number of rows. The caller owns the session: it must stay open until the chunks are
consumed (the HTTP door opens one for the response body and closes it after the last
chunk). Formats are described in docs/exports.md; column orders here are part of the
contract and only ever grow at the end.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from urllib.parse import quote

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..errors import RunNotFound
from ..models import Artifact, Job, Run, TestCase, TestStatus
from ..models.statuses import COUNT_KEYS, JOB_STATUS_VALUES
from ..serializers import artifacts_href
from ..settings import Settings
from ..writers.common import CONTENT_TYPES, iso_time
from ..writers.junit import JUNIT_COUNTER, Suite, junit_chunks
from ..writers.subunit import subunit_chunks
from ..writers.tabular import tabular

BATCH = 1000            # rows fetched per round trip (yield_per)

FORMATS = {
    "runs": ("csv", "json", "jsonl"),
    "jobs": ("csv", "json", "jsonl"),
    "tests": ("csv", "json", "junit.xml", "subunit"),
    "stackviz": ("tar.gz",),
}

# CSV column orders (JSON objects use the same keys in the same order, with the counts of
# a run nested as "counts" instead of the jobs_* columns).
RUN_COLUMNS = ("name", "user", "suite", "branch", "sha1", "machine_type", "status",
               *(f"jobs_{key}" for key in (*COUNT_KEYS, "total")),
               "scheduled", "started", "updated", "duration")
JOB_COLUMNS = ("job_id", "description", "status", "success", "failure_reason", "duration",
               "machine_type", "os_type", "os_version", "targets", "log_href", "started",
               "updated")
TEST_COLUMNS = ("job_id", "test_id", "status", "start", "stop", "duration", "worker", "tags",
                "message", "details_artifact")

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of rows written so far


@dataclasses.dataclass
class Export:
    """What to call the download, its type, and how to produce it."""

    filename: str
    content_type: str
    produce: Callable[[Progress | None], Iterator[bytes]]
    count: Callable[[], int]  # rows it will write (one query; for progress displays)

    def chunks(self, progress: Progress | None = None) -> Iterator[bytes]:
        return self.produce(progress)


def _enum(value) -> str | None:
    return None if value is None else value.value


# ---- streaming ------------------------------------------------------------------------------

def _stream_rows(session: Session, stmt: Select) -> Iterator:
    """Rows in batches: a server-side cursor on PostgreSQL, SQLite's lazy cursor otherwise."""
    result = session.execute(stmt.execution_options(stream_results=True, yield_per=BATCH))
    try:
        yield from result
    finally:
        result.close()


def _counted(rows: Iterable, progress: Progress | None) -> Iterator:
    done = 0
    for row in rows:
        yield row
        done += 1
        if progress is not None and done % BATCH == 0:
            progress(done)
    if progress is not None:
        progress(done)


# ---- runs -----------------------------------------------------------------------------------

_RUN_SELECT = (Run.name, Run.user, Run.suite, Run.branch, Run.sha1, Run.machine_type,
               Run.status, *(getattr(Run, f"count_{key}") for key in (*COUNT_KEYS, "total")),
               Run.scheduled, Run.started, Run.updated)


def run_duration(started: dt.datetime | None, updated: dt.datetime | None) -> int | None:
    """Whole seconds from the run's start to its last job update (so far, when running)."""
    if started is None or updated is None or updated < started:
        return None
    return int((updated - started).total_seconds())


def _run_record(row) -> tuple:
    (name, user, suite, branch, sha1, machine_type, status, *rest) = row
    counts = [value or 0 for value in rest[:len(COUNT_KEYS) + 1]]
    scheduled, started, updated = rest[len(COUNT_KEYS) + 1:]
    return (name, user, suite, branch, sha1, machine_type, _enum(status), *counts,
            iso_time(scheduled), iso_time(started), iso_time(updated),
            run_duration(started, updated))


_N_COUNTS = len(COUNT_KEYS) + 1


def _run_object(record: tuple) -> dict:
    head, counts, tail = record[:7], record[7:7 + _N_COUNTS], record[7 + _N_COUNTS:]
    obj = dict(zip(RUN_COLUMNS[:7], head))
    obj["counts"] = dict(zip((*COUNT_KEYS, "total"), counts))
    obj.update(zip(RUN_COLUMNS[7 + _N_COUNTS:], tail))
    return obj


def export_runs(session: Session, fmt: str, conditions: Sequence = ()) -> Export:
    """Runs matching `conditions` (paddles.filters.parse_query), newest scheduled first."""
    _check_format("runs", fmt)
    stmt = (select(*_RUN_SELECT).where(*conditions)
            .order_by(Run.scheduled.desc(), Run.id.desc()))

    def produce(progress):
        records = (_run_record(row) for row in _counted(_stream_rows(session, stmt), progress))
        yield from tabular(fmt, RUN_COLUMNS, records, _run_object)

    def count():
        return session.scalar(select(func.count()).select_from(Run).where(*conditions))

    return Export(f"runs.{fmt}", CONTENT_TYPES[fmt], produce, count)


# ---- jobs -----------------------------------------------------------------------------------

def _get_run(session: Session, run_name: str) -> Run:
    run = session.scalar(select(Run).where(Run.name == run_name))
    if run is None:
        raise RunNotFound("run not found")
    return run


def job_status_condition(status: str | None):
    return None if status is None else Job.status == status


def export_jobs(session: Session, settings: Settings, run_name: str, fmt: str,
                status: str | None = None) -> Export:
    """The run's jobs in job_id order (numeric ids numerically), optionally of one status."""
    _check_format("jobs", fmt)
    if status is not None and status not in JOB_STATUS_VALUES:
        raise ValueError(f"not a job status: {status!r}")  # callers validate first
    run = _get_run(session, run_name)
    conds = [Job.run_id == run.id]
    if status is not None:
        conds.append(Job.status == status)
    stmt = (select(Job.job_id, Job.description, Job.status, Job.success, Job.failure_reason,
                   Job.duration, Job.machine_type, Job.os_type, Job.os_version, Job.targets,
                   Job.started, Job.updated)
            .where(*conds).order_by(Job.sort_key))
    href = settings.job_log_href_templ

    def record(row) -> tuple:
        (job_id, description, job_status, success, failure_reason, duration, machine_type,
         os_type, os_version, targets, started, updated) = row
        return (job_id, description, _enum(job_status), success, failure_reason, duration,
                machine_type, os_type, os_version, targets,
                href.format(run_name=run_name, job_id=job_id), iso_time(started),
                iso_time(updated))

    def produce(progress):
        records = (record(row) for row in _counted(_stream_rows(session, stmt), progress))
        yield from tabular(fmt, JOB_COLUMNS, records, lambda r: dict(zip(JOB_COLUMNS, r)))

    def count():
        if status is None:
            return run.count_total or 0
        return session.scalar(select(func.count()).select_from(Job).where(*conds))

    return Export(f"{run_name}-jobs.{fmt}", CONTENT_TYPES[fmt], produce, count)


# ---- test cases -----------------------------------------------------------------------------

def _test_conditions(run: Run, status: str | None) -> list:
    conds = [TestCase.run_id == run.id]
    if status is not None:
        conds.append(TestCase.status == TestStatus(status))
    return conds


def _test_select(conds: list, *, details: bool) -> Select:
    cols = [TestCase.test_id, TestCase.status, TestCase.start, TestCase.stop,
            TestCase.duration, TestCase.worker, TestCase.tags, TestCase.message,
            Job.job_id.label("job_id"), Artifact.name.label("artifact_name")]
    if details:
        cols.append(TestCase.details)
    # run-level test cases first, then job by job (job_id order), each by start time
    return (select(*cols).select_from(TestCase)
            .join(Artifact, Artifact.id == TestCase.artifact_id)
            .outerjoin(Job, Job.id == TestCase.job_id)
            .where(*conds)
            .order_by(TestCase.job_id.is_not(None), Job.sort_key, TestCase.start.is_(None),
                      TestCase.start, TestCase.id))


def _suites(session: Session, conds: list) -> dict[str | None, Suite]:
    """JUnit totals per job_id (None: the run's own test cases), from one GROUP BY."""
    rows = session.execute(
        select(Job.job_id, TestCase.status, func.count(),
               func.coalesce(func.sum(TestCase.duration), 0.0), func.min(TestCase.start))
        .select_from(TestCase).outerjoin(Job, Job.id == TestCase.job_id)
        .where(*conds).group_by(Job.job_id, TestCase.status))
    acc: dict[str | None, dict] = {}
    for job_id, status, n, seconds, start in rows:
        suite = acc.setdefault(job_id, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0,
                                        "time": 0.0, "start": None})
        suite["tests"] += n
        suite["time"] += float(seconds or 0)
        key = JUNIT_COUNTER.get(status.value)
        if key:
            suite[key] += n
        if start is not None and (suite["start"] is None or start < suite["start"]):
            suite["start"] = start
    return {job_id: Suite(**values) for job_id, values in acc.items()}


def export_tests(session: Session, settings: Settings, run_name: str, fmt: str,
                 status: str | None = None) -> Export:
    """The run's parsed test cases: run-level ones first, then job by job, by start time."""
    _check_format("tests", fmt)
    run = _get_run(session, run_name)
    conds = _test_conditions(run, status)

    def count():
        return session.scalar(select(func.count()).select_from(TestCase).where(*conds))

    if fmt in ("csv", "json"):
        run_href = artifacts_href(settings, run_name, None)

        def record(row) -> tuple:
            href = run_href if row.job_id is None else artifacts_href(settings, run_name,
                                                                      row.job_id)
            return (row.job_id, row.test_id, row.status.value, iso_time(row.start),
                    iso_time(row.stop), row.duration, row.worker, row.tags or [],
                    row.message, href + quote(row.artifact_name, safe="/"))

        def produce(progress):
            rows = _counted(_stream_rows(session, _test_select(conds, details=False)),
                            progress)
            yield from tabular(fmt, TEST_COLUMNS, (record(r) for r in rows),
                               lambda r: dict(zip(TEST_COLUMNS, r)))
    elif fmt == "junit.xml":
        def produce(progress):
            suites = _suites(session, conds)
            rows = _counted(_stream_rows(session, _test_select(conds, details=True)),
                            progress)
            yield from junit_chunks(run_name, suites, rows)
    else:
        def produce(progress):
            rows = _counted(_stream_rows(session, _test_select(conds, details=True)),
                            progress)
            yield from subunit_chunks(rows)

    return Export(f"{run_name}-tests.{fmt}", CONTENT_TYPES[fmt], produce, count)


def _check_format(kind: str, fmt: str) -> None:
    if fmt not in FORMATS[kind]:
        raise ValueError(f"{kind} exports are " + ", ".join(FORMATS[kind]) + f", not {fmt!r}")
