"""/queue/: paddles-as-queue (spec 11)."""
from __future__ import annotations

from pecan import expose

from .. import serializers
from ..schemas.queue import parse_queue_body, parse_queue_params
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
        name, fields = parse_queue_body(self._body())
        queue_service.create_queue(self._db(), name, fields)
        return {}

    @expose("json")
    def put(self, **_):
        name, fields = parse_queue_body(self._body())
        queue_service.update_queue(self._db(), name, fields)
        return {}


class QueueReader(Resource):
    """GET or POST; parameters from the query string and a JSON-object body alike."""

    @expose("json")
    def get_all(self, **_):
        return self.answer(parse_queue_params(self._params(), self._body()))

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
