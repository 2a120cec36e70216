"""The root of the object-dispatch tree."""
from __future__ import annotations

from pecan import expose

from .. import openapi
from .base import Resource
from .errors import ErrorsController
from .events import EventsController, SubscriptionsController
from .exports import ExportsController
from .health import HealthController, MetricsController, ReadyController
from .jobs import RecentJobsController
from .nodes import NodesController
from .queue import QueueController
from .runs import RunsController


class RootController(Resource):
    def __init__(self, settings):
        super().__init__(settings)
        self.runs = RunsController(settings)
        self.jobs = RecentJobsController(settings)
        self.nodes = NodesController(settings)
        self.queue = QueueController(settings)
        self.exports = ExportsController(settings)
        self.errors = ErrorsController()
        self.events = EventsController(settings)
        self.subscriptions = SubscriptionsController(settings)
        setattr(self, "openapi.json", OpenAPIController(settings))
        self.health = HealthController(settings)
        self.ready = ReadyController(settings)
        self.metrics = MetricsController(settings)

    @expose("json")
    def get_all(self, **_):
        return {}


class OpenAPIController(Resource):
    @expose("json")
    def get_all(self, **_):
        return openapi.document()
