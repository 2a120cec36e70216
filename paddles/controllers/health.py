"""/health (liveness), /ready (database and schema) and /metrics (Prometheus)."""
from __future__ import annotations

from pecan import expose, request
from webob import Response

from .. import metrics, openapi
from ..services import health
from .base import Resource


class HealthController(Resource):
    """The process answers HTTP; nothing else is looked at (never touches the database)."""

    @expose("json")
    def get_all(self, **_):
        return {"status": "ok"}


class ReadyController(Resource):
    """200 when the database answers and its schema is current, else 503 saying which."""

    @expose("json")
    def get_all(self, **_):
        return health.check_ready(self._db(), getattr(request, "replica_factory", None))


class MetricsController(Resource):
    @expose()
    def get_all(self, **_):
        return Response(body=metrics.render(self._db()), content_type=None, charset=None,
                        headers={"Content-Type": metrics.CONTENT_TYPE})


def _openapi_paths() -> dict:
    from ..openapi import _ok, _op

    ready = {"type": "object", "properties": {
        "database": {"const": "ok"}, "migrations": {"const": "current"},
        "revision": {"type": ["string", "null"]},
        "replica": {"const": "ok", "description": "only when database_read_url is set"}}}
    metrics_ok = {"description": "Prometheus text exposition format",
                  "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/health/": {"get": _op("liveness: the process answers (no database access)",
                                ok=_ok({"type": "object", "properties": {
                                    "status": {"const": "ok"}}}), errors=())},
        "/ready/": {"get": _op("readiness: the database answers and its schema is at this "
                               "code's migration head; 503 with a message naming what is "
                               "wrong otherwise", ok=_ok(ready), errors=(503,))},
        "/metrics/": {"get": _op("Prometheus metrics: requests by route and status, latency "
                                 "histograms, database pool, event backlog, webhook failures",
                                 ok=metrics_ok, errors=())},
    }


openapi.EXTRA_PATHS.append(_openapi_paths)
openapi.document.cache_clear()
