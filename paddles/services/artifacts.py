"""Artifacts: where they live (a job or a run), saving uploads with their blob and parsed
results, listings, test cases, timelines and retention.

Blobs are shared by content. The `blobs` row is the lock between an upload re-using a blob
and `purge` deleting it: both take it FOR UPDATE (SQLite serialises writers anyway), an upload
re-puts the blob when it finds it gone, and purge deletes a blob only when, under that lock,
no artifact row names it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import mimetypes
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, CursorResult

from .. import parsers
from ..errors import ArtifactNotFound, NotFound, PaddlesError
from ..models import (Artifact, ArtifactKind, Blob, Job, ParseStatus, Run, TestCase, TestStatus,
                      Timeline, utcnow)
from ..models.artifacts import TEST_STATUS_VALUES
from ..storage import BlobStore
from ..streams import SpooledUpload
from . import events
from . import jobs as job_service
from . import runs as run_service
from .common import fetch_one

log = logging.getLogger(__name__)

INSERT_BATCH = 1000
_TEST_CASES = TestCase.metadata.tables[TestCase.__tablename__]  # for the bulk insert
INSERT_ATTEMPTS = 3  # of a new artifact's row, when concurrent requests keep taking its name
# what an upload's Content-Type says when the client did not really say anything
MEANINGLESS_TYPES = ("", "application/x-www-form-urlencoded", "multipart/form-data")
KIND_TYPES = {"subunit": "application/vnd.subunit.v2", "junit": "application/xml",
              "dstat": "text/csv", "log": "text/plain; charset=utf-8",
              "binary": "application/octet-stream"}


@dataclasses.dataclass(frozen=True)
class Scope:
    """A run's own artifacts (job None) or a job's."""

    run: Run
    job: Job | None

    def where(self, model: type[Artifact | Timeline]) -> list[ColumnElement[bool]]:
        job_cond = model.job_id.is_(None) if self.job is None else model.job_id == self.job.id
        return [model.run_id == self.run.id, job_cond]


def get_scope(session: Session, run_name: str, job_id: str | None) -> Scope:
    if job_id is None:
        return Scope(run_service.get_run(session, run_name), None)
    run, job = job_service.get_job(session, run_name, job_id)
    return Scope(run, job)


# ---- uploads ----------------------------------------------------------------------------

@dataclasses.dataclass
class PreparedUpload:
    """A spooled upload with its blob stored and its content parsed, ready for its rows."""

    name: str
    upload: SpooledUpload
    kind: ArtifactKind
    content_type: str
    parsed: parsers.ParseResult | None


def prepare_upload(store: BlobStore, upload: SpooledUpload, name: str,
                   kind: str | None = None) -> PreparedUpload:
    """Store the blob and parse the content; no database work, so it runs outside any lock."""
    kind = kind or parsers.detect_kind(upload.head)
    store.put(upload.sha256, upload.path)
    parsed = None
    if kind in parsers.PARSED_KINDS:
        with upload.open_decoded() as stream:
            parsed = parsers.parse(kind, stream)
    return PreparedUpload(name, upload, ArtifactKind(kind),
                          content_type_for(upload.content_type, name, kind), parsed)


def content_type_for(given: str | None, name: str, kind: str) -> str:
    """The client's Content-Type, unless it is a form default; then a guess from name/kind."""
    given = (given or "").strip()
    if given.split(";", 1)[0].strip().lower() not in MEANINGLESS_TYPES:
        return given[:255]
    if kind in ("log", "binary"):
        # the name as a path, never a URL: mimetypes reads `data:TYPE,...` as a data URL and
        # returns TYPE as written (any text: a non-Latin-1 one made every download a 500)
        guessed = mimetypes.guess_type("./" + name, strict=False)[0]
        if guessed and guessed not in ("application/gzip", "application/x-gzip"):
            return guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")
    return KIND_TYPES[kind]


