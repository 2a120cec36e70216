"""/errors/*: upstream's error pseudo-routes, answering any method."""
from __future__ import annotations

from pecan import expose

from ..errors import Forbidden, InvalidRequest, NotFound, Unavailable


class ErrorsController:
    @expose()
    def invalid(self, *, error_message="invalid request", **_):
        raise InvalidRequest(error_message)

    @expose()
    def forbidden(self, *, error_message="forbidden", **_):
        raise Forbidden(error_message)

    @expose()
    def not_found(self, *, error_message="resource was not found", **_):
        raise NotFound(error_message)

    @expose()
    def unavailable(self, *, error_message="service unavailable", **_):
        raise Unavailable(error_message)
