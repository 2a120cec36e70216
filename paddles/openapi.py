"""The OpenAPI 3.1 description of the API, built from the same field tables the validators use."""
from __future__ import annotations

from functools import lru_cache

from . import __version__, schemas
from .models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


def _ok(schema: dict | None = None, description: str = "success") -> dict:
    schema = schema if schema is not None else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict:
    return {"type": "array", "items": _ref(name)}


def _q(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _p(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, *, params=(), body=None, ok=None, errors=(400, 404)) -> dict:
    op = {"summary": summary, "parameters": list(params),
          "responses": {"200": ok or _ok(), **{str(c): _ERROR for c in errors}}}
    if params or body is not None:  # a URL with NUL or bad UTF-8 (hooks.url_problem)
        op["responses"].setdefault("400", _ERROR)
    if body is not None:
        op["requestBody"] = _body(body)
        op["responses"]["413"] = _ERROR  # over the route's body limit (limits.py)
    return op


PAGING = [_q("count", "page size", {"type": "integer", "minimum": 0}),
          _q("page", "1-based page", {"type": "integer", "minimum": 0})]
FIELDS = _q("fields", "comma-separated keys to keep in each element")
SINCE = _q("since", "YYYY-MM-DD, today or yesterday: runs scheduled from that midnight UTC")
RUN = _p("name", "run name")
JOB = _p("job_id", "job id")
NODE = _p("node", "node name, usually an FQDN")
FILTER_VALUE = _p("value", "value the filter matches")
DAY = {"type": "string", "description": "YYYY-MM-DD, today or yesterday"}

RUN_FILTERS = ("branch", "suite", "machine_type", "status", "user", "sha1", "flavors", "date")


def _paths() -> dict:
    paths: dict[str, dict] = {
        "/": {"get": _op("liveness", errors=())},
        "/runs/": {
            "get": _op("latest runs, newest posted first", params=[*PAGING, FIELDS],
                       ok=_ok(_list("RunSummary")), errors=(400,)),
            "post": _op("create an empty run", body={"type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string", "maxLength": 512}}},
                        errors=(400,)),
        },
        "/runs/queued/": {"get": _op("runs having a queued job, scheduled ascending",
                                     ok=_ok(_list("RunSummary")), errors=())},
        "/runs/date/from/{start}/to/{end}/": {"get": _op(
            "runs scheduled in [start, end + 1 day), newest first",
            params=[{**_p("start", "first day"), "schema": DAY},
                    {**_p("end", "last day"), "schema": DAY}],
            ok=_ok(_list("RunSummary")), errors=(400,))},
        "/runs/{name}/": {
            "get": _op("one run with its jobs in job_id order", params=[RUN],
                       ok=_ok(_ref("RunDetail")), errors=(404,)),
            "delete": _op("delete a run and its jobs", params=[RUN], errors=(404,)),
        },
        "/runs/{name}/jobs/": {
            "get": _op("jobs of a run, newest posted first",
                       params=[RUN, _q("status", "exact job status"), FIELDS],
                       ok=_ok(_list("Job")), errors=(400, 404)),
            "post": _op("report a job (creates the run when missing)", params=[RUN],
                        body=_ref("JobWrite"), ok=_ok({"type": "object", "properties": {
                            "job_id": {"type": "string"}}}), errors=(400,)),
        },
        "/runs/{name}/jobs/{job_id}/": {
            "get": _op("one job", params=[RUN, JOB], ok=_ok(_ref("Job")), errors=(404,)),
            "put": _op("update a job (no status keys: heartbeat)", params=[RUN, JOB],
                       body=_ref("JobWrite")),
            "delete": _op("delete a job", params=[RUN, JOB], errors=(404,)),
        },
        "/jobs/": {"get": _op("recent jobs across runs", params=[
            *PAGING, _q("description", "substring"), _q("status", "exact"),
            _q("sha1", "exact"), _q("branch", "exact"), _q("user", "exact"),
            _q("posted_after", "day"), _q("posted_before", "day")],
            ok=_ok(_list("Job")), errors=(400,))},
    }
    for name in RUN_FILTERS:
        paths[f"/runs/{name}/"] = {"get": _op(
            f"distinct {name} values, sorted", ok=_ok({"type": "array",
                                                       "items": {"type": "string"}}),
            errors=())}
        paths[f"/runs/{name}/{{value}}/"] = {"get": _op(
            f"runs filtered by {name}, scheduled descending; further "
            "<filter>/<value>/ pairs may follow", params=[FILTER_VALUE, *PAGING, SINCE],
            ok=_ok(_list("RunSummary")), errors=(400,))}
    for code in ("invalid", "forbidden", "not_found", "unavailable"):
        paths[f"/errors/{code}/"] = {method: _op(
            f"answers the '{code}' error (any method)",
            params=[_q("error_message", "message to return")],
            ok=_ok(), errors=(400, 403, 404, 503)) for method in ("get", "post", "put", "delete")}
    paths["/openapi.json"] = {"get": _op("this OpenAPI 3.1 document", errors=())}
    return paths


