"""Canaries: the internals of Pecan, webob, psycopg2 and SQLAlchemy that paddles relies on.

paddles patches or leans on a few things these libraries do not promise (setup.py pins them
to a minor version for that reason). Each test here checks that one of them still has the
shape relied on, and says what to re-check when it fails: a failure after an upgrade means
"read the named paddles code against the new library before shipping", not "fix the test".
"""
from __future__ import annotations

import inspect
import subprocess
import sys

import pecan
import pecan.core
import pecan.decorators
import pecan.rest
import pecan.routing
import pecan.util
from pecan.rest import RestController
from webob import Response, exc

from paddles import pecan_speedups
from paddles.controllers import base
from paddles.controllers.base import Resource, StreamedResponse


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def _names(func) -> set[str]:
    """The global and attribute names a function's code uses (nested code included)."""
    names, stack = set(), [func.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if inspect.iscode(c))
    return names


def _source(func) -> str:
    return inspect.getsource(func)


# ---- paddles/pecan_speedups.py -----------------------------------------------------------

RECHECK_SPEEDUPS = "re-check paddles/pecan_speedups.py against this Pecan"


def test_importing_the_controllers_patches_nothing():
    """The speed-ups are the app factory's to install: importing a controller leaves Pecan
    as it is (a fresh interpreter, since this one may have built an app already)."""
    code = ("import pecan.routing, pecan.util\n"
            "before = (pecan.util.getargspec, pecan.routing._detect_custom_path_segments)\n"
            "import paddles.controllers.root, paddles.controllers.base\n"
            "from paddles import pecan_speedups\n"
            "assert (pecan.util.getargspec, pecan.routing._detect_custom_path_segments)"
            " == before, 'importing a controller patched Pecan'\n"
            "assert not pecan_speedups.installed()\n"
            "from paddles.app import make_app\n"
            "from paddles.settings import load_settings\n"
            "import tempfile, os\n"
            "d = tempfile.mkdtemp()\n"
            "make_app(load_settings(environ={}, database_url='sqlite:///' + d + '/x.db'"
            ", data_dir=d))\n"
            "assert pecan_speedups.installed(), 'make_app did not install the speed-ups'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_install_is_idempotent():
    pecan_speedups.install()
    pecan_speedups.install()
    assert pecan_speedups.installed()
    assert pecan_speedups.cached_getargspec(pecan_speedups.cached_getargspec) == \
        pecan_speedups._original(pecan_speedups.cached_getargspec)


def test_getargspec_is_where_the_speedups_replace_it():
    """Every Pecan module that calls `getargspec` on the routing path binds pecan.util's
    by name at import (the speed-up replaces those names), with one argument."""
    assert _params(pecan_speedups._original) == ["method"], RECHECK_SPEEDUPS
    for module in pecan_speedups.PATCHED_MODULES:
        assert getattr(module, "getargspec", None) in (
            pecan_speedups._original, pecan_speedups.cached_getargspec), \
            f"{module.__name__}.getargspec moved: {RECHECK_SPEEDUPS}"
    # the callers on a request's path still look the name up in their module's globals
    assert "getargspec" in _names(RestController._route), RECHECK_SPEEDUPS
    assert "getargspec" in _names(pecan.core.Pecan.invoke_controller), RECHECK_SPEEDUPS
    assert "getargspec" in _names(pecan.routing.handle_security) or \
        "getargspec" in _names(pecan.routing.find_object), RECHECK_SPEEDUPS


def test_getargspec_depends_only_on_the_function():
    """The cache is keyed on the underlying function: the argspec of a bound method and of
    its function must be the same answer (Pecan reports `self` either way)."""
    class C:
        def handler(self, a, b=1, **kw):
            pass
    original = pecan_speedups._original
    assert original(C().handler) == original(C.handler), RECHECK_SPEEDUPS
    assert original(C().handler).args == ["self", "a", "b"], RECHECK_SPEEDUPS


def test_detect_custom_path_segments_skips_nothing_but_dir():
    """detect_custom_path_segments_once skips the original for classes already scanned: the
    original must still keep its scanned classes in `__observed_controllers__` (the same set
    object) and do nothing else for them but `set(dir(obj))`."""
    original = pecan_speedups._original_detect
    assert _params(original) == ["obj"], RECHECK_SPEEDUPS
    assert pecan.routing.__observed_controllers__ is pecan_speedups._observed, \
        RECHECK_SPEEDUPS
    assert isinstance(pecan_speedups._observed, set), RECHECK_SPEEDUPS
    source = _source(original)
    assert "if obj.__class__ not in __observed_controllers__:" in source, RECHECK_SPEEDUPS
    assert "__observed_controllers__.add(obj.__class__)" in source, RECHECK_SPEEDUPS
    # everything after the membership test is inside it: only dir() comes before
    before = source.split("if obj.__class__ not in __observed_controllers__:")[0]
    statements = [line.strip() for line in before.splitlines()[1:]
                  if line.strip() and not line.strip().startswith("#")]
    assert statements == ["if obj.__class__.__module__ == '__builtin__':", "return",
                          "attrs = set(dir(obj))"], RECHECK_SPEEDUPS

    class Fresh:
        pass
    original(Fresh())
    assert Fresh in pecan_speedups._observed, RECHECK_SPEEDUPS
    pecan_speedups._observed.discard(Fresh)
    # routing calls it through the module global the speed-up replaces
    assert "_detect_custom_path_segments" in _names(pecan.routing.find_object), \
        RECHECK_SPEEDUPS


# ---- paddles/controllers/base.py: Resource --------------------------------------------------

RECHECK_RESOURCE = "re-check paddles/controllers/base.py (Resource) against this Pecan"


def test_rest_controller_new_only_checks_the_class():
    """Resource.__new__ runs RestController.__new__ once per class and then builds the
    instance with object.__new__: the original must only scan the class (getmembers) and
    then call object.__new__."""
    assert RestController.__bases__ == (object,), RECHECK_RESOURCE
    assert "__new__" in vars(RestController), RECHECK_RESOURCE
    assert "getmembers" in _names(RestController.__new__), RECHECK_RESOURCE
    assert "__init__" not in vars(RestController), RECHECK_RESOURCE


def test_rest_controller_route_is_what_resource_route_stands_in_for():
    """Resource._route takes RestController's way for what it does not route itself: the
    same signature, the `_method` override read from `request.params` (which
    _NoMethodOverride hides), handlers found as `_handle_<method>`, a 405 whose `allow` it
    rewrites, and `_get_args_for_controller` called on the handler found."""
    assert _params(RestController._route) == ["self", "args", "request"], RECHECK_RESOURCE
    source = _source(RestController._route)
    assert "request.params.get('_method'" in source, RECHECK_RESOURCE
    assert "'_handle_%s' % method" in source, RECHECK_RESOURCE
    assert "e.allow =" in source, RECHECK_RESOURCE
    assert "self._get_args_for_controller(" in source, RECHECK_RESOURCE
    assert _params(RestController._get_args_for_controller) == ["self", "controller"], \
        RECHECK_RESOURCE
    assert _params(pecan.routing.lookup_controller)[:3] == ["obj", "remainder", "request"], \
        RECHECK_RESOURCE
    # the hooks Resource._route relies on being what RestController would have used
    for name in ("_lookup_child", "_find_sub_controllers", "_handle_lookup",
                 "_handle_unknown_method"):
        assert callable(getattr(RestController, name, None)), f"{name}: {RECHECK_RESOURCE}"


def test_handle_head_line():
    """`_handle_head = RestController._handle_get`: Pecan has no HEAD handler of its own (if
    it grows one, drop the line and check HEAD still answers like GET), and its GET handler
    takes the arguments every `_handle_<method>` is called with."""
    assert "_handle_head" not in vars(RestController), RECHECK_RESOURCE
    assert Resource._handle_head is RestController._handle_get, RECHECK_RESOURCE
    assert _params(RestController._handle_get) == ["self", "method", "remainder", "request"], \
        RECHECK_RESOURCE
    assert set(base._HANDLERS) == {"GET", "HEAD", "POST", "PUT", "DELETE"}


def test_pecan_app_options_used_by_make_app():
    params = inspect.signature(pecan.core.PecanBase.__init__).parameters
    assert issubclass(pecan.Pecan, pecan.core.PecanBase)
    for name in ("default_renderer", "custom_renderers", "force_canonical",
                 "guess_content_type_from_ext", "request_cls", "hooks"):
        assert name in params, f"pecan.Pecan({name}=): re-check paddles/app.py"


# ---- webob, and Pecan's empty-body check: StreamedResponse ----------------------------------

RECHECK_STREAMED = "re-check StreamedResponse (paddles/controllers/base.py)"


def test_streamed_response_shapes():
    """StreamedResponse keeps its stream in `_app_iter` (webob's own attribute), sets bodies
    through webob's `body` setter, and answers Pecan's 204 check through `.body`."""
    assert isinstance(Response.body, property) and Response.body.fset, RECHECK_STREAMED
    assert isinstance(Response.app_iter, property), RECHECK_STREAMED
    resp = Response(app_iter=[b"x"])
    assert resp._app_iter == [b"x"], RECHECK_STREAMED
    streamed = StreamedResponse(app_iter=[b"abc"], content_length=3)
    assert streamed.app_iter == [b"abc"] and streamed.content_length == 3
    source = _source(pecan.core.Pecan._handle_empty_response_body)
    assert "isinstance(state.response.app_iter, types.GeneratorType)" in source, \
        RECHECK_STREAMED
    assert "state.response.body" in source, RECHECK_STREAMED


def test_webob_http_method_not_allowed_carries_allow():
    """Resource._route and ErrorHook read and set `allow` on webob's 405."""
    e = exc.HTTPMethodNotAllowed()
    e.allow = ["GET"]
    assert list(e.allow) == ["GET"] and e.headers["Allow"] == "GET", \
        "re-check Resource._route and ErrorHook (paddles/hooks.py) against this webob"



# ---- paddles/pg.py: psycopg2 and SQLAlchemy below the Session ----------------------------------

RECHECK_PG = "re-check paddles/pg.py (the psycopg2 fast path) against this {}"


def test_psycopg2_connection_api():
    """pg.py switches autocommit on the connection itself, asks it whether a transaction is
    open, polls its socket at checkout, and retries on a lost prepared statement's SQLSTATE."""
    import psycopg2
    import psycopg2.extensions as ext
    for name in ("autocommit", "get_transaction_status", "closed", "fileno"):
        assert hasattr(ext.connection, name), f"connection.{name}: " + RECHECK_PG.format(
            "psycopg2")
    assert ext.TRANSACTION_STATUS_IDLE == 0, RECHECK_PG.format("psycopg2")
    assert hasattr(psycopg2.Error, "pgcode"), RECHECK_PG.format("psycopg2")


def test_only_pg_imports_psycopg2():
    """psycopg2 is imported by paddles/pg.py alone (SQLAlchemy's dialect aside)."""
    import pathlib
    import paddles
    root = pathlib.Path(paddles.__file__).parent
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if any(line.lstrip().startswith(("import psycopg2", "from psycopg2"))
                              for line in p.read_text().splitlines()))
    assert importers == ["pg.py"]


