"""Resource: the RestController every collection and item derives from."""
from __future__ import annotations

from pecan import expose, request
from pecan.rest import RestController
from pecan.routing import lookup_controller
from pecan.util import getargspec, iscontroller
from webob import Response, exc

from ..middleware import REQUEST_BODY

# the handlers a request for the resource itself goes to, by method (RestController's order)
_HANDLERS = {"GET": ("get_all", "get"), "HEAD": ("get_all", "get"), "POST": ("post",),
             "PUT": ("put",), "DELETE": ("delete",)}
_CHECKED_CLASSES: set[type] = set()


class Resource(RestController):
    # RestController answers HEAD with 405; serve it as GET (webob then drops the body).
    # This leans on a Pecan internal; tests/api/test_wire.py and tests/unit/test_internals.py
    # keep it honest.
    _handle_head = RestController._handle_get

    def __new__(cls, *args, **kwargs):
        if cls in _CHECKED_CLASSES:  # RestController.__new__ checks the class: once is enough
            return object.__new__(cls)
        instance = super().__new__(cls, *args, **kwargs)
        _CHECKED_CLASSES.add(cls)
        return instance

    def __init__(self, settings):
        self._settings = settings

    @expose()
    def _route(self, args, request=None):
        segments = [a for a in args if a]
        if segments:
            # No handler of a Resource takes positional arguments (all are `**_`), so
            # segments left over name a child resource: go to it at once. RestController
            # would first try this resource's handler for the method and fail (a 404 or
            # 405 it builds a response for) before it tries the child: two exceptions per
            # job URL. Names it would treat otherwise (methods, "_x") take its own way.
            # A Resource child routes itself (its _route), as Pecan's lookup_controller
            # would have it do after generic checks (index, _default, pecan.secure) that
            # no Resource uses.
            name = segments[0]
            child = None if name.startswith("_") else getattr(self, name, None)
            if isinstance(child, Resource):
                return child._route(segments[1:], request)
            if child is None and callable(getattr(self, "_lookup", None)):
                child, rest = self._route_child(*segments)
                if isinstance(child, Resource):
                    return child._route(list(rest), request)
                return lookup_controller(child, list(rest), request)
        else:
            # The URL names this resource: its handler for the method, as RestController
            # would find it (get_all or get for GET and HEAD) after generic work that does
            # not apply here (custom actions and sub-controllers need segments); anything
            # else (no such handler: 405 and its Allow header) takes RestController's way.
            for name in _HANDLERS.get(getattr(request, "method", None), ()):
                handler = getattr(self, name, None)
                if handler is not None and iscontroller(handler):
                    return handler, []
        try:
            return super()._route(args, _NoMethodOverride(request))
        except exc.HTTPMethodNotAllowed as e:
            # Each enclosing RestController rewrites e.allow on the way out; keep the
            # methods of the innermost one, the resource the URL names.
            if not hasattr(e, "paddles_allow"):
                if any(args):
                    # Segments are left over: no resource has this URL, so it is a 404,
                    # not a method this resource lacks (Pecan says 405 for both).
                    raise exc.HTTPNotFound() from None
                e.paddles_allow = self._allowed_methods()
            raise

    def _get_args_for_controller(self, controller):
        # Pecan's thread-local request is always on here: RestController checks for it by
        # building `request.path` (the quoted URL), three times a request
        return getargspec(controller).args[1:]

    def _route_samples(self) -> list[tuple[str, ...]]:
        """The segments `_route_child` routes, "{}" standing for any value ("{2024-01-15}":
        any value, this one when the lookup must parse it).

        Only for listing the routes the app serves (tests/api/test_routes_documented.py
        checks each is documented); a controller whose `_lookup` also takes fixed words
        names them here.
        """
        return [("{}",)] if callable(getattr(self, "_lookup", None)) else []

    def _route_child(self, *segments):
        """(controller, remainder) for dynamic segments: `_lookup`, unless a controller
        that routes its remainder itself says otherwise."""
        return self._lookup(*segments)

    def _allowed_methods(self) -> list[str]:
        allowed = []
        if any(callable(getattr(self, n, None)) for n in ("get", "get_all", "get_one")):
            allowed += ["GET", "HEAD"]
        allowed += [m.upper() for m in ("post", "put", "delete")
                    if callable(getattr(self, m, None))]
        return allowed

    @staticmethod
    def _db():
        return request.db

    @staticmethod
    def _params():
        return request.GET

    @staticmethod
    def _body() -> bytes:
        """The request body: as WireMiddleware read it (webob's own reading of
        `request.body`, which makes the input seekable and copies it, only without it)."""
        body = request.environ.get(REQUEST_BODY)
        return body if body is not None else request.body


class child:
    """A sub-resource of a resource built per request (a run, a job, a node), built when
    routing first reaches it and then kept on the instance. Most requests stop at the
    resource itself: a heartbeat used to build seven controllers it never routed to.

        jobs = child(lambda run: JobsController(run._settings, run._name))
    """

    def __init__(self, build):
        self.build = build

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.build(obj)
        return value


class _NoMethodOverride:
    """The request as RestController routing sees it: its `_method` override is ignored.

    Pecan lets `?_method=delete` turn a POST into a DELETE (and parses form bodies to look
    for it); the wire contract routes by the HTTP method alone.
    """

    params: dict = {}

    def __init__(self, request):
        object.__setattr__(self, "_request", request)

    def __getattr__(self, name):
        return getattr(self._request, name)

    def __setattr__(self, name, value):
        setattr(self._request, name, value)


class StreamedResponse(Response):
    """A response whose body is a stream (downloads, exports, event streams).

    Pecan looks at every 200 to turn an empty one into a 204: it reads `.body` whole, or
    pushes a generator app_iter through itertools.tee, which keeps up to 57 chunks alive.
    Here `body` answers that check without reading, the app_iter given must not be a
    generator, and replacing it keeps the Content-Length (webob's own setter drops it).
    """

    @property
    def body(self):
        return b"<streamed>"

    @body.setter
    def body(self, value):
        Response.body.fset(self, value)

    @property
    def app_iter(self):
        return self._app_iter

    @app_iter.setter
    def app_iter(self, value):
        self._app_iter = value
