"""Artifacts, test cases and timelines, under a run and under a job.

One controller class per resource, parameterised by scope: `job_id=None` is the run's own
artifacts (`/runs/NAME/artifacts/...`), otherwise the job's (`/runs/NAME/jobs/ID/...`).
Uploads are streamed: WireMiddleware hands the body over untouched (middleware.STREAMED_BODY),
and it goes to a spool file, then the blob store, before the write transaction begins.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import quote

from pecan import expose, request, response
from webob import Response

from .. import serializers, streams
from ..content_coding import accepts_gzip
from ..db import begin_write
from ..errors import InvalidRequest, PaddlesError, RangeNotSatisfiable
from ..middleware import BODY_LIMIT, STREAMED_BODY, StreamedBody
from ..schemas.artifacts import (parse_artifact_kind, parse_artifact_name, parse_artifact_path,
                                 parse_content_type, parse_test_status)
from ..schemas.common import parse_bool, parse_paging
from ..services import artifacts as artifact_service
from ..storage import BlobMissing
from .base import Resource, StreamedResponse

log = logging.getLogger(__name__)

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
# served artifacts are untrusted content: never sniffed into HTML, never run as a page
SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


class _Scoped(Resource):
    def __init__(self, settings, run_name: str, job_id: str | None = None):
        super().__init__(settings)
        self._run_name = run_name
        self._job_id = job_id

    def _href(self) -> str:
        return serializers.artifacts_href(self._settings, self._run_name, self._job_id)

    def _scope(self):
        return artifact_service.get_scope(self._db(), self._run_name, self._job_id)

    def _check_then_release(self) -> None:
        """404 for a missing run/job before a byte of the body is read; then end that read
        transaction, so no snapshot or pooled connection is held while the body streams."""
        db = self._db()
        self._scope()
        db.rollback()

    @staticmethod
    def _streamed_body() -> StreamedBody:
        body = request.environ.get(STREAMED_BODY)
        if body is None:  # app called without WireMiddleware
            raw = request.environ.get("CONTENT_LENGTH") or "0"
            body = StreamedBody(request.environ["wsgi.input"], int(raw) if raw.isdigit() else -1,
                                request.environ.get("CONTENT_TYPE"),
                                request.environ.get("HTTP_CONTENT_ENCODING"))
        if body.length is not None and body.length < 0:
            raise InvalidRequest("invalid Content-Length")
        return body

    def _upload_limit(self) -> int:
        """The route's body limit (limits.BodyLimits; artifacts_max_size unless configured)."""
        return request.environ.get(BODY_LIMIT, self._settings.artifacts_max_size)

    def _save(self, uploads, names, kind):
        """Store blobs and parse (no lock held), then write every row in one transaction."""
        db, store = self._db(), request.blobs
        try:
            prepared = [artifact_service.prepare_upload(store, upload, name, kind)
                        for upload, name in zip(uploads, names)]
            begin_write(db)
            return artifact_service.save_artifacts(db, store, self._run_name, self._job_id,
                                                   prepared)
        finally:
            for upload in uploads:
                upload.discard()


class ArtifactsController(_Scoped):
    """GET lists, POST uploads multipart/form-data; ARTIFACTS/PATH goes to ArtifactController."""

    def _route_samples(self):
        return [("{}",)]

    @expose()
    def _route(self, args, request=None):
        segments = [a for a in args if a != ""]
        if segments:  # the whole rest of the URL is the artifact's PATH, whatever it says
            item, _ = self._route_child(*segments)
            return item._route([], request)
        return super()._route(args, request)

    def _route_child(self, *segments):
        # not named _lookup: Pecan would also try that for methods this collection lacks
        return ArtifactController(self._settings, self._run_name, self._job_id,
                                  list(segments)), []

    @expose("json")
    def get_all(self, **_):
        href = self._href()
        return [serializers.artifact_detail(a, href)
                for a in artifact_service.list_artifacts(self._db(), self._scope())]

    @expose("json")
    def post(self, **_):
        kind = parse_artifact_kind(self._params().get("kind"))
        body = self._streamed_body()
        if (body.content_type or "").split(";", 1)[0].strip().lower() != "multipart/form-data":
            raise PaddlesError("POST takes a multipart/form-data body (curl -F file=@NAME); "
                               "PUT a raw body to artifacts/PATH", status=415)
        self._check_then_release()
        uploads = streams.spool_multipart(body.input, body.length, body.content_type,
                                          spool_dir=request.blobs.spool_dir,
                                          limit=self._upload_limit())
        try:
            names = [parse_artifact_name(u.filename) for u in uploads]
            for upload in uploads:
                parse_content_type(upload.content_type)
            if len(set(names)) != len(names):
                raise InvalidRequest("the same file name twice in one upload")
        except BaseException:
            for upload in uploads:
                upload.discard()
            raise
        saved = self._save(uploads, names, kind)
        response.status = 201 if any(outcome == "created" for _, outcome in saved) else 200
        href = self._href()
        return [serializers.artifact_detail(artifact, href) for artifact, _ in saved]


