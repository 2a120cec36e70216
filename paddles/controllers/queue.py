"""/queue/: paddles-as-queue (spec 11)."""
from __future__ import annotations

from pecan import expose

from .. import openapi, schemas, serializers
from ..openapi import _list, _ok, _op, _q, _ref
from ..services import queue as queue_service
from .base import Resource


class QueueController(Resource):
    def __init__(self, settings):
        super().__init__(settings)
        self.pop_queue = PopQueueController(settings)
        self.stats = QueueStatsController(settings)
        self.queued_jobs = QueuedJobsController(settings)

    @expose("json")
    def get_all(self, **_):
        params = self._params()
        queues = queue_service.list_queues(self._db(),
                                           machine_type=params.get("machine_type") or None,
                                           paused_by=params.get("paused_by") or None)
        return [serializers.queue_detail(queue) for queue in queues]

    @expose("json")
    def post(self, **_):
        name, fields = schemas.parse_queue_body(self._body())
        queue_service.create_queue(self._db(), name, fields)
        return {}

    @expose("json")
    def put(self, **_):
        name, fields = schemas.parse_queue_body(self._body())
        queue_service.update_queue(self._db(), name, fields)
        return {}


class QueueReader(Resource):
    """GET or POST; parameters from the query string and a JSON-object body alike."""

    @expose("json")
    def get_all(self, **_):
        return self.answer(schemas.parse_queue_params(self._params(), self._body()))

    post = get_all

    def answer(self, params: dict):
        raise NotImplementedError


class PopQueueController(QueueReader):
    def answer(self, params):
        found = queue_service.peek_queue(self._db(), params["queue"])
        if found is None:
            return None  # rendered as the JSON literal `null`, status 200
        return serializers.job_detail(found, self._settings)


class QueueStatsController(QueueReader):
    def answer(self, params):
        queue, count = queue_service.queue_stats(self._db(), params["queue"])
        return serializers.queue_stats(queue, count)


class QueuedJobsController(QueueReader):
    def answer(self, params):
        rows = queue_service.list_queued_jobs(self._db(), params["queue"],
                                              user=params.get("user"),
                                              run_name=params.get("run_name"))
        return serializers.job_list(rows, self._settings)


def _openapi_paths() -> dict:
    time = {"type": ["string", "null"], "example": "2024-01-15 20:00:03"}
    queue = {"type": "object", "properties": {
        "queue": {"type": "string"}, "paused": {"type": "boolean"},
        "paused_by": {"type": ["string", "null"]}, "paused_since": time, "paused_until": time}}
    body = schemas.json_schema(schemas.QUEUE_FIELDS)
    body = {**body, "required": ["queue"],
            "properties": {**body["properties"], "queue": {"type": "string", "maxLength": 32}}}
    params = [_q("queue", "queue name (also read from a JSON-object body)")]
    reads = {
        "/queue/pop_queue/": ("best queued job of the queue, not claimed; null when none",
                              _ok({"oneOf": [_ref("Job"), {"type": "null"}]}), (400, 503)),
        "/queue/stats/": ("queued job count and pause state",
                          _ok({"type": "object"}), (400,)),
        "/queue/queued_jobs/": ("queued jobs of the queue, best first",
                                _ok(_list("Job")), (400,)),
    }
    paths = {
        "/queue/": {
            "get": _op("queues", params=[_q("machine_type", "queue name; a|b means multi"),
                                         _q("paused_by", "exact")],
                       ok=_ok({"type": "array", "items": queue}), errors=()),
            "post": _op("create a queue", body=body, errors=(400,)),
            "put": _op("update, pause (pause_duration > 0) or unpause a queue", body=body,
                       errors=(400, 403)),
        },
    }
    for path, (summary, ok, errors) in reads.items():
        extra = [_q("user", "job user"), _q("run_name", "run name")] \
            if path == "/queue/queued_jobs/" else []
        paths[path] = {method: _op(summary, params=params + extra, ok=ok, errors=errors)
                       for method in ("get", "post")}
    return paths


openapi.EXTRA_PATHS.append(_openapi_paths)
openapi.document.cache_clear()
