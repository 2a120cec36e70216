"""/nodes/: inventory, locking, and the jobs that ran on each node (spec 5, 9)."""
from __future__ import annotations

from pecan import expose
from pecan import request as current_request

from .. import serializers
from ..errors import InvalidRequest
from ..auth import principal_of
from ..schemas.common import parse_paging
from ..schemas.nodes import (parse_lock_many_body, parse_new_node_body, parse_node_body,
                             parse_node_query, parse_since_days, parse_unlock_many_body)
from ..services import jobs as job_service
from ..services import nodes as node_service
from ..services.tokens import acting_owner
from .base import Resource, child


def _as_owner() -> str | None:
    """The locked_by value the request's token must lock as (None: any)."""
    return acting_owner(principal_of(current_request.environ))


class MethodGuard(Resource):
    """A route upstream answers with its own 400 text, not 405, for any other method."""

    methods: tuple[str, ...] = ("POST",)

    def refuse(self, method: str):
        raise InvalidRequest("this URI only supports POST requests")

    @expose()
    def _route(self, args, request=None):
        method = (request or current_request).method
        if method not in self.methods:
            self.refuse(method)
        return super()._route(args, request)


class NodesController(Resource):
    def __init__(self, settings):
        super().__init__(settings)
        # Routed by _lookup, not as attributes: RestController re-routes a request whose
        # handler takes fewer arguments than the URL has segments to _lookup, which would
        # then turn /nodes/lock_many into a node named lock_many.
        self._actions = {
            "lock_many": LockManyController(settings),
            "unlock_many": UnlockManyController(settings),
            "job_stats": JobStatsController(settings),
            "machine_types": MachineTypesController(settings),
        }

    @expose("json")
    def get_all(self, **_):
        nodes = node_service.list_nodes(self._db(), **parse_node_query(self._params()))
        return [serializers.node_detail(node) for node in nodes]

    @expose("json")
    def post(self, **_):
        name, fields = parse_new_node_body(self._body())
        node_service.create_node(self._db(), name, fields, as_owner=_as_owner())
        return {}

    @expose()
    def _lookup(self, name, *remainder):
        action = self._actions.get(name)  # these names shadow nodes so named (spec 2)
        if action is not None:
            return action, list(remainder)
        return NodeController(self._settings, name), list(remainder)

    def _route_samples(self):
        return [("{}",), *((name,) for name in self._actions)]


class LockManyController(MethodGuard):
    @expose("json")
    def post(self, **_):
        nodes = node_service.lock_many(self._db(), **parse_lock_many_body(self._body()),
                                       as_owner=_as_owner())
        return [serializers.node_detail(node) for node in nodes]


class UnlockManyController(MethodGuard):
    @expose("json")
    def post(self, **_):
        names, locked_by = parse_unlock_many_body(self._body())
        nodes = node_service.unlock_many(self._db(), names, locked_by, as_owner=_as_owner())
        return [serializers.node_lock_record(node) for node in nodes]


class JobStatsController(Resource):
    @expose("json")
    def get_all(self, **_):
        params = self._params()
        since_days = parse_since_days(params.get("since_days"))
        return node_service.job_stats(self._db(), since_days=since_days,
                                      machine_type=params.get("machine_type") or None)


class MachineTypesController(Resource):
    @expose("json")
    def get_all(self, **_):
        return node_service.machine_types(self._db())


class NodeController(Resource):
    lock = child(lambda node: NodeLockController(node._settings, node._name))
    jobs = child(lambda node: NodeJobsController(node._settings, node._name))
    job_stats = child(lambda node: NodeJobStatsController(node._settings, node._name))

    def __init__(self, settings, name):
        super().__init__(settings)
        self._name = name

    @expose("json")
    def get(self, **_):
        return serializers.node_detail(node_service.get_node(self._db(), self._name))

    @expose("json")
    def put(self, **_):
        node_service.update_node(self._db(), self._name, parse_node_body(self._body()),
                                 as_owner=_as_owner())
        return {}

    @expose("json")
    def delete(self, **_):
        node_service.delete_node(self._db(), self._name)
        return {}


class NodeLockController(MethodGuard):
    methods = ("PUT", "POST")

    def __init__(self, settings, name):
        super().__init__(settings)
        self._name = name

    def refuse(self, method: str):
        node_service.get_node(self._db(), self._name)  # an unknown node is a 404 first
        raise InvalidRequest("this URI only supports PUT and POST requests but "
                             f"{method} was attempted")

    @expose("json")
    def put(self, **_):
        node = node_service.lock_node(self._db(), self._name,
                                      parse_node_body(self._body()),
                                      as_owner=_as_owner())
        return serializers.node_lock_record(node)

    post = put


class NodeJobsController(Resource):
    def __init__(self, settings, name):
        super().__init__(settings)
        self._name = name

    @expose("json")
    def get_all(self, **_):
        params = self._params()
        limit, offset = parse_paging(params, 0)
        rows = job_service.node_jobs(self._db(), self._name,
                                      job_name=params.get("name") or None,
                                      status=params.get("status") or None,
                                      limit=limit or None, offset=offset)  # count=0: all
        return serializers.job_list(rows, self._settings)


class NodeJobStatsController(Resource):
    def __init__(self, settings, name):
        super().__init__(settings)
        self._name = name

    @expose("json")
    def get_all(self, **_):
        return node_service.node_job_stats(self._db(), self._name)
