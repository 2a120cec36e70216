"""The OpenAPI 3.1 description of the API, generated from the route table (paddles/routes.py),
the components below and the field tables the validators use (paddles/schemas/)."""
from __future__ import annotations

import copy
from functools import lru_cache

from . import __version__, routes
from .models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from .schemas.common import json_schema
from .schemas.runs import JOB_FIELDS

# The words of operations and parameters are the route table's (paddles/routes.py); these
# names stay for the code that used them from here.
_ERROR = routes.ERROR
_ok, _ref, _list, _q, _p = routes.ok, routes.ref, routes.list_of, routes.query, routes.path_param
_body, _op = routes.json_body, routes.op
PAGING, FIELDS, SINCE = routes.PAGING, routes.FIELDS, routes.SINCE
RUN, JOB, NODE, FILTER_VALUE, DAY = routes.RUN, routes.JOB, routes.NODE, routes.FILTER_VALUE, \
    routes.DAY
RUN_FILTERS = routes.RUN_FILTERS


def _paths() -> dict:
    """Every documented route's operations, in table order (copies: the document adds to
    them)."""
    return {route.template: copy.deepcopy(dict(route.operations))
            for route in routes.TABLE if route.documented}


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
    job_write = json_schema(JOB_FIELDS)
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
CONDITIONAL_GETS = tuple(route.template for route in routes.TABLE if route.conditional)


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


@lru_cache(maxsize=1)
def document() -> dict:
    paths = _paths()
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
