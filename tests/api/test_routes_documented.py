"""The reverse of test_openapi.py: every route the app serves is in /openapi.json.

The walk goes through the Pecan controller tree itself: each RestController's handlers
(get/get_all/get_one, post, put, delete, patch, custom actions), each child controller
attribute, each `_lookup` or `_route_child` (fed the samples the controller names in `_route_samples`, "{}"
standing for any value), and the exposed methods of plain object-dispatch controllers
(which answer every method). A route added to the tree without its OpenAPI entry fails here.
"""
from __future__ import annotations

import re

from pecan.rest import RestController
from pecan.util import iscontroller

from paddles import openapi
from paddles.controllers.base import child
from paddles.controllers.root import RootController
from paddles.settings import load_settings

# RestController handler name -> HTTP method
HANDLERS = {"get": "GET", "get_all": "GET", "get_one": "GET", "post": "POST", "put": "PUT",
            "delete": "DELETE", "patch": "PATCH"}
ANY_METHOD = frozenset({"GET", "POST", "PUT", "DELETE"})
MAX_DEPTH = 12


def _is_controller(value) -> bool:
    if isinstance(value, RestController):
        return True
    return not isinstance(value, type) and any(
        iscontroller(getattr(value, n, None)) for n in dir(type(value)) if not n.startswith("__"))


def _children(ctrl):
    """Controllers held by the instance, and those its class builds on first use (child)."""
    lazy = [n for n in dir(type(ctrl)) if isinstance(getattr(type(ctrl), n, None), child)]
    for name in sorted(set(vars(ctrl)) | set(lazy)):
        value = getattr(ctrl, name)
        if not name.startswith("_") and _is_controller(value):
            yield name, value


def walk(ctrl, path: str = "/", depth: int = 0):
    """(path template, methods) for every route under `ctrl`; "{}" marks a free segment."""
    assert depth < MAX_DEPTH, f"controller tree deeper than {MAX_DEPTH} at {path}"
    if isinstance(ctrl, RestController):
        methods = {m for name, m in HANDLERS.items() if iscontroller(getattr(ctrl, name, None))}
        if methods:
            yield path, frozenset(methods)
        for action, verbs in getattr(ctrl, "_custom_actions", {}).items():
            yield f"{path}{action}/", frozenset(v.upper() for v in verbs)
    else:  # object dispatch: every exposed method is a route answering any method
        for name in dir(type(ctrl)):
            if not name.startswith("_") and iscontroller(getattr(ctrl, name)):
                yield f"{path}{name}/", ANY_METHOD
    for name, child in _children(ctrl):
        yield from walk(child, f"{path}{name}/", depth + 1)
    if hasattr(ctrl, "_route_samples"):
        for sample in ctrl._route_samples():
            # "{}" is any value, "{2024-01-15}" a free segment the lookup parses eagerly
            values = [re.sub(r"^\{(.*)\}$", lambda m: m.group(1) or "x", s) for s in sample]
            child, rest = ctrl._route_child(*values)
            assert not rest, f"{path}{'/'.join(sample)}/ left segments {rest}"
            template = "".join("{}/" if s.startswith("{") else f"{s}/" for s in sample)
            yield from walk(child, path + template, depth + 1)


def _norm(template: str) -> str:
    return re.sub(r"\{\w*\}", "{}", template).rstrip("/") or "/"


def served_routes() -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    root = RootController(load_settings(environ={}, database_url="sqlite://"))
    for path, methods in walk(root):
        routes.setdefault(_norm(path), set()).update(methods)
    return routes


def documented_routes() -> dict[str, set[str]]:
    return {_norm(path): {m.upper() for m in ops}
            for path, ops in openapi.document()["paths"].items()}


def test_walk_finds_the_route_families():
    routes = served_routes()
    for path in ("/", "/runs", "/runs/{}", "/runs/{}/jobs/{}", "/runs/{}/jobs/{}/artifacts/{}",
                 "/runs/branch/{}", "/runs/date/from/{}/to/{}", "/nodes/lock_many",
                 "/nodes/{}/lock", "/exports/runs.csv", "/subscriptions/{}/deliveries",
                 "/errors/invalid", "/openapi.json", "/events/stream"):
        assert path in routes, path
    assert routes["/runs/{}/jobs/{}"] == {"GET", "PUT", "DELETE"}


def test_every_served_route_is_documented_with_its_methods():
    served, documented = served_routes(), documented_routes()
    missing = sorted(p for p in served if p not in documented)
    assert not missing, f"served but not in /openapi.json: {missing}"
    wrong = {p: (sorted(served[p]), sorted(documented[p])) for p in served
             if served[p] != documented[p]}
    assert not wrong, f"methods served vs documented: {wrong}"


def test_every_documented_route_is_in_the_tree():
    served, documented = served_routes(), documented_routes()
    assert sorted(p for p in documented if p not in served) == []


def _resource_classes(cls=None):
    from paddles.controllers.base import Resource
    cls = cls or Resource
    for sub in cls.__subclasses__():
        yield sub
        yield from _resource_classes(sub)


def test_no_handler_takes_positional_arguments():
    """Resource._route sends segments left over to a child and a URL that names the resource
    to its handler at once, both on the grounds that no handler takes a positional argument
    (each takes `**_`): a handler that did would need RestController's own routing."""
    import inspect

    from paddles import controllers  # noqa: F401  (every controller module imported)
    from paddles.controllers import root  # noqa: F401
    for cls in _resource_classes():
        for name in HANDLERS:
            handler = getattr(cls, name, None)
            if handler is None or not callable(handler):
                continue
            params = list(inspect.signature(handler).parameters.values())[1:]
            assert all(p.kind is p.VAR_KEYWORD for p in params), f"{cls.__name__}.{name}"