def _components() -> dict:
    results = {"type": "object", "properties": {
        **{k: {"type": "integer"} for k in ("queued", "pass", "running", "waiting", "fail",
                                            "dead", "unknown", "total")},
        "sha1": {"type": ["string", "null"]}, "flavor": {"type": ["string", "null"]}}}
    time = {"type": ["string", "null"], "example": "2024-01-15 20:00:03"}
    run_summary = {"type": "object", "properties": {
        "name": {"type": "string"}, "href": {"type": "array", "items": {"type": "string"}},
        "user": {"type": "string"}, "status": {"enum": list(RUN_STATUS_VALUES)},
        "results": results, "jobs_count": {"type": "integer"}, "posted": time,
        "scheduled": time, "started": time, "updated": time,
        "branch": {"type": ["string", "null"]}, "suite": {"type": ["string", "null"]},
        "machine_type": {"type": ["string", "null"]}, "sha1": {"type": ["string", "null"]},
        "priority": {"type": ["integer", "null"]}, "flavor": {"type": ["string", "null"]}}}
    job_write = schemas.json_schema(schemas.JOB_FIELDS)
    job_write["properties"]["updated"] = {"type": ["string", "null"],
                                          "example": "2024-01-15 20:00:03"}
    job = {"type": "object", "properties": {
        "log_href": {"type": "string"}, **job_write["properties"],
        "status": {"enum": [*JOB_STATUS_VALUES, None]}, "job_id": {"type": "string"},
        "posted": time, "started": time, "updated": time}}
    return {"schemas": {
        "Error": {"type": "object", "required": ["message"],
                  "properties": {"message": {"type": "string"}}},
        "RunSummary": run_summary,
        "RunDetail": {"allOf": [run_summary, {"type": "object", "properties": {
            "jobs": _list("Job")}}]},
        "Job": job,
        "JobWrite": job_write,
    }}


# GETs answered from the per-process response cache, with ETags (paddles/cache.py)
CONDITIONAL_GETS = ("/runs/{name}/", "/runs/{name}/jobs/")


def _add_conditional_gets(paths: dict) -> None:
    for path in CONDITIONAL_GETS:
        op = paths[path]["get"]
        op["parameters"] = [*op["parameters"], {
            "name": "If-None-Match", "in": "header", "required": False,
            "description": "ETags the client holds (weak comparison); `*` matches any",
            "schema": {"type": "string"}}, {
            "name": "Accept-Encoding", "in": "header", "required": False,
            "description": "with `gzip`, a body of 1400 bytes or more comes gzipped "
                           "(`Content-Encoding: gzip`)",
            "schema": {"type": "string"}}]
        etag = {"ETag": {"description": "weak tag of this state of the run and its jobs, "
                                        "the same from every server process and for "
                                        "either coding",
                         "schema": {"type": "string"}},
                "Vary": {"description": "`Accept-Encoding`", "schema": {"type": "string"}}}
        coding = {"Content-Encoding": {"description": "`gzip` when the client takes it",
                                       "schema": {"type": "string"}}}
        op["responses"]["200"] = {**op["responses"]["200"], "headers": {**etag, **coding}}
        op["responses"]["304"] = {"description": "not modified: the If-None-Match tag is "
                                                 "current; no body", "headers": etag}


EXTRA_PATHS: list[callable] = []  # other route families register their path builders here


@lru_cache(maxsize=1)
def document() -> dict:
    from .controllers import root  # noqa: F401  (importing the tree registers EXTRA_PATHS)

    paths = _paths()
    for extra in EXTRA_PATHS:
        paths.update(extra())
    _add_conditional_gets(paths)
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "paddles", "version": __version__,
                 "description": "Test results server, wire-compatible with Ceph's paddles. "
                                "Every route is served with or without its trailing slash; "
                                "request bodies are JSON whatever the Content-Type."},
        "paths": paths,
        "components": _components(),
    }
    from .auth import describe_security  # securitySchemes, 401/403, each route's role
    describe_security(doc)
    return doc
