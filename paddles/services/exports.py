"""Exports: runs, jobs and test results as byte streams (CSV, JSON, JSON Lines, JUnit XML,
subunit v2; the stackviz dataset is in stackviz.py).

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

import csv
import dataclasses
import datetime as dt
import io
import json
import logging
import re
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..errors import RunNotFound
from ..models import Artifact, Job, Run, TestCase, TestStatus
from ..models.statuses import COUNT_KEYS, JOB_STATUS_VALUES
from ..serializers import artifacts_href
from ..settings import Settings

BATCH = 1000            # rows fetched per round trip (yield_per)
CHUNK = 64 * 1024       # bytes gathered before a chunk is handed out

FORMATS = {
    "runs": ("csv", "json", "jsonl"),
    "jobs": ("csv", "json", "jsonl"),
    "tests": ("csv", "json", "junit.xml", "subunit"),
    "stackviz": ("tar.gz",),
}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8; header=present",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "junit.xml": "application/xml",
    "subunit": "application/vnd.subunit.v2",
    "tar.gz": "application/gzip",
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


# ---- values ---------------------------------------------------------------------------------

def iso_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a Z: `2024-01-15T20:00:03Z` (a fraction only when non-zero)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _dumps(value: Any) -> bytes:
    """Compact JSON; integers beyond 64 bits fall back to the stdlib, which writes them."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _cell(value: Any) -> Any:
    """A CSV cell: empty for null, true/false, nested values as compact JSON."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return _dumps(value).decode()
    return value


def _enum(value) -> str | None:
    return None if value is None else value.value


def safe_filename(text: str) -> str:
    """A file name any system accepts: letters, digits, `.`, `_` and `-` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".")
    return cleaned[:200] or "export"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII name and the exact one per RFC 6266 / RFC 5987."""
    return (f'attachment; filename="{safe_filename(filename)}"; '
            f"filename*=UTF-8''{quote(filename, safe='')}")


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


def _csv_chunks(columns: Sequence[str], records: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """RFC 4180: header row, every field quoted when needed, CRLF line ends, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(v) for v in record])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _json_chunks(objects: Iterable[dict], *, lines: bool) -> Iterator[bytes]:
    """One JSON array (one element per line), or JSON Lines."""
    parts: list[bytes] = []
    size = 0
    first = True
    if not lines:
        parts.append(b"[")
    for obj in objects:
        data = _dumps(obj)
        if lines:
            parts.append(data + b"\n")
        else:
            parts.append((b"\n" if first else b",\n") + data)
        first = False
        size += len(data) + 2
        if size >= CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    if not lines:
        parts.append(b"]\n" if first else b"\n]\n")
    yield b"".join(parts)


def _tabular(fmt: str, columns: Sequence[str], records: Iterable[tuple],
             to_object: Callable[[tuple], dict]) -> Iterator[bytes]:
    if fmt == "csv":
        return _csv_chunks(columns, records)
    return _json_chunks((to_object(r) for r in records), lines=fmt == "jsonl")


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
        yield from _tabular(fmt, RUN_COLUMNS, records, _run_object)

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
        yield from _tabular(fmt, JOB_COLUMNS, records, lambda r: dict(zip(JOB_COLUMNS, r)))

    def count():
        if status is None:
            return run.count_total or 0
        return session.scalar(select(func.count()).select_from(Job).where(*conds))

    return Export(f"{run_name}-jobs.{fmt}", CONTENT_TYPES[fmt], produce, count)