def save_artifacts(session: Session, store: BlobStore, run_name: str, job_id: str | None,
                   prepared: list[PreparedUpload]) -> list[tuple[Artifact, str]]:
    """Create or replace every artifact of one request (distinct names), in its order:
    [(artifact, created|replaced|unchanged)].

    Locks are taken in one order by every upload: the blob rows first (by sha256), then the
    artifact rows (by name). Two PUTs of one PATH used to deadlock on PostgreSQL (a 503):
    one held the artifact row and waited for its blob's row, which the other held while it
    waited for the artifact row it had just found taken by a third.
    """
    for sha256 in sorted({p.upload.sha256 for p in prepared}):
        _lock_blob(session, store, next(p.upload for p in prepared
                                        if p.upload.sha256 == sha256))
    saved = {p.name: _save(session, run_name, job_id, p)
             for p in sorted(prepared, key=lambda p: p.name)}
    return [saved[p.name] for p in prepared]


def save_artifact(session: Session, store: BlobStore, run_name: str, job_id: str | None,
                  prepared: PreparedUpload) -> tuple[Artifact, str]:
    """Create or replace artifact `prepared.name`: (artifact, created|replaced|unchanged)."""
    return save_artifacts(session, store, run_name, job_id, [prepared])[0]


def _save(session: Session, run_name: str, job_id: str | None,
          prepared: PreparedUpload) -> tuple[Artifact, str]:
    """save_artifacts for one upload, its blob's row already locked."""
    scope = get_scope(session, run_name, job_id)  # the job may have gone while the body came
    upload = prepared.upload
    existing = _find(session, scope, prepared.name, for_update=True)
    if existing is not None and (existing.sha256, existing.content_encoding, existing.kind,
                                 existing.content_type) == (
            upload.sha256, upload.content_encoding, prepared.kind, prepared.content_type):
        return existing, "unchanged"
    outcome = "replaced"
    attempts = 0
    while existing is None:
        attempts += 1
        artifact = Artifact(run_id=scope.run.id, job_id=scope.job.id if scope.job else None,
                            name=prepared.name)
        _fill(artifact, prepared)
        try:
            with session.begin_nested():
                session.add(artifact)
            outcome = "created"
            break
        except IntegrityError:
            # a concurrent upload of the same name won: replace its row; or the run or job
            # went (404); or that row was deleted again since the insert saw it (a DELETE
            # racing both uploads, once a 404 "run not found"): insert once more
            existing = _find(session, scope, prepared.name, for_update=True)
            if existing is None:
                scope = get_scope(session, run_name, job_id)
                if attempts == INSERT_ATTEMPTS:
                    raise PaddlesError("the artifact was changed by concurrent requests; "
                                       "retry", status=409) from None
    if existing is not None:
        _clear_parsed(session, existing.id)
        _fill(existing, prepared)
        artifact = existing
    session.flush()
    _store_parsed(session, scope, artifact, prepared.parsed)
    events.record_artifact(session, "artifact.created" if outcome == "created"
                           else "artifact.updated", scope.run, scope.job, artifact.name, artifact)
    return artifact, outcome


def _fill(artifact: Artifact, prepared: PreparedUpload) -> None:
    upload = prepared.upload
    artifact.sha256 = upload.sha256
    artifact.size = upload.size
    artifact.content_type = prepared.content_type
    artifact.content_encoding = upload.content_encoding
    artifact.kind = prepared.kind
    artifact.created = utcnow()
    parsed = prepared.parsed
    artifact.parse_status = None if parsed is None else (
        ParseStatus.ERROR if parsed.error else ParseStatus.OK)
    artifact.parse_error = parsed.error if parsed is not None else None