def test_sqlalchemy_below_the_session():
    """The raw paths of pg._run_pooled and pg._run_on_cursor: a pooled DBAPI connection, the
    dialect's disconnect test, SQLAlchemy's own exception wrapping, and the engine's
    statement listeners (when a test listens, the fast path steps aside)."""
    from sqlalchemy import create_engine, exc as sa_exc
    from sqlalchemy.orm import sessionmaker
    from sqlalchemy.pool import PoolProxiedConnection
    recheck = RECHECK_PG.format("SQLAlchemy")
    params = inspect.signature(sa_exc.DBAPIError.instance).parameters
    for name in ("statement", "params", "orig", "dbapi_base_err", "connection_invalidated",
                 "dialect"):
        assert name in params, f"DBAPIError.instance({name}): {recheck}"
    local = create_engine("sqlite://")
    try:
        pooled = local.raw_connection()
        assert isinstance(pooled, PoolProxiedConnection), recheck
        for name in ("dbapi_connection", "info", "invalidate", "close"):
            assert hasattr(pooled, name), f"{name}: {recheck}"
        assert isinstance(pooled.info, dict), recheck
        pooled.close()
        # pg._execute_autocommitted: a Connection's pooled connection, its listeners
        with local.connect() as conn:
            assert isinstance(conn.connection, PoolProxiedConnection), recheck
            assert not conn.dispatch.before_cursor_execute, recheck
            assert hasattr(conn.dispatch, "after_cursor_execute"), recheck
            assert conn.engine is local, recheck
    finally:
        local.dispose()
    engine = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    try:
        assert _params(engine.dialect.is_disconnect) == ["e", "connection", "cursor"], recheck
        assert engine.dialect.loaded_dbapi.Error.__module__.startswith("psycopg2"), recheck
        assert hasattr(engine.dispatch, "before_cursor_execute"), recheck
        assert hasattr(engine.dispatch, "after_cursor_execute"), recheck
    finally:
        engine.dispose()
    maker = sessionmaker()
    assert isinstance(maker.kw, dict), "sessionmaker.kw: re-check paddles/db.py (reading)"