# ---- test cases -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Suite:
    """Per-job totals, known before the job's test cases stream (for JUnit's attributes)."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0
    start: dt.datetime | None = None


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


def _suites(session: Session, conds: list) -> dict[str | None, _Suite]:
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
        key = _JUNIT_COUNTER.get(status.value)
        if key:
            suite[key] += n
        if start is not None and (suite["start"] is None or start < suite["start"]):
            suite["start"] = start
    return {job_id: _Suite(**values) for job_id, values in acc.items()}


_JUNIT_COUNTER = {"fail": "failures", "uxsuccess": "failures", "error": "errors",
                  "skip": "skipped", "xfail": "skipped"}


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
            yield from _tabular(fmt, TEST_COLUMNS, (record(r) for r in rows),
                                lambda r: dict(zip(TEST_COLUMNS, r)))
    elif fmt == "junit.xml":
        def produce(progress):
            suites = _suites(session, conds)
            rows = _counted(_stream_rows(session, _test_select(conds, details=True)),
                            progress)
            yield from _junit_chunks(run_name, suites, rows)
    else:
        def produce(progress):
            rows = _counted(_stream_rows(session, _test_select(conds, details=True)),
                            progress)
            yield from _subunit_chunks(rows)

    return Export(f"{run_name}-tests.{fmt}", CONTENT_TYPES[fmt], produce, count)


# ---- JUnit XML ------------------------------------------------------------------------------

# characters XML 1.0 cannot carry at all, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text))


def _xml_attr(value: Any) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", str(value)))


def split_test_id(test_id: str) -> tuple[str, str]:
    """JUnit (classname, name): split at the last `.` before any `[...]` parameters, so
    that `classname.name` gives the test id back."""
    base, bracket, params = test_id.partition("[")
    if "." not in base:
        return "", test_id
    classname, name = base.rsplit(".", 1)
    if not name:
        return "", test_id
    return classname, name + bracket + params


def _suite_open(name: str, suite: _Suite, properties: dict[str, str]) -> str:
    attrs = {"name": name, "tests": suite.tests, "failures": suite.failures,
             "errors": suite.errors, "skipped": suite.skipped, "time": f"{suite.time:.3f}"}
    if suite.start is not None:
        attrs["timestamp"] = iso_time(suite.start)
    head = "  <testsuite" + "".join(f" {k}={_xml_attr(v)}" for k, v in attrs.items()) + ">\n"
    props = "".join(f"      <property name={_xml_attr(k)} value={_xml_attr(v)}/>\n"
                    for k, v in properties.items())
    return head + (f"    <properties>\n{props}    </properties>\n" if props else "")


def _testcase_xml(row) -> str:
    classname, name = split_test_id(row.test_id)
    attrs = {"classname": classname, "name": name}
    if row.duration is not None:
        attrs["time"] = f"{row.duration:.6f}".rstrip("0").rstrip(".") or "0"
    if row.start is not None:
        attrs["timestamp"] = iso_time(row.start)
    details: dict[str, str] = dict(row.details or {})
    status = row.status.value
    message = row.message
    body: list[str] = []
    used: set[str] = set()
    if status in ("fail", "error", "uxsuccess"):
        tag = "error" if status == "error" else "failure"
        key = next((k for k in (tag, "traceback") if details.get(k)), None)
        text = details[key] if key else (message or "")
        if key:
            used.add(key)
        extra = ' type="uxsuccess"' if status == "uxsuccess" else ""
        msg = message or ("unexpected success" if status == "uxsuccess" else "")
        body.append(f"      <{tag} message={_xml_attr(msg)}{extra}>{_xml_text(text)}</{tag}>\n")
    elif status in ("skip", "xfail"):
        used.add("reason")
        extra = ' type="pytest.xfail"' if status == "xfail" else ""
        body.append(f"      <skipped message={_xml_attr(message or '')}{extra}/>\n")
    out = details.pop("system-out", None)
    err = details.pop("system-err", None)
    if out is None:
        rest = [f"[{k}]\n{v}" for k, v in details.items() if k not in used and v]
        out = "\n".join(rest) or None
    if out:
        body.append(f"      <system-out>{_xml_text(out)}</system-out>\n")
    if err:
        body.append(f"      <system-err>{_xml_text(err)}</system-err>\n")
    head = "    <testcase" + "".join(f" {k}={_xml_attr(v)}" for k, v in attrs.items())
    if not body:
        return head + "/>\n"
    return head + ">\n" + "".join(body) + "    </testcase>\n"


def _junit_chunks(run_name: str, suites: dict[str | None, _Suite],
                  rows: Iterable) -> Iterator[bytes]:
    """One `testsuite` per job (`name` = job_id; the run's own test cases: `name="run"`)."""
    total = _Suite(tests=sum(s.tests for s in suites.values()),
                   failures=sum(s.failures for s in suites.values()),
                   errors=sum(s.errors for s in suites.values()),
                   skipped=sum(s.skipped for s in suites.values()),
                   time=sum(s.time for s in suites.values()))
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<testsuites'
             + "".join(f" {k}={_xml_attr(v)}" for k, v in (
                 ("name", run_name), ("tests", total.tests), ("failures", total.failures),
                 ("errors", total.errors), ("skipped", total.skipped),
                 ("time", f"{total.time:.3f}")))
             + ">\n"]
    size = 0
    current: object = _NOTHING
    for row in rows:
        if row.job_id != current:
            if current is not _NOTHING:
                parts.append("  </testsuite>\n")
            current = row.job_id
            props = {"run": run_name}
            if row.job_id is not None:
                props["job_id"] = row.job_id
            parts.append(_suite_open("run" if row.job_id is None else row.job_id,
                                     suites.get(row.job_id, _Suite()), props))
        part = _testcase_xml(row)
        parts.append(part)
        size += len(part)
        if size >= CHUNK:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    if current is not _NOTHING:
        parts.append("  </testsuite>\n")
    parts.append("</testsuites>\n")
    yield "".join(parts).encode("utf-8")


_NOTHING = object()


# ---- subunit v2 -----------------------------------------------------------------------------

SUBUNIT_STATUS = {"pass": "success", "fail": "fail", "skip": "skip", "xfail": "xfail",
                  "uxsuccess": "uxsuccess", "error": "fail"}
_TEXT = "text/plain; charset=utf8"


def _subunit_chunks(rows: Iterable) -> Iterator[bytes]:
    """Each test: `inprogress` at its start, its attachments, its final status at its stop.

    subunit has no `error`: an error goes out as `fail`. A test with a message but no
    attachment carries the message as `traceback` (failures) or `reason` (skips)."""
    from subunit.v2 import StreamResultToBytes  # python-subunit; imported when used

    buffer = io.BytesIO()
    writer = StreamResultToBytes(buffer)
    for row in rows:
        status = row.status.value
        tags = set(row.tags or ()) or ({row.worker} if row.worker else set())
        if row.start is not None:
            writer.status(test_id=row.test_id, test_status="inprogress", timestamp=row.start,
                          test_tags=tags or None)
        details = dict(row.details or {})
        if not details and row.message:
            key = "reason" if status in ("skip", "xfail") else "traceback"
            details = {key: row.message}
        when = row.stop or row.start
        for name, text in details.items():
            writer.status(test_id=row.test_id, file_name=name,
                          file_bytes=(text or "").encode("utf-8"), mime_type=_TEXT, eof=True,
                          timestamp=when)
        writer.status(test_id=row.test_id, test_status=SUBUNIT_STATUS[status],
                      timestamp=when, test_tags=tags or None)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _check_format(kind: str, fmt: str) -> None:
    if fmt not in FORMATS[kind]:
        raise ValueError(f"{kind} exports are " + ", ".join(FORMATS[kind]) + f", not {fmt!r}")
