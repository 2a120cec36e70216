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

from .. import filters, openapi, schemas
from ..errors import InvalidRequest
from ..models.artifacts import TEST_STATUS_VALUES
from ..models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from ..openapi import RUN, _op, _q
from ..services import exports as export_service
from ..services import stackviz as stackviz_service
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
        before any byte is sent), and hand both to the response body."""
        session = request.session_factory()
        try:
            export = build(session)
        except BaseException:
            session.close()
            raise
        resp = StreamedResponse(status=200, content_type=None, charset=None)
        resp.headers["Content-Type"] = export.content_type
        resp.headers["Content-Disposition"] = export_service.content_disposition(
            export.filename)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        resp.app_iter = _Body(export.chunks(), session)
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
            compress = schemas.parse_bool("gzip", query["gzip"]) if "gzip" in query \
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
        status = schemas.parse_test_status(status)
        return self._respond(lambda db: export_service.export_tests(
            db, settings, name, fmt, status))


# ---- the streamed body ----------------------------------------------------------------------

class _Body:
    """WSGI body: the export's chunks; close() ends them and closes the export's session,
    whether or not they were read to the end."""

    def __init__(self, chunks, session):
        self._chunks = chunks
        self._session = session

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except Exception:
            log.exception("export failed after its response started; the body is cut short")
            raise

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._session.close()


# ---- OpenAPI --------------------------------------------------------------------------------

_MEDIA = {"csv": "text/csv", "json": "application/json", "jsonl": "application/jsonl",
          "junit.xml": "application/xml", "subunit": "application/vnd.subunit.v2",
          "tar.gz": "application/gzip"}


def _download(fmt: str) -> dict:
    # JSON exports are one array of row objects; the other formats are opaque bytes
    schema = {"type": "array", "items": {"type": "object"}} if fmt == "json" \
        else {"type": "string", "format": "binary"}
    return {"description": "the export, streamed, as an attachment (Content-Disposition)",
            "content": {_MEDIA[fmt]: {"schema": schema}}}


def _openapi_paths() -> dict:
    run_filters = [
        _q("branch", "runs of this branch"), _q("suite", "runs of this suite"),
        _q("machine_type", "runs on this machine type"),
        _q("status", "runs with this status", {"enum": list(RUN_STATUS_VALUES)}),
        _q("user", "runs of this user"),
        _q("sha1", "runs having a job whose sha1 starts with this"),
        _q("flavor", "runs having a job of this flavor"),
        _q("since", "scheduled from this day (YYYY-MM-DD, today, yesterday; midnight UTC) "
                    "or ISO 8601 time"),
        _q("until", "scheduled through this day (to its end) or up to this ISO 8601 time")]
    job_status = _q("status", "only jobs with this status", {"enum": list(JOB_STATUS_VALUES)})
    test_status = _q("status", "only test cases with this status",
                     {"enum": list(TEST_STATUS_VALUES)})
    gzip = _q("gzip", "gzip the data files inside (stackviz-export --gzip)",
              {"type": "boolean"})
    layout = _q("layout", "current: what today's stackviz front end reads (config.json "
                          "with datasets and artifacts; the default); legacy: the pre-2016 "
                          "layout ({\"tempest\": [...]}, tree files)",
                {"enum": list(stackviz_service.LAYOUTS)})
    out: dict[str, dict] = {}
    for fmt in export_service.FORMATS["runs"]:
        op = _op(f"every run matching the filters, newest scheduled first, as {fmt}",
                 params=run_filters, ok=_download(fmt), errors=(400,))
        out[f"/exports/runs.{fmt}"] = {"get": op}
    for kind, what, params in (("jobs", "the run's jobs in job_id order", [job_status]),
                               ("tests", "the run's parsed test cases", [test_status]),
                               ("stackviz", "a stackviz dataset of the run's test cases "
                                            "(and dstat logs)", [gzip, layout])):
        for fmt in export_service.FORMATS[kind]:
            op = _op(f"{what}, as {fmt}", params=[RUN, *params], ok=_download(fmt),
                     errors=(400, 404))
            out[f"/exports/runs/{{name}}/{kind}.{fmt}"] = {"get": op}
    return out


openapi.EXTRA_PATHS.append(_openapi_paths)
openapi.document.cache_clear()
