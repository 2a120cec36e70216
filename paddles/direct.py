"""Direct routes: the two job writes teuthology sends most, served without Pecan's dispatch.

A lab's write load is job creates (`POST /runs/NAME/jobs/`) and job reports and heartbeats
(`PUT /runs/NAME/jobs/ID/`). Pecan spent 0.4M instructions of each on generic work they do
not need (its request and response objects, the object-dispatch walk, four hooks, the
renderer): a tenth of a create, a third of a heartbeat (docs/performance.md).

This layer, between AuthMiddleware and Pecan, answers them itself:
- with the very functions their controller methods call (controllers/jobs.py: post_job,
  put_job);
- on a session from the same RequestSessions as DBSessionHook (open, commit or roll back,
  close);
- with errors mapped by the same responses.exception_response as ErrorHook.

Everything else goes on to Pecan, and so does any path Pecan would route another way: a
run named like a filter word or a controller attribute, a job_id named like one.

What a client sees is the same either way: status, headers and body, and the rows left
behind (tests/api/test_direct.py replays the job writes both ways and compares them).
"""
from __future__ import annotations

from collections.abc import Callable

import orjson

from . import filters
from .controllers.jobs import JobsController, post_job, put_job
from .controllers.runs import RunsController
from .hooks import RequestSessions
from .middleware import REQUEST_BODY
from .responses import exception_response

Handler = Callable[..., dict]


def _looked_up(controller: type, name: str, reserved: frozenset[str] = frozenset()) -> bool:
    """Whether Pecan routes the segment `name` under `controller` to its `_lookup` (a run
    name, a job_id) and nothing else: not one of its `reserved` words, not an attribute of
    the class, not private."""
    return not name.startswith("_") and name not in reserved \
        and getattr(controller, name, None) is None


def match(method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
    """(handler, its path arguments) for a direct route, else None. `path` is PATH_INFO
    as WireMiddleware leaves it (single slashes, no trailing one, UTF-8 as latin-1)."""
    handler: Handler
    if method == "POST":
        handler, size = post_job, 4
    elif method == "PUT":
        handler, size = put_job, 5
    else:  # every read: no work here
        return None
    parts = path.split("/")
    if len(parts) != size or parts[1] != "runs" or parts[3] != "jobs":
        return None
    args = tuple(part.encode("latin-1").decode("utf-8") for part in parts[2::2])
    if not _looked_up(RunsController, args[0], filters.RESERVED):
        return None
    if len(args) > 1 and not _looked_up(JobsController, args[1]):
        return None
    return handler, args


_OK_HEADERS = ("Content-Type", "application/json")


class DirectRoutes:
    """The WSGI layer: direct routes answered here, the rest passed to `app` (Pecan)."""

    def __init__(self, app, sessions: RequestSessions, settings) -> None:
        self.app = app
        self.sessions = sessions
        self.settings = settings

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        found = match(method, environ.get("PATH_INFO", ""))
        if found is None:
            return self.app(environ, start_response)
        handler, args = found
        session = self.sessions.open_write(environ)
        try:
            answer = handler(session, self.settings, *args, _body(environ))
            status, headers, body = "200 OK", None, orjson.dumps(answer)
        except Exception as exc:
            self.sessions.abort(session)
            error = exception_response(exc, method, environ.get("SCRIPT_NAME", "")
                                       + environ.get("PATH_INFO", ""))
            status, headers, body = error.status, error.headerlist, error.body
        except BaseException:
            self.sessions.abort(session)
            session.close()
            raise
        failed = self.sessions.finish(session, method, int(status[:3]))
        if failed is not None:
            status, headers, body = failed.status, failed.headerlist, failed.body
        if headers is None:  # as Pecan sends a rendered 200
            headers = [("Content-Length", str(len(body))), _OK_HEADERS]
        start_response(status, list(headers))
        return [body]


def _body(environ) -> bytes:
    """The request body as WireMiddleware read it (or, outside it, from wsgi.input)."""
    body = environ.get(REQUEST_BODY)
    if body is None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
    return body