# ---- the pins that go with these internals ----------------------------------------------------

def test_pins_and_constraints_agree():
    """setup.py pins the libraries whose internals are used to one minor version, and
    constraints.txt (what make install and CI install) holds a version inside each range."""
    import ast
    import pathlib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name as canonical
    from packaging.version import Version
    repo = pathlib.Path(__file__).resolve().parents[2]
    call = next(node for node in ast.walk(ast.parse((repo / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    requires = next(ast.literal_eval(k.value) for k in call.keywords
                    if k.arg == "install_requires")
    ranges = {canonical(r.name): r.specifier for r in map(Requirement, requires)}
    pinned = {}
    for line in (repo / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pinned[canonical(req.name)] = Version(next(iter(req.specifier)).version)
    for name in ("pecan", "webob", "sqlalchemy", "psycopg2-binary"):
        spec = ranges[name]
        upper = [s for s in spec if s.operator == "<"]
        lower = [s for s in spec if s.operator == ">="]
        assert upper and lower, f"{name}: pin it to a minor version in setup.py"
        low, high = Version(lower[0].version), Version(upper[0].version)
        assert (high.major, high.minor) == (low.major, low.minor + 1), \
            f"{name}: {spec} spans more than one minor version"
        assert pinned[name] in spec, f"{name}: constraints.txt {pinned[name]} not in {spec}"
    for name, spec in ranges.items():
        assert name in pinned and pinned[name] in spec, f"{name}: constraints.txt"