class ArtifactController(_Scoped):
    def __init__(self, settings, run_name, job_id, segments):
        super().__init__(settings, run_name, job_id)
        self._segments = segments

    @expose()
    def get(self, **_):
        name = parse_artifact_path(self._segments)
        artifact = artifact_service.get_artifact(self._db(), self._scope(), name)
        return _download(artifact, request.blobs)

    @expose("json")
    def put(self, **_):
        name = parse_artifact_path(self._segments)
        kind = parse_artifact_kind(self._params().get("kind"))
        body = self._streamed_body()
        content_type = parse_content_type(body.content_type)
        encoding = streams.content_encoding(body.content_encoding)
        self._check_then_release()
        upload = streams.spool_body(body.input, body.length, spool_dir=request.blobs.spool_dir,
                                    limit=self._upload_limit(),
                                    content_encoding=encoding, content_type=content_type)
        [(artifact, outcome)] = self._save([upload], [name], kind)
        data = serializers.artifact_detail(artifact, self._href())
        if outcome == "created":
            response.status = 201
            response.headers["Location"] = _header_safe_url(data["href"])
        return data

    @expose()
    def delete(self, **_):
        name = parse_artifact_path(self._segments)
        artifact_service.delete_artifact(self._db(), self._run_name, self._job_id, name)
        return Response(status=204)


class TestsController(_Scoped):
    """Parsed test cases: of a job, or (job_id None) of the whole run, with per-status counts."""

    __test__ = False  # not a pytest class

    @expose("json")
    def get_all(self, **_):
        params = self._params()
        status = parse_test_status(params.get("status"))
        limit, offset = parse_paging(params, None)
        details = parse_bool("details", params["details"]) if params.get("details") \
            else False
        db = self._db()
        scope = self._scope()
        counts = artifact_service.count_tests(db, scope.run, scope.job)
        rows = artifact_service.list_tests(db, scope.run, scope.job, status=status,
                                           limit=limit, offset=offset)
        run_href = serializers.artifacts_href(self._settings, self._run_name, None)
        tests = []
        for test, job_id, artifact_name in rows:
            href = run_href if job_id is None else serializers.artifacts_href(
                self._settings, self._run_name, job_id)
            tests.append(serializers.test_case_detail(test, job_id, artifact_name, href,
                                                      details=details))
        return {"counts": counts, "tests": tests}


class TimelineController(_Scoped):
    """The job's dstat series, from its most recent parsed dstat artifact."""

    @expose("json")
    def get_all(self, **_):
        timeline, artifact = artifact_service.get_timeline(self._db(), self._scope())
        return serializers.timeline_detail(timeline, artifact, self._href())


# ---- downloads ----------------------------------------------------------------------------

def _download(artifact, store) -> Response:
    headers = {"ETag": f'"{artifact.sha256}"', **SAFETY_HEADERS}
    if _etag_matches(request.headers.get("If-None-Match"), artifact.sha256):
        return Response(status=304, headers=headers)
    gzipped = artifact.content_encoding == "gzip"
    head = request.method == "HEAD"
    if gzipped:
        headers["Vary"] = "Accept-Encoding"
    if gzipped and not accepts_gzip(request.headers.get("Accept-Encoding")):
        # decompressed on the fly: the length is unknown up front, and ranges are not offered
        headers["Accept-Ranges"] = "none"
        chunks = None if head else streams.gunzip_chunks(_open(store, artifact, 0, None))
        return _response(200, artifact, headers, chunks, length=None)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers["Accept-Ranges"] = "bytes"
    size = artifact.size
    wanted = None
    if_range = request.headers.get("If-Range")
    if if_range is None or if_range.strip() == f'"{artifact.sha256}"':
        wanted = _parse_range(request.headers.get("Range"), size)
    if wanted is None:
        chunks = None if head else _open(store, artifact, 0, None)
        return _response(200, artifact, headers, chunks, length=size)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    chunks = None if head else _open(store, artifact, start, end)
    return _response(206, artifact, headers, chunks, length=end - start)


def _open(store, artifact, start, end):
    try:
        return store.open_range(artifact.sha256, start, end)
    except BlobMissing:
        log.error("artifact %s (id %s) names blob %s, which storage does not have",
                  artifact.name, artifact.id, artifact.sha256)
        raise PaddlesError("artifact content is missing from storage", status=500) from None


class _Stream:
    """WSGI body: iterates the chunks; close() reaches the backend (file or S3 response)."""

    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    def close(self):
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _response(status, artifact, headers, chunks, *, length) -> Response:
    resp = StreamedResponse(status=status, content_type=None, charset=None)
    resp.headers["Content-Type"] = _served_type(artifact.content_type)
    for key, value in headers.items():
        resp.headers[key] = value
    resp.app_iter = _Stream(chunks if chunks is not None else ())
    resp.content_length = length  # None: unknown (sent chunked)
    return resp


_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")
# what a header value cannot carry (RFC 9110 5.5: SP, HTAB, VCHAR, obs-text), as gunicorn checks
_NOT_IN_HEADER = re.compile(r"[^ \t\x21-\x7e\x80-\xff]")


def _header_safe_url(href: str) -> str:
    """`href` for a header: a run name or job id beyond Latin-1 (the artifact name is quoted
    already) percent-encoded as UTF-8. Raw, gunicorn refused the response: the 201 of the
    first PUT of an artifact to such a run was a 500, the app having logged a 201."""
    return _NOT_IN_HEADER.sub(lambda m: quote(m.group(), safe=""), href)


def _served_type(content_type: str) -> str:
    """The stored type, unless a header cannot carry it: a guess from a `data:` name could be
    any text before that was fixed (gunicorn refused the response, a 500 on every GET)."""
    if _HEADER_SAFE.fullmatch(content_type or ""):
        return content_type
    return "application/octet-stream"


def _etag_matches(header: str | None, sha256: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == sha256:
            return True
    return False


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) for one `bytes=` range; None to send everything (no Range, several
    ranges, another unit, or a malformed one: RFC 9110 lets a server ignore those)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"range not satisfiable: the artifact has {size} bytes",
                               headers={"Content-Range": f"bytes */{size}"})
