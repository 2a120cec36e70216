"""/health (liveness), /ready (database and schema) and /metrics (Prometheus)."""
from __future__ import annotations

from pecan import expose, request
from webob import Response

from .. import metrics
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