def _lock_blob(session: Session, store: BlobStore, upload: SpooledUpload) -> None:
    """The blob's row, inserted if new and locked; the blob re-put if purge took it meanwhile."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Blob).values(sha256=upload.sha256, size=upload.size,
                                        created=utcnow())
                    .on_conflict_do_nothing(index_elements=["sha256"]))
    session.execute(select(Blob.sha256).where(Blob.sha256 == upload.sha256).with_for_update())
    if not store.exists(upload.sha256):
        store.put(upload.sha256, upload.path)


def _find(session: Session, scope: Scope, name: str, *,
          for_update: bool = False) -> Artifact | None:
    artifact: Artifact | None = fetch_one(
        session, select(Artifact).where(*scope.where(Artifact), Artifact.name == name),
        for_update=for_update)
    return artifact


def _clear_parsed(session: Session, artifact_id: int) -> None:
    session.execute(delete(TestCase).where(TestCase.artifact_id == artifact_id))
    session.execute(delete(Timeline).where(Timeline.artifact_id == artifact_id))


def _store_parsed(session: Session, scope: Scope, artifact: Artifact,
                  parsed: parsers.ParseResult | None) -> None:
    """The parsed rows, in a savepoint: a value the database refuses (the parsers make their
    text storable; this is for what they miss) leaves the artifact stored with parse_status
    "error", not a 500 that loses the upload."""
    if parsed is None:
        return
    try:
        with session.begin_nested():
            _insert_parsed(session, scope, artifact, parsed)
    except (StatementError, ValueError, OverflowError, UnicodeError) as exc:
        if isinstance(exc, DBAPIError) and not isinstance(exc, DataError):
            raise  # lost connection, deadlock, lock timeout...: not about the values
        cause = getattr(exc, "orig", None) or exc
        log.warning("artifact %s: parsed results not stored: %s: %s", artifact.name,
                    type(cause).__name__, (str(cause).strip().splitlines() or [""])[0])
        artifact.parse_status = ParseStatus.ERROR
        artifact.parse_error = (f"{artifact.kind.value}: parsed results could not be stored "
                                f"({type(cause).__name__})")
        session.flush()


def _insert_parsed(session: Session, scope: Scope, artifact: Artifact,
                   parsed: parsers.ParseResult) -> None:
    job_pk = scope.job.id if scope.job else None
    rows = [dict(artifact_id=artifact.id, run_id=scope.run.id, job_id=job_pk,
                 test_id=t.test_id, status=TestStatus(t.status), start=t.start, stop=t.stop,
                 duration=t.duration, worker=t.worker, tags=t.tags or None,
                 message=t.message, details=t.details or None) for t in parsed.tests]
    for i in range(0, len(rows), INSERT_BATCH):
        session.execute(_TEST_CASES.insert(), rows[i:i + INSERT_BATCH])
    if parsed.timeline is not None:
        session.add(Timeline(artifact_id=artifact.id, run_id=scope.run.id, job_id=job_pk,
                             columns=parsed.timeline.columns, rows=parsed.timeline.rows))


# ---- reads and deletes ------------------------------------------------------------------

def list_artifacts(session: Session, scope: Scope) -> list[Artifact]:
    return list(session.scalars(select(Artifact).where(*scope.where(Artifact))
                                .order_by(Artifact.name)))


def get_artifact(session: Session, scope: Scope, name: str) -> Artifact:
    artifact = _find(session, scope, name)
    if artifact is None:
        raise ArtifactNotFound("artifact not found")
    return artifact


def delete_artifact(session: Session, run_name: str, job_id: str | None, name: str) -> None:
    """The row goes (with its test cases and timeline); the blob waits for `purge`."""
    scope = get_scope(session, run_name, job_id)
    result = cast("CursorResult[Any]",
                  session.execute(delete(Artifact).where(*scope.where(Artifact),
                                                         Artifact.name == name)))
    if result.rowcount == 0:
        raise ArtifactNotFound("artifact not found")
    events.record_artifact(session, "artifact.deleted", scope.run, scope.job, name)


def count_tests(session: Session, run: Run, job: Job | None = None) -> dict[str, int]:
    """Test cases per status (every status present, zeros included) and the total."""
    stmt = select(TestCase.status, func.count()).where(TestCase.run_id == run.id)
    if job is not None:
        stmt = stmt.where(TestCase.job_id == job.id)
    found = {status.value: n for status, n in session.execute(stmt.group_by(TestCase.status))}
    counts = {status: found.get(status, 0) for status in TEST_STATUS_VALUES}
    counts["total"] = sum(found.values())
    return counts


def list_tests(session: Session, run: Run, job: Job | None = None, *,
               status: str | None = None, limit: int | None = None,
               offset: int = 0) -> list[tuple[TestCase, str | None, str]]:
    """(test case, its job's job_id or None, its artifact's name), by start then id."""
    stmt = (select(TestCase, Job.job_id, Artifact.name)
            .join(Artifact, Artifact.id == TestCase.artifact_id)
            .outerjoin(Job, Job.id == TestCase.job_id)
            .where(TestCase.run_id == run.id)
            .order_by(TestCase.start.is_(None), TestCase.start, TestCase.id))
    if job is not None:
        stmt = stmt.where(TestCase.job_id == job.id)
    if status is not None:
        stmt = stmt.where(TestCase.status == TestStatus(status))
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return [(case, job_id, name) for case, job_id, name in session.execute(stmt)]


def get_timeline(session: Session, scope: Scope) -> tuple[Timeline, Artifact]:
    """The job's most recent parsed dstat artifact."""
    row = session.execute(
        select(Timeline, Artifact).join(Artifact, Artifact.id == Timeline.artifact_id)
        .where(*scope.where(Timeline))
        .order_by(Artifact.created.desc(), Artifact.id.desc()).limit(1)).first()
    if row is None:
        raise NotFound("no parsed dstat artifact for this job")
    return row[0], row[1]


