"""/exports/: runs, jobs and test results as streamed downloads (docs/exports.md).

/exports/runs.{csv,json,jsonl}                     runs, filtered like the list routes
/exports/runs/NAME/jobs.{csv,json,jsonl}           a run's jobs (?status=)
/exports/runs/NAME/tests.{csv,json,junit.xml,subunit}   its test cases (?status=)
/exports/runs/NAME/stackviz.tar.gz                 a stackviz dataset (?gzip=1, ?layout=legacy)

The body is produced while it is sent. The request's session is closed by DBSessionHook
when the handler returns, so each export opens a session of its own from the app's
session factory and the response body closes it after the last chunk (or when the server
closes the body early: client gone, HEAD).
"""
from __future__ import annotations

import logging

from pecan import expose, request
from webob import Response, exc

from .. import filters
from ..errors import InvalidRequest
from ..models.statuses import JOB_STATUS_VALUES
from ..schemas.artifacts import parse_test_status
from ..schemas.common import parse_bool
from ..services import exports as export_service
from ..services import stackviz as stackviz_service
from ..writers.common import content_disposition
from .base import Resource, StreamedResponse

log = logging.getLogger(__name__)


def _split(filename: str) -> tuple[str, str] | None:
    """`jobs.csv` -> ("jobs", "csv"), `tests.junit.xml` -> ("tests", "junit.xml")."""
    kind, dot, fmt = filename.partition(".")
    if not dot or fmt not in export_service.FORMATS.get(kind, ()):
        return None
    return kind, fmt


class ExportsController(Resource):
    @expose()
    def _lookup(self, name, *remainder):
        rest = [segment for segment in remainder if segment != ""]
        if not rest and _split(name) is not None and _split(name)[0] == "runs":
            return RunsExportController(self._settings, _split(name)[1]), []
        if name == "runs" and len(rest) == 2:
            found = _split(rest[1])
            if found is not None and found[0] != "runs":
                return RunExportController(self._settings, rest[0], *found), []
        raise exc.HTTPNotFound()

    def _route_samples(self):
        formats = export_service.FORMATS
        return [*((f"runs.{fmt}",) for fmt in formats["runs"]),
                *(("runs", "{}", f"{kind}.{fmt}") for kind in formats if kind != "runs"
                  for fmt in formats[kind])]


class _ExportBase(Resource):
    ALLOWED: tuple[str, ...] = ()

    def _query(self) -> dict[str, str]:
        """The query parameters this export takes, each at most once; others are a 400."""
        out: dict[str, str] = {}
        for key, value in self._params().items():
            if key not in self.ALLOWED:
                allowed = ", ".join(self.ALLOWED) or "none"
                raise InvalidRequest(f"unknown parameter {key!r}; this export takes: "
                                     f"{allowed}")
            if key in out:
                raise InvalidRequest(f"{key} is given more than once")
            out[key] = value
        return out

    @staticmethod
    def _respond(build) -> Response:
        """Open the export's own session, build the export with it (a 4xx comes out here,
        before any byte is sent), produce its first bytes, and hand the rest and the session
        to the response body. Producing the first bytes here runs the export's first query:
        a failure there is still an error response, JSON with its 5xx (ErrorHook), where
        from the body it would be the server's HTML 500 page."""
        session = request.session_factory()
        chunks = None
        try:
            export = build(session)
            chunks = export.chunks()
            first = _first_chunk(chunks)
        except BaseException:
            try:
                if chunks is not None:
                    chunks.close()
            finally:
                session.close()
            raise
        resp = StreamedResponse(status=200, content_type=None, charset=None)
        resp.headers["Content-Type"] = export.content_type
        resp.headers["Content-Disposition"] = content_disposition(export.filename)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        resp.app_iter = _Body(chunks, session, first)
        resp.content_length = None  # unknown: sent chunked
        return resp


class RunsExportController(_ExportBase):
    ALLOWED = filters.QUERY_FILTERS + filters.QUERY_BOUNDS

    def __init__(self, settings, fmt: str):
        super().__init__(settings)
        self._fmt = fmt

    @expose()
    def get_all(self, **_):
        conditions = filters.parse_query(self._params())
        return self._respond(lambda db: export_service.export_runs(db, self._fmt, conditions))


class RunExportController(_ExportBase):
    def __init__(self, settings, run_name: str, kind: str, fmt: str):
        super().__init__(settings)
        self._run_name, self._kind, self._fmt = run_name, kind, fmt
        self.ALLOWED = ("gzip", "layout") if kind == "stackviz" else ("status",)

    @expose()
    def get_all(self, **_):
        query = self._query()
        name, fmt, settings = self._run_name, self._fmt, self._settings
        if self._kind == "stackviz":
            compress = parse_bool("gzip", query["gzip"]) if "gzip" in query \
                else False
            layout = query.get("layout", "current")
            if layout not in stackviz_service.LAYOUTS:
                raise InvalidRequest("layout must be one of "
                                     + ", ".join(stackviz_service.LAYOUTS))
            store = request.blobs
            return self._respond(lambda db: stackviz_service.export_stackviz(
                db, store, name, compress=compress, layout=layout))
        status = query.get("status")
        if self._kind == "jobs":
            if status is not None and status not in JOB_STATUS_VALUES:
                raise InvalidRequest("status must be one of " + ", ".join(JOB_STATUS_VALUES))
            return self._respond(lambda db: export_service.export_jobs(
                db, settings, name, fmt, status))
        status = parse_test_status(status)
        return self._respond(lambda db: export_service.export_tests(
            db, settings, name, fmt, status))


# ---- the streamed body ----------------------------------------------------------------------

def _first_chunk(chunks) -> bytes:
    """The first non-empty chunk (b"" for an empty export): until then the server has sent
    nothing (PEP 3333 sends the headers with the first non-empty chunk)."""
    for chunk in chunks:
        if chunk:
            return chunk
    return b""


class _Body:
    """WSGI body: the export's first chunk (produced by the handler), then the rest;
    close() ends them and closes the export's session, whether or not they were read to the
    end.

    A failure after the first chunk raises out of the iteration: the server then drops the
    connection without ending the body (gunicorn: no terminating zero-length chunk), so the
    client sees a broken download, never a complete-looking file (docs/exports.md)."""

    def __init__(self, chunks, session, first: bytes = b""):
        self._chunks = chunks
        self._session = session
        self._first = first

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except Exception:
            log.exception("export failed after its response started; the connection is "
                          "cut, the body left unterminated")
            raise

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._session.close()
