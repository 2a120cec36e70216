"""The stackviz dataset export: what the current stackviz-export writes, as a tar.gz.

`export_stackviz` builds an `Export` (see exports.py) whose chunks are a gzip'd tar of
stackviz's `data/` directory:

- layout "current" (the default), the files today's stackviz front end reads:
  `config.json` `{"deployer": false, "datasets": [...]}`, one dataset per job with test
  cases (the run's own first), each listing its artifacts; per dataset
  `<source>-0-raw.json`, `<source>-0-details.json`, `<source>-0-stats.json` and, when the
  job has a parsed dstat artifact, its dstat CSV (blank lines dropped, see below).
- layout "legacy", the pre-2016 layout (`{"tempest": [...]}` with raw / details / tree
  files), kept for old deployments that still serve that front end.

Test cases stream from the database (exports._test_select, one cursor for the whole run);
each data file is written to a spooled temporary file (writers.tar.Member: memory, then
disk) and added to the tar when its dataset is complete. Formats: docs/exports.md, "Stackviz
dataset".
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip as gzip_module
import logging
import re
import tarfile
from collections.abc import Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Artifact, Job, Run, TestCase, Timeline
from ..storage import BlobMissing
from ..streams import gunzip_chunks
from ..writers.common import CONTENT_TYPES, NOTHING, dumps, iso_time, safe_filename
from ..writers.subunit import SUBUNIT_STATUS
from ..writers.tar import Member, TarSink
from .exports import Export, _counted, _get_run, _stream_rows, _test_select

LAYOUTS = ("current", "legacy")

log = logging.getLogger(__name__)

# test status -> stackviz status. Current: subunit's own words, as the subunit writer spells
# them (stackviz-export copies them from the stream; paddles' "error" is a JUnit error or a
# subunit test that never finished, both failures). Legacy: the pre-2016 front end's
# pass/fail/skip.
STATUS = SUBUNIT_STATUS
LEGACY_STATUS = {"pass": "pass", "xfail": "pass", "skip": "skip", "fail": "fail",
                 "error": "fail", "uxsuccess": "fail"}
_TAGS_SUFFIX = re.compile(r"^(.+)\[(.+)\]$")
_SCENARIO = re.compile(r"^(.+) \((.+)\)$")


def stackviz_name(test_id: str) -> str:
    """The name stackviz shows: `[...]` parameters dropped, `name (scenario)` as
    `scenario.name`."""
    match = _TAGS_SUFFIX.match(test_id)
    if match:
        return match.group(1)
    match = _SCENARIO.match(test_id)
    if match:
        return f"{match.group(2)}.{match.group(1)}"
    return test_id


def stackviz_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC as stackviz-export writes it (Python's isoformat of an aware time):
    `2024-01-15T20:00:03+00:00`, a fraction only when non-zero."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _detail_key(name: str) -> str:
    return re.sub(r"\W", "", name) or "attachment"


def _attachments(row) -> dict:
    """A test's attachments as stackviz-export keeps them: names with non-word characters
    removed, empty ones left out. A test stored without attachments but with a message (a
    JUnit failure or skip) has it as `traceback` (`reason` for skips), as the subunit
    export writes it."""
    details = row.details or {}
    if not details and row.message:
        key = "reason" if row.status.value in ("skip", "xfail") else "traceback"
        details = {key: row.message}
    return {re.sub(r"\W", "", name): text for name, text in details.items() if text}


@dataclasses.dataclass
class _Dataset:
    index: int
    job_id: str | None
    job_pk: int | None
    status: str | None = None
    description: str | None = None
    sha1: str | None = None
    dstat: Artifact | None = None
    artifact_name: str = ""  # the current layout's source name (unique in the export)

    @property
    def source(self) -> str:
        return "run" if self.job_id is None else safe_filename(self.job_id)

    def base(self) -> str:
        return f"tempest_{self.source}_{self.index}"


def export_stackviz(session: Session, store, run_name: str, *, compress: bool = False,
                    layout: str = "current") -> Export:
    """A stackviz dataset per job with test cases (and one for the run's own, if any), as
    stackviz-export writes it (`layout="legacy"`: as it wrote it before 2016); `compress`
    gzips the data files (not config.json), as stackviz-export --gzip does."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    run = _get_run(session, run_name)
    conds = [TestCase.run_id == run.id]

    def count():
        return session.scalar(select(func.count()).select_from(TestCase).where(*conds))

    def produce(progress):
        chunks = tar_chunks(progress)
        try:
            for chunk in chunks:
                if chunk:  # the compressor may have held everything back
                    yield chunk
        finally:
            chunks.close()

    def tar_chunks(progress):
        datasets = _datasets(session, run)
        mtime = (run.updated or run.scheduled or dt.datetime.now(dt.UTC)).timestamp()
        sink = TarSink()
        # gzip'd here rather than by tarfile ("w|gz" stamps the gzip header with the time
        # of export), so the same data gives the same bytes
        zipped = gzip_module.GzipFile(filename="", mode="wb", fileobj=sink, mtime=int(mtime))
        tar = tarfile.open(fileobj=zipped, mode="w|")  # noqa: SIM115 (the finally closes it)
        try:
            if layout == "current":
                dstat_names = _current_dstat_names(datasets)
                config = {"deployer": False,
                          "datasets": [_current_config_entry(run, d, compress, dstat_names)
                                       for d in datasets]}
                write_dataset = _write_current_dataset
                copy_dstat = _copy_dstat
            else:
                dstat_names = _dstat_names(datasets)
                config = {"tempest": [_config_entry(run_name, d, compress, dstat_names)
                                      for d in datasets]}
                write_dataset = _write_dataset
                copy_dstat = _copy_blob
            member = Member("config.json", False)
            member.write(dumps(config))
            member.add_to(tar, mtime)
            yield sink.take()
            rows = iter(_counted(_stream_rows(session, _test_select(conds, details=True)),
                                 progress))
            state = {"pending": next(rows, NOTHING)}
            known = {d.job_id for d in datasets}
            for dataset in datasets:
                job_rows = _rows_of(rows, state, dataset.job_id, known)
                yield from write_dataset(tar, sink, dataset, job_rows, compress, mtime)
                if dataset.dstat is not None:
                    member = Member(dstat_names[dataset.index], compress)
                    copy_dstat(store, dataset.dstat, member)
                    member.add_to(tar, mtime)
                    yield sink.take()
            for _ in rows:  # test cases added meanwhile: read the cursor to its end
                pass
        finally:
            tar.close()
            zipped.close()
        yield sink.take()

    return Export(f"{run_name}-stackviz.tar.gz", CONTENT_TYPES["tar.gz"], produce, count)


def _datasets(session: Session, run: Run) -> list[_Dataset]:
    """Jobs with test cases, in the order test cases stream (run-level first)."""
    rows = session.execute(
        select(TestCase.job_id, Job.job_id, Job.status, Job.description, Job.sha1)
        .select_from(TestCase)
        .outerjoin(Job, Job.id == TestCase.job_id).where(TestCase.run_id == run.id)
        .group_by(TestCase.job_id, Job.job_id, Job.sort_key, Job.status, Job.description,
                  Job.sha1)
        .order_by(TestCase.job_id.is_not(None), Job.sort_key)).all()
    datasets = [_Dataset(i, job_id, pk, status=getattr(status, "value", status),
                         description=description, sha1=sha1)
                for i, (pk, job_id, status, description, sha1) in enumerate(rows)]
    latest: dict[int, Artifact] = {}
    for job_pk, artifact in session.execute(
            select(Timeline.job_id, Artifact)
            .join(Artifact, Artifact.id == Timeline.artifact_id)
            .where(Timeline.run_id == run.id, Timeline.job_id.is_not(None))
            .order_by(Artifact.created, Artifact.id)):
        latest[job_pk] = artifact  # the job's most recent parsed dstat artifact wins
    taken: set[str] = set()
    for dataset in datasets:
        if dataset.job_pk is not None:
            dataset.dstat = latest.get(dataset.job_pk)
        name = "run" if dataset.job_id is None else "job-" + safe_filename(dataset.job_id)
        if name in taken:  # job ids that differ only in characters a file name can't hold
            name = f"{name}-{dataset.index}"
        taken.add(name)
        dataset.artifact_name = name
    return datasets


def _rows_of(rows: Iterator, state: dict, job_id: str | None, known: set) -> Iterator:
    """The rows of one dataset from the ordered stream; rows of a job the dataset list has
    not seen (test cases added while exporting) are skipped."""
    while True:
        row = state["pending"]
        if row is NOTHING:
            return
        if row.job_id not in known:
            state["pending"] = next(rows, NOTHING)
            continue
        if row.job_id != job_id:
            return
        yield row
        state["pending"] = next(rows, NOTHING)


# ---- the current layout ---------------------------------------------------------------------

def _current_dstat_names(datasets: list[_Dataset]) -> dict[int, str]:
    """`dstat.csv` (stackviz-export's name) when one dataset has a dstat log; with several,
    `<source>-dstat.csv` each."""
    having = [d for d in datasets if d.dstat is not None]
    if len(having) == 1:
        return {having[0].index: "dstat.csv"}
    return {d.index: f"{d.artifact_name}-dstat.csv" for d in having}


def _artifact(path: str, name: str, kind: str, content_type: str, primary: bool,
              compress: bool) -> dict:
    entry = {"path": path + (".gz" if compress else ""), "artifact_name": name,
             "artifact_type": kind, "content_type": content_type, "primary": primary}
    if compress:
        entry["content_encoding"] = "gzip"
    return entry


def _current_config_entry(run: Run, dataset: _Dataset, compress: bool,
                          dstat_names: dict[int, str]) -> dict:
    """One dataset of config.json: stackviz-export's keys, filled from the run and job
    where one fits (the front end reads only `artifacts`)."""
    artifacts = []
    if dataset.index in dstat_names:  # stackviz-export lists the dstat log first
        artifacts.append(_artifact(dstat_names[dataset.index],
                                   dataset.dstat.name.rsplit("/", 1)[-1], "dstat", "text/csv",
                                   False, compress))
    name, prefix = dataset.artifact_name, f"{dataset.artifact_name}-0"
    artifacts += [
        _artifact(f"{prefix}-raw.json", name, "subunit", "application/json", True, compress),
        _artifact(f"{prefix}-details.json", name, "subunit-details", "application/json",
                  False, compress),
        _artifact(f"{prefix}-stats.json", name, "subunit-stats", "application/json", False,
                  compress)]
    job = dataset.job_id is not None
    return {"name": f"{run.name} " + (f"job {dataset.job_id}" if job else "(run)"),
            "url": None,
            "status": dataset.status if job else getattr(run.status, "value", run.status),
            "ci_username": run.user, "pipeline": None, "change_id": None,
            "revision": dataset.sha1 if job else run.sha1, "change_project": None,
            "change_subject": dataset.description if job else None,
            "artifacts": artifacts}


def _current_raw_entry(row) -> dict:
    start = stackviz_time(row.start)
    stop = stackviz_time(row.stop) if row.stop is not None else start
    tags = list(row.tags or ()) or ([row.worker] if row.worker else [])
    return {"name": stackviz_name(row.test_id), "status": STATUS[row.status.value],
            "tags": tags, "timestamps": [start, stop], "duration": float(row.duration or 0.0),
            "details": {}}


class _Stats:
    """`<source>-0-stats.json`, gathered as the rows go by: count, first start, last end,
    summed durations, failures and skips. `details` of a failure or skip is null, as
    stackviz-export writes it (it computes them from the raw entries, whose details it has
    already stripped); the details file has the attachments."""

    def __init__(self):
        self.count = 0
        self.start: dt.datetime | None = None
        self.end: dt.datetime | None = None
        self.total = 0.0
        self.failures: list[dict] = []
        self.skips: list[dict] = []

    def add(self, row, entry: dict) -> None:
        self.count += 1
        start, end = row.start, row.stop if row.stop is not None else row.start
        if start is not None and (self.start is None or start < self.start):
            self.start = start
        if end is not None and (self.end is None or end > self.end):
            self.end = end
        self.total += entry["duration"]
        if entry["status"] in ("fail", "skip"):
            (self.failures if entry["status"] == "fail" else self.skips).append(
                {"name": entry["name"], "duration": entry["duration"], "details": None})

    def document(self) -> dict:
        return {"count": self.count, "start": stackviz_time(self.start),
                "end": stackviz_time(self.end), "total_duration": self.total,
                "failures": self.failures, "skips": self.skips}


def _write_current_dataset(tar, sink: TarSink, dataset: _Dataset, rows: Iterable,
                           compress: bool, mtime: float) -> Iterator[bytes]:
    """raw and details stream into their members; stats are gathered on the way."""
    prefix = f"{dataset.artifact_name}-0"
    raw = Member(f"{prefix}-raw.json", compress)
    details = Member(f"{prefix}-details.json", compress)
    stats = _Stats()
    raw.write(b"[")
    details.write(b"{")
    sep = b""
    for row in rows:
        entry = _current_raw_entry(row)
        raw.write(sep + dumps(entry))
        details.write(sep + dumps(entry["name"]) + b": " + dumps(_attachments(row)))
        stats.add(row, entry)
        sep = b", "
    raw.write(b"]")
    details.write(b"}")
    raw.add_to(tar, mtime)
    yield sink.take()
    details.add_to(tar, mtime)
    yield sink.take()
    member = Member(f"{prefix}-stats.json", compress)
    member.write(dumps(stats.document()))
    member.add_to(tar, mtime)
    yield sink.take()


def _copy_dstat(store, artifact: Artifact, member: Member) -> None:
    """The dstat log without its blank lines. stackviz's dstat parser (app/js/util/
    dstat-parse.js) takes rows 1-3 as the preamble and rows 4 and 5 as the column names,
    counting a blank line as a row; dstat writes a blank line after its four preamble lines,
    so as uploaded the names would be read from the blank line and the chart stay empty."""
    lines = _SkipBlankLines(member)
    _copy_blob(store, artifact, lines)
    lines.close()


class _SkipBlankLines:
    """A writer that passes whole lines on, leaving out the blank ones (across chunk
    boundaries; the last line is passed on even without its line end)."""

    def __init__(self, member: Member):
        self.member = member
        self.pending = b""

    def write(self, data: bytes) -> None:
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        kept = [line for line in lines if line.strip()]
        if kept:
            self.member.write(b"\n".join(kept) + b"\n")

    def close(self) -> None:
        if self.pending.strip():
            self.member.write(self.pending)
        self.pending = b""


# ---- the legacy (pre-2016) layout -----------------------------------------------------------

def _dstat_names(datasets: list[_Dataset]) -> dict[int, str]:
    """`dstat_log.csv` when one dataset has a dstat log; with several, one file each."""
    having = [d for d in datasets if d.dstat is not None]
    if len(having) == 1:
        return {having[0].index: "dstat_log.csv"}
    return {d.index: f"dstat_log_{d.source}_{d.index}.csv" for d in having}


def _config_entry(run_name: str, dataset: _Dataset, compress: bool,
                  dstat_names: dict[int, str]) -> dict:
    suffix = ".gz" if compress else ""
    base = dataset.base()
    entry = {"id": dataset.index,
             "name": f"{run_name} " + ("(run)" if dataset.job_id is None
                                       else f"job {dataset.job_id}"),
             "raw": f"{base}_raw.json{suffix}", "tree": f"{base}_tree.json{suffix}",
             "details": f"{base}_details.json{suffix}"}
    if dataset.index in dstat_names:
        entry["dstat"] = dstat_names[dataset.index] + suffix
    return entry


def _raw_entry(row) -> dict:
    start = iso_time(row.start)
    stop = iso_time(row.stop) if row.stop is not None else start
    tags = list(row.tags or ()) or ([row.worker] if row.worker else [])
    return {"name": stackviz_name(row.test_id), "status": LEGACY_STATUS[row.status.value],
            "tags": tags, "details": {}, "duration": float(row.duration or 0.0),
            "timestamps": [start, stop]}


def _write_dataset(tar, sink: TarSink, dataset: _Dataset, rows: Iterable, compress: bool,
                   mtime: float) -> Iterator[bytes]:
    """raw and details stream into their members; the tree (names only, and the raw
    fields of each leaf) is built in memory for the one dataset."""
    base = dataset.base()
    raw = Member(f"{base}_raw.json", compress)
    details = Member(f"{base}_details.json", compress)
    tree = _Tree()
    raw.write(b"[")
    details.write(b"{")
    first = True
    for row in rows:
        entry = _raw_entry(row)
        sep = b"" if first else b", "
        first = False
        raw.write(sep + dumps(entry))
        logs = {"status": entry["status"], "timestamps": entry["timestamps"]}
        for key, text in (row.details or {}).items():
            key = _detail_key(key)
            logs[key if key not in logs else f"{key}_attachment"] = text
        details.write(sep + dumps(entry["name"]) + b": " + dumps(logs))
        tree.add(entry)
    raw.write(b"]")
    details.write(b"}")
    raw.add_to(tar, mtime)
    yield sink.take()
    member = Member(f"{base}_tree.json", compress)
    member.write(dumps(tree.root))
    member.add_to(tar, mtime)
    yield sink.take()
    details.add_to(tar, mtime)
    yield sink.take()


class _Tree:
    """Test names split on `.` into {"name", "children": [...]} nodes, as stackviz's tree
    file has them; a leaf also carries the test's raw fields and `name_full`. When names do
    not all share their first part, the root is named "" and holds one child per first
    part."""

    def __init__(self):
        self.root: dict = {}
        self._children: dict[int, dict[str, dict]] = {}

    def add(self, entry: dict) -> None:
        parts = entry["name"].split(".")
        root = self.root
        if not root:
            root["name"] = parts[0]
        if root["name"] != parts[0]:
            if root["name"] != "":
                old = dict(root)
                self._children[id(old)] = self._children.pop(id(root), {})
                root.clear()
                root.update(name="", children=[old])
                self._children[id(root)] = {old["name"]: old}
            parts = ["", *parts]
        node = root
        for part in parts[1:]:
            index = self._children.setdefault(id(node), {})
            child = index.get(part)
            if child is None:
                child = {"name": part}
                node.setdefault("children", []).append(child)
                index[part] = child
            node = child
        node.update({k: v for k, v in entry.items() if k != "name"}, name_full=entry["name"])


def _copy_blob(store, artifact: Artifact, out) -> None:
    """The artifact's bytes as uploaded (decompressed when stored gzip) into `out`."""
    try:
        chunks = store.open_range(artifact.sha256, 0, None)
    except BlobMissing:
        log.error("artifact %s (id %s) names blob %s, which storage does not have; its "
                  "stackviz dstat file is left empty", artifact.name, artifact.id,
                  artifact.sha256)
        return
    if artifact.content_encoding == "gzip":
        chunks = gunzip_chunks(chunks)
    for chunk in chunks:
        out.write(chunk)
