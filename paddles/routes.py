"""The route table: every route template once, with what each layer needs to know of it.

Pecan routes a request to its handler (paddles/controllers/); everything around Pecan
names the request by its route template (`/runs/{name}/jobs/{job_id}/`), found once per
path by `route_template`, and reads the rest from the table:

- auth (paddles/auth.py): the role each method needs, from RULES below;
- body limits (paddles/limits.py): `body_limit`, a name of limits.DEFAULT_SIZES, or
  "artifact" (artifacts_max_size);
- WireMiddleware (paddles/middleware.py): `streamed`, uploads whose body is spooled to disk;
- replica routing (hooks.reads_from_replica): `replica`, GETs the read replica may serve;
- metrics and the access log: the template is the route label;
- the OpenAPI document (paddles/openapi.py): `operations`, and `conditional` (GETs answered
  from the response cache with ETags).

Templates are those of the OpenAPI document, with a trailing slash (every route is served
with or without one); `{path}` spans several segments. One route is not documented: the
chains of run filters (`/runs/branch/main/suite/rados/...`), matched by its own pattern.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from functools import lru_cache
from collections.abc import Mapping

from . import filters
from .models.artifacts import ARTIFACT_KINDS, TEST_STATUS_VALUES
from .models.events import EVENT_TYPES
from .models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from .schemas.common import json_schema
from .schemas.events import (DEFAULT_EVENT_PAGE, DELIVERY_STATUSES, EVENT_SCHEMA, MAX_EVENT_PAGE,
                             MESSAGE_SCHEMA, NEW_SUBSCRIPTION_SCHEMA, SUBSCRIPTION_SCHEMA,
                             VERBOSITIES)
from .schemas.nodes import LOCK_MANY_KEYS, NODE_FIELDS, UNLOCK_MANY_KEYS
from .schemas.queue import QUEUE_FIELDS
from .services.compare import CATEGORIES as COMPARE_CATEGORIES
from .services.exports import FORMATS as EXPORT_FORMATS
from .services.stackviz import LAYOUTS as STACKVIZ_LAYOUTS
from .services.tokens import ADMIN, LOCK, READ, WRITE

UNMATCHED = "unmatched"  # the template of a path no route matches
RUN_FILTER_CHAIN = "/runs/{filter}/{value}/.../"


@dataclasses.dataclass(frozen=True, eq=False)
class Route:
    template: str
    operations: Mapping[str, dict]  # lower-case method -> its OpenAPI operation
    body_limit: str | None = None  # None: max_body_size
    replica: bool = False  # GET and HEAD may be served from the read replica
    streamed: bool = False  # PUT and POST bodies go to disk as they come (artifacts)
    conditional: bool = False  # GET from the response cache, with ETags (paddles/cache.py)
    pattern: str | None = None  # an undocumented route's own regex (else: from template)

    @property
    def documented(self) -> bool:
        return self.pattern is None


# ---- access policy ------------------------------------------------------------------------

PUBLIC = "public"
ANY = frozenset()  # a rule for every method
READS = frozenset({"GET", "HEAD"})
WRITES = frozenset({"POST", "PUT"})


@dataclasses.dataclass(frozen=True)
class Rule:
    methods: frozenset[str]  # ANY: all methods
    routes: tuple[str, ...]  # route templates, fnmatch globs
    role: str  # PUBLIC or a role of services/tokens.py


# First match wins. A method or route no rule names needs `admin` (fail closed).
RULES: tuple[Rule, ...] = (
    # liveness and probes, the API description, the upstream error pseudo-routes
    Rule(ANY, ("/", "/health/", "/ready/", "/metrics/", "/openapi.json", "/errors/*"), PUBLIC),
    # webhook subscriptions: their URLs and deliveries may carry credentials
    Rule(ANY, ("/subscriptions/*",), ADMIN),
    # deletes of every kind: runs, jobs, nodes, artifacts
    Rule(frozenset({"DELETE"}), ("*",), ADMIN),
    # nodes: inventory changes, lock and unlock
    Rule(WRITES, ("/nodes/*",), LOCK),
    # queue peeks and counters that may carry their parameters in a POST body
    Rule(READS | {"POST"}, ("/queue/pop_queue/", "/queue/stats/", "/queue/queued_jobs/"), READ),
    # every other read
    Rule(READS, ("*",), READ),
    # reporting: runs, jobs, artifacts, message events, queues (not unknown routes)
    Rule(WRITES, ("/runs/*", "/events/", "/queue/"), WRITE),
)


def rule_for(method: str, route: str) -> Rule | None:
    for rule in RULES:
        if (not rule.methods or method in rule.methods) \
                and any(fnmatch.fnmatchcase(route, glob) for glob in rule.routes):
            return rule
    return None


@lru_cache(maxsize=1024)
def required_role(method: str, route: str) -> str:
    """PUBLIC or the role a request to this route template needs."""
    rule = rule_for(method, route)
    return ADMIN if rule is None else rule.role


# ---- the words of an operation (OpenAPI 3.1) ----------------------------------------------

ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


def ok(schema: dict | None = None, description: str = "success") -> dict:
    schema = schema if schema is not None else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(name: str) -> dict:
    return {"type": "array", "items": ref(name)}


def query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def op(summary: str, *, params=(), body=None, ok=None, errors=(400, 404)) -> dict:
    operation = {"summary": summary, "parameters": list(params),
                 "responses": {"200": ok or _ok(), **{str(c): ERROR for c in errors}}}
    if params or body is not None:  # a URL with NUL or bad UTF-8 (middleware.url_problem)
        operation["responses"].setdefault("400", ERROR)
    if body is not None:
        operation["requestBody"] = json_body(body)
        operation["responses"]["413"] = ERROR  # over the route's body limit (limits.py)
    return operation


_ok = ok  # `op` takes a parameter named ok

PAGING = [query("count", "page size", {"type": "integer", "minimum": 0}),
          query("page", "1-based page", {"type": "integer", "minimum": 0})]
FIELDS = query("fields", "comma-separated keys to keep in each element")
SINCE = query("since", "YYYY-MM-DD, today or yesterday: runs scheduled from that midnight UTC")
RUN = path_param("name", "run name")
JOB = path_param("job_id", "job id")
NODE = path_param("node", "node name, usually an FQDN")
FILTER_VALUE = path_param("value", "value the filter matches")
DAY = {"type": "string", "description": "YYYY-MM-DD, today or yesterday"}
TIME = {"type": ["string", "null"], "example": "2024-01-15 20:00:03"}

RUN_FILTERS = tuple(filters.TOP_LEVEL)  # as the first segment after /runs/ spells them


# ---- runs and jobs ------------------------------------------------------------------------

def _run_routes() -> list[Route]:
    run_summaries = ok(list_of("RunSummary"))
    routes = [
        Route("/", {"get": op("liveness", errors=())}),
        Route("/runs/", {
            "get": op("latest runs, newest posted first", params=[*PAGING, FIELDS],
                      ok=run_summaries, errors=(400,)),
            "post": op("create an empty run", body={"type": "object", "required": ["name"],
                       "properties": {"name": {"type": "string", "maxLength": 512}}},
                       errors=(400,)),
        }, body_limit="job", replica=True),
        Route("/runs/queued/", {"get": op("runs having a queued job, scheduled ascending",
                                          ok=ok(list_of("RunSummary")), errors=())},
              replica=True),
        Route("/runs/date/from/{start}/to/{end}/", {"get": op(
            "runs scheduled in [start, end + 1 day), newest first",
            params=[{**path_param("start", "first day"), "schema": DAY},
                    {**path_param("end", "last day"), "schema": DAY}],
            ok=ok(list_of("RunSummary")), errors=(400,))}, replica=True),
        Route("/runs/{name}/", {
            "get": op("one run with its jobs in job_id order", params=[RUN],
                      ok=ok(ref("RunDetail")), errors=(404,)),
            "delete": op("delete a run and its jobs", params=[RUN], errors=(404,)),
        }, replica=True, conditional=True),
        Route("/runs/{name}/jobs/", {
            "get": op("jobs of a run, newest posted first",
                      params=[RUN, query("status", "exact job status"), FIELDS],
                      ok=ok(list_of("Job")), errors=(400, 404)),
            "post": op("report a job (creates the run when missing)", params=[RUN],
                       body=ref("JobWrite"), ok=ok({"type": "object", "properties": {
                           "job_id": {"type": "string"}}}), errors=(400,)),
        }, body_limit="job", conditional=True),
        Route("/runs/{name}/jobs/{job_id}/", {
            "get": op("one job", params=[RUN, JOB], ok=ok(ref("Job")), errors=(404,)),
            "put": op("update a job (no status keys: heartbeat)", params=[RUN, JOB],
                      body=ref("JobWrite")),
            "delete": op("delete a job", params=[RUN, JOB], errors=(404,)),
        }, body_limit="job"),
        Route("/jobs/", {"get": op("recent jobs across runs", params=[
            *PAGING, query("description", "substring"), query("status", "exact"),
            query("sha1", "exact"), query("branch", "exact"), query("user", "exact"),
            query("posted_after", "day"), query("posted_before", "day")],
            ok=ok(list_of("Job")), errors=(400,))}, replica=True),
    ]
    for name in RUN_FILTERS:
        routes.append(Route(f"/runs/{name}/", {"get": op(
            f"distinct {name} values, sorted", ok=ok({"type": "array",
                                                      "items": {"type": "string"}}),
            errors=())}, replica=True))
        routes.append(Route(f"/runs/{name}/{{value}}/", {"get": op(
            f"runs filtered by {name}, scheduled descending; further "
            "<filter>/<value>/ pairs may follow", params=[FILTER_VALUE, *PAGING, SINCE],
            ok=ok(list_of("RunSummary")), errors=(400,))}, replica=True))
    for code in ("invalid", "forbidden", "not_found", "unavailable"):
        routes.append(Route(f"/errors/{code}/", {method: op(
            f"answers the '{code}' error (any method)",
            params=[query("error_message", "message to return")],
            ok=ok(), errors=(400, 403, 404, 503)) for method in ("get", "post", "put", "delete")}))
    routes.append(Route("/openapi.json", {"get": op("this OpenAPI 3.1 document", errors=())}))
    return routes


# ---- events and webhook subscriptions -----------------------------------------------------

def _event_routes() -> list[Route]:
    event = EVENT_SCHEMA
    when = {"type": ["string", "null"]}
    sub = {"type": "object", "properties": {
        "id": {"type": "integer"}, "href": {"type": "string"}, "url": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "types": {"type": "array", "items": {"type": "string"}},
        "criteria": {"type": "object"}, "verbosity": {"enum": list(VERBOSITIES)},
        "compare": {"type": "boolean"}, "enabled": {"type": "boolean"},
        "secret": {"type": "string", "description": "in the answer to the POST only"},
        "disabled_reason": {"type": ["string", "null"]}, "created": when, "updated": when,
        "failures": {"type": "integer"}, "last_event_id": {"type": "integer"},
        "failing_since": when, "last_success": when}}
    delivery = {"type": "object", "properties": {
        "id": {"type": "integer"}, "uuid": {"type": "string"},
        "event_id": {"type": "integer"}, "event_type": {"type": "string"},
        "status": {"enum": list(DELIVERY_STATUSES)},
        "attempts": {"type": "integer"}, "next_attempt": {"type": ["string", "null"]},
        "response_status": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]},
        "log": {"type": "array", "items": {"type": "object"}}}}
    broker = {"type": "object", "properties": {
        "name": {"type": "string", "description": "the broker URL, password masked"},
        "protocol": {"enum": ["amqp", "amqps", "mqtt", "mqtts", "nats"]},
        "configured": {"type": "boolean",
                       "description": "listed in this server's event_brokers"},
        "last_event_id": {"type": "integer"}, "lag": {"type": "integer"},
        "published": {"type": "integer"}, "failures": {"type": "integer",
                                                       "description": "in a row"},
        "failures_total": {"type": "integer"}, "failing_since": when,
        "last_error": {"type": ["string", "null"]}, "last_success": when,
        "next_attempt": when, "held_by": {"type": ["string", "null"],
                                          "description": "the dispatcher publishing now"}}}
    filters = [
        query("since", "replay events after this id (default 0; the stream: from now)",
              {"type": "integer", "minimum": 0}),
        query("type", "event type or glob (job.*); repeat or comma-separate for several"),
        query("run", "only this run's events"), query("job", "only this job id's events")]
    sub_id = path_param("id", "subscription id")

    def created(summary, schema, body=None):
        operation = op(summary, body=body, errors=(400,))
        operation["responses"]["201"] = operation["responses"].pop("200")
        operation["responses"]["201"]["content"]["application/json"]["schema"] = schema
        return operation

    no_content = op("delete the subscription and its delivery log", params=[sub_id],
                    errors=(404,))
    no_content["responses"]["204"] = {"description": "deleted"}
    del no_content["responses"]["200"]
    stream = op("Server-Sent Events: `id:` is the event id, `data:` the event as JSON; "
                "resumes after the Last-Event-ID header; keep-alive comments; the stream "
                "ends after a time limit (the client reconnects)",
                params=[*filters, {"name": "Last-Event-ID", "in": "header", "required": False,
                                   "schema": {"type": "string"}}], errors=(400, 503))
    stream["responses"]["200"] = {"description": "event stream", "content": {
        "text/event-stream": {"schema": {
            "description": "one Server-Sent Event (keep-alive comments carry none)",
            "type": "object", "properties": {
                "id": {"type": "string", "description": "the event id"},
                "event": {"enum": list(EVENT_TYPES)},
                "data": {"type": "string", "description": "the event as JSON"}}}}}}
    return [
        Route("/events/", {
            "get": op("replay events in id order; continue with since=next", params=[
                *filters, query("limit", f"page size (default {DEFAULT_EVENT_PAGE}, "
                                         f"at most {MAX_EVENT_PAGE})",
                                {"type": "integer", "minimum": 1})],
                ok=ok({"type": "object", "properties": {
                    "events": {"type": "array", "items": event},
                    "next": {"type": "integer", "description": "pass as since"},
                    "next_href": {"type": "string"}}}), errors=(400,)),
            "post": created("post a message event", event, body=MESSAGE_SCHEMA),
        }, body_limit="events"),
        Route("/events/stream/", {"get": stream}),
        Route("/events/brokers/", {"get": op(
            "the message brokers of event_brokers (PADDLES_EVENT_BROKERS): each one's cursor "
            "(the last event it confirmed), lag behind the newest event, messages published "
            "and failures", ok=ok({"type": "object", "properties": {
                "latest_event_id": {"type": "integer"},
                "brokers": {"type": "array", "items": broker}}}), errors=())}),
        Route("/subscriptions/", {
            "get": op("webhook subscriptions", ok=ok({"type": "array", "items": sub}),
                      errors=()),
            "post": created("create a webhook subscription (the answer shows the secret)",
                            sub, body=NEW_SUBSCRIPTION_SCHEMA),
        }, body_limit="json"),
        Route("/subscriptions/{id}/", {
            "get": op("one subscription", params=[sub_id], ok=ok(sub), errors=(404,)),
            "put": op("change a subscription (enabled: true re-enables it)",
                      params=[sub_id], body=SUBSCRIPTION_SCHEMA, ok=ok(sub),
                      errors=(400, 404)),
            "delete": no_content,
        }, body_limit="json"),
        Route("/subscriptions/{id}/deliveries/", {"get": op(
            "delivery log, newest first: attempts, status codes, next retry",
            params=[sub_id, query("status", "pending, delivered or failed"),
                    query("before", "page back: deliveries with a smaller id",
                          {"type": "integer"}),
                    query("limit", "page size", {"type": "integer", "minimum": 1})],
            ok=ok({"type": "array", "items": delivery}), errors=(400, 404))}),
    ]


# ---- exports --------------------------------------------------------------------------------

_MEDIA = {"csv": "text/csv", "json": "application/json", "jsonl": "application/jsonl",
          "junit.xml": "application/xml", "subunit": "application/vnd.subunit.v2",
          "tar.gz": "application/gzip"}


def _download(fmt: str) -> dict:
    # JSON exports are one array of row objects; the other formats are opaque bytes
    schema = {"type": "array", "items": {"type": "object"}} if fmt == "json" \
        else {"type": "string", "format": "binary"}
    return {"description": "the export, streamed, as an attachment (Content-Disposition)",
            "content": {_MEDIA[fmt]: {"schema": schema}}}


def _export_routes() -> list[Route]:
    run_filters = [
        query("branch", "runs of this branch"), query("suite", "runs of this suite"),
        query("machine_type", "runs on this machine type"),
        query("status", "runs with this status", {"enum": list(RUN_STATUS_VALUES)}),
        query("user", "runs of this user"),
        query("sha1", "runs having a job whose sha1 starts with this"),
        query("flavor", "runs having a job of this flavor"),
        query("since", "scheduled from this day (YYYY-MM-DD, today, yesterday; midnight UTC) "
                       "or ISO 8601 time"),
        query("until", "scheduled through this day (to its end) or up to this ISO 8601 time")]
    job_status = query("status", "only jobs with this status",
                       {"enum": list(JOB_STATUS_VALUES)})
    test_status = query("status", "only test cases with this status",
                        {"enum": list(TEST_STATUS_VALUES)})
    gzip = query("gzip", "gzip the data files inside (stackviz-export --gzip)",
                 {"type": "boolean"})
    layout = query("layout", "current: what today's stackviz front end reads (config.json "
                             "with datasets and artifacts; the default); legacy: the pre-2016 "
                             "layout ({\"tempest\": [...]}, tree files)",
                   {"enum": list(STACKVIZ_LAYOUTS)})
    routes = []
    for fmt in EXPORT_FORMATS["runs"]:
        routes.append(Route(f"/exports/runs.{fmt}", {"get": op(
            f"every run matching the filters, newest scheduled first, as {fmt}",
            params=run_filters, ok=_download(fmt), errors=(400,))}, replica=True))
    for kind, what, params in (("jobs", "the run's jobs in job_id order", [job_status]),
                               ("tests", "the run's parsed test cases", [test_status]),
                               ("stackviz", "a stackviz dataset of the run's test cases "
                                            "(and dstat logs)", [gzip, layout])):
        for fmt in EXPORT_FORMATS[kind]:
            routes.append(Route(f"/exports/runs/{{name}}/{kind}.{fmt}", {"get": op(
                f"{what}, as {fmt}", params=[RUN, *params], ok=_download(fmt),
                errors=(400, 404))}, replica=True))
    return routes


# ---- probes -------------------------------------------------------------------------------

def _health_routes() -> list[Route]:
    ready = {"type": "object", "properties": {
        "database": {"const": "ok"}, "migrations": {"const": "current"},
        "revision": {"type": ["string", "null"]},
        "replica": {"const": "ok", "description": "only when database_read_url is set"}}}
    metrics_ok = {"description": "Prometheus text exposition format",
                  "content": {"text/plain": {"schema": {"type": "string"}}}}
    return [
        Route("/health/", {"get": op("liveness: the process answers (no database access)",
                                     ok=ok({"type": "object", "properties": {
                                         "status": {"const": "ok"}}}), errors=())}),
        Route("/ready/", {"get": op("readiness: the database answers and its schema is at "
                                    "this code's migration head; 503 with a message naming "
                                    "what is wrong otherwise", ok=ok(ready), errors=(503,))}),
        Route("/metrics/", {"get": op("Prometheus metrics: requests by route and status, "
                                      "latency histograms, database pool, event backlog, "
                                      "webhook failures", ok=metrics_ok, errors=())}),
    ]


# ---- artifacts, test results, timelines ---------------------------------------------------

def _artifact_routes() -> list[Route]:
    artifact = {"type": "object", "properties": {
        "name": {"type": "string"}, "size": {"type": "integer"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "content_type": {"type": "string"}, "content_encoding": {"type": ["string", "null"]},
        "kind": {"enum": list(ARTIFACT_KINDS)}, "created": TIME,
        "parse_status": {"enum": ["ok", "error", None]},
        "parse_error": {"type": ["string", "null"]}, "href": {"type": "string"}}}
    counts = {"type": "object", "properties": {
        k: {"type": "integer"} for k in (*TEST_STATUS_VALUES, "total")}}
    test = {"type": "object", "properties": {
        "job_id": {"type": ["string", "null"]}, "test_id": {"type": "string"},
        "status": {"enum": list(TEST_STATUS_VALUES)}, "start": TIME, "stop": TIME,
        "duration": {"type": ["number", "null"]}, "worker": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "message": {"type": ["string", "null"]}, "details_artifact": {"type": "string"},
        "details": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "attachments by name; only with ?details=true"}}}
    tests = {"type": "object", "properties": {"counts": counts,
                                              "tests": {"type": "array", "items": test}}}
    kind = query("kind", "subunit, junit, dstat, log or binary (default: detected)",
                 {"enum": list(ARTIFACT_KINDS)})
    path = path_param("path", "artifact PATH, may contain '/'")
    raw = {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                             "format": "binary"}}}}
    form = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"file": {"type": "array", "items": {
            "type": "string", "format": "binary"}}}}}}}
    blob = {"description": "the bytes (206 for a Range, 304 for a matching If-None-Match)",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    routes = []
    for prefix, scope_params, where in (
            ("/runs/{name}/jobs/{job_id}", [RUN, JOB], "the job"),
            ("/runs/{name}", [RUN], "the run itself (not its jobs)")):
        post = op(f"upload files as artifacts of {where} (multipart/form-data, one or more)",
                  params=[*scope_params, kind], ok=ok({"type": "array", "items": artifact}),
                  errors=(400, 404, 408, 413, 415, 507))
        post["requestBody"] = form
        post["responses"]["201"] = ok({"type": "array", "items": artifact}, "created")
        put = op(f"upload the raw body as artifact PATH of {where} (gzip: send "
                 "Content-Encoding: gzip); 201 new, 200 replaced or unchanged",
                 params=[*scope_params, path, kind], ok=ok(artifact, "replaced or unchanged"),
                 errors=(400, 404, 408, 413, 507))
        put["requestBody"] = raw
        put["responses"]["201"] = ok(artifact, "created")
        get = op("download, streamed (HEAD too); ETag, If-None-Match, Range; gzip-stored "
                 "artifacts decompressed unless the client accepts gzip",
                 params=[*scope_params, path], ok=blob, errors=(400, 404, 416))
        get["responses"]["206"] = blob
        get["responses"]["304"] = {"description": "not modified"}
        delete = op("delete the artifact (its blob is reclaimed by `paddles purge`)",
                    params=[*scope_params, path], errors=(400, 404))
        delete["responses"] = {"204": {"description": "deleted"},
                               **{k: v for k, v in delete["responses"].items() if k != "200"}}
        routes.append(Route(prefix + "/artifacts/", {
            "get": op(f"artifacts of {where}", params=scope_params,
                      ok=ok({"type": "array", "items": artifact}), errors=(404,)),
            "post": post}, body_limit="artifact", streamed=True))
        routes.append(Route(prefix + "/artifacts/{path}",
                            {"get": get, "put": put, "delete": delete},
                            body_limit="artifact", streamed=True))
    test_params = [query("status", "only test cases with this status",
                         {"enum": list(TEST_STATUS_VALUES)}),
                   query("details", "include attachments (tracebacks, output)"), *PAGING]
    routes.append(Route("/runs/{name}/jobs/{job_id}/tests/", {"get": op(
        "parsed test cases of the job, with per-status counts (of all its test cases)",
        params=[RUN, JOB, *test_params], ok=ok(tests), errors=(400, 404))}, replica=True))
    routes.append(Route("/runs/{name}/tests/", {"get": op(
        "parsed test cases of the whole run, with per-status counts",
        params=[RUN, *test_params], ok=ok(tests), errors=(400, 404))}, replica=True))
    routes.append(Route("/runs/{name}/jobs/{job_id}/timeline/", {"get": op(
        "the job's dstat series, from its latest parsed dstat artifact",
        params=[RUN, JOB], ok=ok({"type": "object", "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array"}},
            "artifact": {"type": "string"}}}), errors=(404,))}, replica=True))
    return routes


# ---- nodes --------------------------------------------------------------------------------

def _node_routes() -> list[Route]:
    """Node objects are inlined: the shared components have no Node schema."""
    node = {"type": "object", "properties": {
        **json_schema(NODE_FIELDS)["properties"],
        "name": {"type": "string"}, "locked": {"type": "boolean"},
        "is_vm": {"type": "boolean"}, "locked_since": TIME,
        "vm_host": {"type": ["object", "null"], "description": "the host's full node"}}}
    lock_record = {"type": "object", "properties": {
        "name": {"type": "string"}, "locked": {"type": "boolean"},
        "locked_by": {"type": ["string", "null"]}, "machine_type": {"type": ["string", "null"]},
        "is_vm": {"type": "boolean"}}}
    body = json_schema(NODE_FIELDS)
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    boolean = {"type": "string", "enum": ["t", "true", "y", "yes", "on", "1",
                                          "f", "false", "n", "no", "off", "0"]}
    return [
        Route("/nodes/", {
            "get": op("nodes ordered by name", params=[
                query("machine_type", "exact, or several joined by |"),
                query("up", "boolean", boolean), query("locked", "boolean", boolean),
                query("locked_by", "exact"), query("os_type", "exact"),
                query("os_version", "exact"), query("arch", "exact"),
                query("count", "at most this many", {"type": "integer"})],
                ok=ok({"type": "array", "items": node}), errors=(400,)),
            "post": op("create a node", body={**body, "required": ["name"], "properties": {
                **body["properties"], "name": {"type": "string", "maxLength": 256}}},
                errors=(400,)),
        }, body_limit="json"),
        Route("/nodes/machine_types/", {"get": op(
            "distinct node machine types, sorted",
            ok=ok({"type": "array", "items": {"type": "string"}}), errors=())}),
        Route("/nodes/job_stats/", {"get": op(
            "per-node status counts of recent jobs, smallest total first",
            params=[query("machine_type", "node machine type"),
                    query("since_days", "days back (default 14)", {"type": "integer"})],
            ok=ok({"type": "object", "additionalProperties": counts}), errors=(400,))},
              replica=True),
        Route("/nodes/lock_many/", {"post": op(
            "lock count free nodes, all or none", body={"type": "object", "required": list(
                LOCK_MANY_KEYS), "properties": {
                "count": {"type": "integer", "minimum": 1},
                "locked_by": {"type": "string"}, "machine_type": {"type": "string"},
                "description": {"type": ["string", "null"]}, "os_type": {"type": "string"},
                "os_version": {"type": "string"}, "arch": {"type": "string"}}},
            ok=ok({"type": "array", "items": node}), errors=(400, 503))}, body_limit="json"),
        Route("/nodes/unlock_many/", {"post": op(
            "unlock named nodes, all or none", body={"type": "object", "required": list(
                UNLOCK_MANY_KEYS), "properties": {
                "names": {"type": "array", "items": {"type": "string"}},
                "locked_by": {"type": "string"}}},
            ok=ok({"type": "array", "items": lock_record}), errors=(400, 403))},
              body_limit="names"),
        Route("/nodes/{node}/", {
            "get": op("one node", params=[NODE], ok=ok(node), errors=(404,)),
            "put": op("update a node (lock checks when locked is given)", params=[NODE],
                      body=body, errors=(400, 403, 404)),
            "delete": op("delete a node (its jobs stay)", params=[NODE], errors=(404,)),
        }, body_limit="json"),
        Route("/nodes/{node}/lock/", {
            method: op("lock, unlock or update one node", params=[NODE], body=body,
                       ok=ok(lock_record), errors=(400, 403, 404))
            for method in ("put", "post")}, body_limit="json"),
        Route("/nodes/{node}/jobs/", {"get": op(
            "jobs that ran on the node, newest first (count=0: all)",
            params=[NODE, *PAGING, query("name", "job name"), query("status", "job status")],
            ok=ok(list_of("Job")), errors=(400, 404))}, replica=True),
        Route("/nodes/{node}/job_stats/", {"get": op(
            "all-time job counts by status", params=[NODE], ok=ok(counts), errors=(404,))},
              replica=True),
    ]


# ---- queues -------------------------------------------------------------------------------

def _queue_routes() -> list[Route]:
    queue = {"type": "object", "properties": {
        "queue": {"type": "string"}, "paused": {"type": "boolean"},
        "paused_by": {"type": ["string", "null"]}, "paused_since": TIME, "paused_until": TIME}}
    body = json_schema(QUEUE_FIELDS)
    body = {**body, "required": ["queue"],
            "properties": {**body["properties"], "queue": {"type": "string", "maxLength": 32}}}
    params = [query("queue", "queue name (also read from a JSON-object body)")]
    reads = {
        "/queue/pop_queue/": ("best queued job of the queue, not claimed; null when none",
                              ok({"oneOf": [ref("Job"), {"type": "null"}]}), (400, 503)),
        "/queue/stats/": ("queued job count and pause state",
                          ok({"type": "object"}), (400,)),
        "/queue/queued_jobs/": ("queued jobs of the queue, best first",
                                ok(list_of("Job")), (400,)),
    }
    routes = [
        Route("/queue/", {
            "get": op("queues", params=[query("machine_type", "queue name; a|b means multi"),
                                        query("paused_by", "exact")],
                      ok=ok({"type": "array", "items": queue}), errors=()),
            "post": op("create a queue", body=body, errors=(400,)),
            "put": op("update, pause (pause_duration > 0) or unpause a queue", body=body,
                      errors=(400, 403)),
        }, body_limit="json"),
    ]
    for path, (summary, answer, errors) in reads.items():
        extra = [query("user", "job user"), query("run_name", "run name")] \
            if path == "/queue/queued_jobs/" else []
        routes.append(Route(path, {
            method: op(summary, params=params + extra, ok=answer, errors=errors)
            for method in ("get", "post")}, body_limit="json"))
    return routes


# ---- comparisons --------------------------------------------------------------------------

def _compare_routes() -> list[Route]:
    entries = {"type": "array", "items": {"type": "object"}}
    categories = {"type": "object", "properties": {c: entries for c in COMPARE_CATEGORIES}}
    counts = {"type": "object", "properties": {
        c: {"type": "integer"} for c in COMPARE_CATEGORIES}}
    return [Route("/runs/{name}/compare/", {"get": op(
        "regressions, fixes, new failures, still failing, added and removed jobs (matched by "
        "description) and test cases (by test_id) against a baseline run; by default the "
        "most recent earlier finished run with the same suite, branch and machine type",
        params=[RUN, query("baseline", "the run to compare with")],
        ok=ok({"type": "object", "properties": {
            "run": {"type": "string"}, "baseline": {"type": ["string", "null"]},
            "counts": {"type": "object", "properties": {"jobs": counts, "tests": counts}},
            "jobs": categories, "tests": categories}}),
        errors=(400, 404))}, replica=True)]


# `/runs/<filter>/<value>/<filter>/<value>/...`: chains of any length, one template. Pecan
# sends every /runs/<reserved>/... to the filter chain controller (controllers/runs.py), so
# whatever of those paths no documented filter route matches is this one, valid or not.
_FILTER_CHAIN = Route(RUN_FILTER_CHAIN, {}, replica=True, pattern=(
    r"/runs/(?:{})/.+".format("|".join(sorted(map(re.escape, filters.RESERVED))))))

# In the order of the OpenAPI document.
TABLE: tuple[Route, ...] = (*_run_routes(), *_event_routes(), *_export_routes(),
                            *_health_routes(), *_artifact_routes(), *_node_routes(),
                            *_queue_routes(), *_compare_routes(), _FILTER_CHAIN)
BY_TEMPLATE: dict[str, Route] = {route.template: route for route in TABLE}
assert len(BY_TEMPLATE) == len(TABLE), "a route template is in the table twice"


# ---- matching -----------------------------------------------------------------------------

def _compile(template: str) -> re.Pattern:
    pattern = ""
    for part in re.split(r"(\{\w+\})", template.rstrip("/")):
        if part == "{path}":
            pattern += r".+"
        elif part.startswith("{"):
            pattern += r"[^/]+"
        else:
            pattern += re.escape(part)
    return re.compile(pattern + "/?")


def _first_segment(path: str) -> str:
    """A path's bucket of routes: its first segment, or `runs/<filters>` for the filter
    routes, which are the only routes of a path whose segment after /runs/ is reserved
    (`/runs/branch/jobs/` is the branch `jobs`, not the jobs of a run named `branch`)."""
    first, _, rest = path[1:].partition("/") if path.startswith("/") else ("", "", "")
    if first == "runs" and rest.partition("/")[0] in filters.RESERVED:
        return "runs/<filters>"
    return first


def _matchers() -> dict[str, tuple[tuple[re.Pattern, str], ...]]:
    """The documented routes by first path segment (`runs`, `nodes`, ...; every template
    starts with a literal one), most specific first: more literal segments, then in table
    order. A lookup tries the few routes of its path's first segment, not all of them."""
    documented = sorted((route for route in TABLE if route.documented),
                        key=lambda r: -sum("{" not in seg
                                           for seg in r.template.strip("/").split("/")))
    by_segment: dict[str, list] = {}
    for route in documented:
        if route.template == "/":
            continue  # route_template answers "" and "/" before any regex
        first = _first_segment(route.template)
        assert first and "{" not in first.partition("/")[0], route.template
        by_segment.setdefault(first, []).append((_compile(route.template), route.template))
    return {first: tuple(matchers) for first, matchers in by_segment.items()}


_MATCHERS = _matchers()
# the routes with a pattern of their own, tried last, on the path without trailing slashes
_PATTERNS = tuple((re.compile(route.pattern), route.template)
                  for route in TABLE if not route.documented)


@lru_cache(maxsize=4096)
def route_template(path: str) -> str:
    """The route a path belongs to, e.g. `/runs/{name}/jobs/{job_id}/`; UNMATCHED if none."""
    if path in ("", "/"):
        return "/"
    if path == "/openapi.json":
        return path
    for regex, template in _MATCHERS.get(_first_segment(path), ()):
        if regex.fullmatch(path):
            return template
    stripped = path.rstrip("/")
    for regex, template in _PATTERNS:
        if regex.fullmatch(stripped):
            return template
    return UNMATCHED


def route_of(path: str) -> Route | None:
    """The table's entry for a request path."""
    return BY_TEMPLATE.get(route_template(path))


def is_streamed(path: str) -> bool:
    """Whether a PUT or POST to this path has its body streamed to disk (artifact uploads)."""
    return route_template(path) in STREAMED_ROUTES


STREAMED_ROUTES = frozenset(r.template for r in TABLE if r.streamed)
REPLICA_ROUTES = frozenset(r.template for r in TABLE if r.replica)