# ---- retention --------------------------------------------------------------------------

@dataclasses.dataclass
class PurgePlan:
    artifacts: int
    artifact_bytes: int


def plan_purge(session: Session, cutoff: dt.datetime) -> PurgePlan:
    n, size = session.execute(select(func.count(), func.coalesce(func.sum(Artifact.size), 0))
                              .where(Artifact.created < cutoff)).one()
    return PurgePlan(n, int(size))


def delete_artifacts_before(session: Session, cutoff: dt.datetime) -> int:
    """Delete every artifact row created before `cutoff` (test cases and timelines cascade)."""
    result = cast("CursorResult[Any]",
                  session.execute(delete(Artifact).where(Artifact.created < cutoff)))
    return result.rowcount


def unreferenced_blobs(session: Session, keep_after: dt.datetime | None = None) -> list[Blob]:
    """Blobs no artifact names (with `keep_after`: none created at or after it, the blobs a
    purge with that cutoff would free)."""
    refs = select(Artifact.id).where(Artifact.sha256 == Blob.sha256)
    if keep_after is not None:
        refs = refs.where(Artifact.created >= keep_after)
    return list(session.scalars(select(Blob).where(~exists(refs)).order_by(Blob.sha256)))


def delete_blob_if_unreferenced(session: Session, store: BlobStore, sha256: str) -> int | None:
    """Under the blob's row lock: if no artifact names it, delete the stored blob, then the row.

    Returns the bytes freed, or None when the blob is in use again (or already gone). The
    stored blob goes before the row commits: an upload waiting on the lock then finds the
    blob missing and puts it back.
    """
    blob = session.scalar(select(Blob).where(Blob.sha256 == sha256).with_for_update()
                          .execution_options(populate_existing=True))
    if blob is None:
        return None
    if session.scalar(select(exists().where(Artifact.sha256 == sha256))):
        return None
    store.delete(sha256)
    session.execute(delete(Blob).where(Blob.sha256 == sha256))
    return blob.size

