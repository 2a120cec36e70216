"""Request plumbing: session per request, errors as JSON, and the WSGI wrapper around Pecan."""
from __future__ import annotations

import dataclasses
import errno
import io
import logging
import os
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from pecan.hooks import PecanHook
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from webob import Request as WebObRequest, Response
from webob.exc import HTTPException

from . import logs, metrics, routes
from .db import begin_write, reading, write_locks_up_front
from .errors import InsufficientStorage, PaddlesError
from .replica import ReplicaReads
from .streams import body_timed_out

log = logging.getLogger(__name__)

READ_METHODS = ("GET", "HEAD", "OPTIONS")
# SQLSTATEs meaning "run the whole request again": serialization failure, deadlock
RETRYABLE_PGCODES = {"40001", "40P01"}
RETRY_HEADER = "X-Paddles-Retry"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL lock_timeout (settings.db_lock_timeout)
CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, OPTIONS"),
    ("Access-Control-Allow-Headers", "origin, authorization, accept"),
]


def json_response(status: int, body, headers=None) -> Response:
    resp = Response(status=status, body=orjson.dumps(body), content_type="application/json",
                    charset=None)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def error_response(status: int, message: str, headers=None) -> Response:
    return json_response(status, {"message": message}, headers)


class Request(WebObRequest):
    """The request object Pecan builds: webob's, without pecan.core.Request's
    `__getattribute__`, which wraps every attribute read (about 140 a request) to turn a
    UnicodeDecodeError into a 400. Here URLs that are not UTF-8 never reach Pecan
    (WireMiddleware), bodies are decoded by schemas.parse_json, and ErrorHook answers any
    UnicodeDecodeError left with that same 400."""


class OrjsonRenderer:
    """Pecan's 'json' renderer, replaced by orjson (faster, and it refuses NaN)."""

    def __init__(self, path, extra_vars):
        pass

    def render(self, template_path, namespace):
        return orjson.dumps(namespace)


# Read-only routes served from the replica when one is configured (database_read_url): the
# heavy reads of pulpito and reporting, where a replica a few seconds behind is harmless
# (`replica` in the route table, paddles/routes.py). Not those: what teuthology reads right
# after writing (a run's jobs, nodes while locking, queues), artifacts (fetched right after
# upload), events (NOTIFY is not replicated), and /ready and /metrics (about the primary).
READ_REPLICA_ROUTES = routes.REPLICA_ROUTES


def reads_from_replica(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    return routes.route_template(path) in READ_REPLICA_ROUTES


class DBSessionHook(PecanHook):
    """First in the hook list: opens the session first, commits (or not) last."""

    def __init__(self, make_session, make_read_session=None, read_max_wait: float = 0.0):
        self.make_session = make_session
        self.make_read_session = make_read_session
        # what a GET's own session comes from: autocommit on PostgreSQL (db.reading)
        self.reader = {make_session: reading(make_session)}
        self.replica_reads = None
        if make_read_session is not None:
            self.reader[make_read_session] = reading(make_read_session)
            self.replica_reads = ReplicaReads(self.reader[make_session],
                                              self.reader[make_read_session], read_max_wait)
        self.lock_up_front = write_locks_up_front(make_session)  # writes never use the replica

    def on_route(self, state):
        request = state.request
        method = request.method
        make_session = self.make_session
        session = None
        if self.replica_reads is not None and reads_from_replica(method, request.path_info):
            session = self.replica_reads.session()  # None: the replica is behind
            if session is not None:
                make_session = self.make_read_session
        request.replica_factory = self.make_read_session
        if session is not None:
            pass
        elif method in READ_METHODS:
            session = self.reader[make_session]()
        else:
            session = make_session()
            # SQLite: the write lock up front (BEGIN IMMEDIATE), except for a streamed
            # upload, which takes it after the body is in (it would otherwise hold the
            # database's write lock for as long as the client sends). PostgreSQL needs no
            # such lock: the session begins at its first statement, and a request whose one
            # statement runs alone (db.execute_alone: a heartbeat) never begins one.
            if self.lock_up_front and STREAMED_BODY not in request.environ:
                begin_write(session)
        request.db = session
        request.session_factory = make_session  # for streamed exports (in a transaction)

    def after(self, state):
        session = getattr(state.request, "db", None)
        if session is None:
            return
        try:
            if state.request.method not in READ_METHODS and state.response.status_int < 400 \
                    and session.in_transaction():
                session.commit()
        except DBAPIError as exc:
            session.rollback()
            state.response = database_error_response(exc)
        finally:
            if session.in_transaction() or session.identity_map:
                session.close()
            # else it never began (a read or a heartbeat that ran alone, db.execute_alone):
            # nothing to give back, and closing an unused Session is not free

    def on_error(self, state, exc):
        session = getattr(state.request, "db", None)
        if session is not None:
            session.rollback()


class ErrorHook(PecanHook):
    """Every exception becomes `{"message": ...}` with the right status."""

    def on_error(self, state, exc):
        if isinstance(exc, PaddlesError):
            return error_response(exc.status, exc.message, exc.headers)
        if isinstance(exc, HTTPException):
            headers = {}
            if exc.status_int == 405:
                allow = ", ".join(getattr(exc, "paddles_allow", None) or exc.allow or [])
                if allow:
                    headers["Allow"] = allow
                return error_response(405, "method not allowed", headers)
            message = {404: "resource was not found"}.get(exc.status_int, exc.explanation
                                                          or exc.title)
            return error_response(exc.status_int, message, headers)
        if isinstance(exc, DBAPIError):
            return database_error_response(exc)
        if isinstance(exc, UnicodeDecodeError):
            return error_response(400, "the request is not valid UTF-8")
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            log.error("no space left on %s %s: %s", state.request.method, state.request.path,
                      exc)
            return error_response(InsufficientStorage.status, NO_SPACE_MESSAGE)
        log.exception("unhandled error on %s %s", state.request.method, state.request.path)
        return error_response(500, "internal server error")


# a full filesystem or quota (artifact spool and blob store): 507, never a 500; the spooler
# and the blob store remove their partial files on the way out (streams, storage.local)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_MESSAGE = "insufficient storage: the artifact store is full; nothing was stored"


def database_error_response(exc: DBAPIError) -> Response:
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    if code in RETRYABLE_PGCODES:
        return error_response(503, "encountered a DB error; please retry",
                              {"Retry-After": "1", RETRY_HEADER: "1"})
    if isinstance(exc, OperationalError) and "database is locked" in str(exc):
        return error_response(503, "database is busy; please retry",
                              {"Retry-After": "1", RETRY_HEADER: "1"})
    if code == LOCK_NOT_AVAILABLE:  # waited db_lock_timeout for a lock: no retry in here
        log.warning("lock wait timed out: %s", _first_line(exc))
        return error_response(503, "database is busy; please retry", {"Retry-After": "1"})
    if isinstance(exc, OperationalError) or getattr(exc, "connection_invalidated", False):
        # one line per failed request: an outage fails many requests the same way
        log.error("database unavailable: %s", _first_line(exc))
        return error_response(503, "database unavailable; please retry", {"Retry-After": "5"})
    if code == "22001":  # string data right truncation: a length our validation missed
        return error_response(400, "a value is too long for its field")
    if isinstance(exc, IntegrityError):
        # a constraint the services did not foresee (a race, or one checked at COMMIT):
        # the transaction is rolled back whole, so nothing was written
        log.warning("constraint violation, rolled back: %s", _first_line(exc))
        return error_response(409, "the change conflicts with stored data; nothing was "
                                   "written")
    log.exception("database error", exc_info=exc)
    return error_response(500, "internal server error")


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig or exc).strip().splitlines() or ["?"])[0]


_SLASHES = re.compile(r"/{2,}")
STREAMED_BODY = "paddles.streamed_body"


@dataclasses.dataclass(frozen=True)
class StreamedBody:
    input: Any
    length: int | None  # None: read to the end (chunked transfer)
    content_type: str | None
    content_encoding: str | None


def hide_body(environ) -> None:
    """Move the request body out of webob's sight into environ[STREAMED_BODY].

    Pecan reads `request.params` on every non-GET request, and webob then parses a form
    body (curl's default Content-Type for --data-binary) into memory. The upload handler
    reads the body from the StreamedBody instead.
    """
    raw = environ.get("CONTENT_LENGTH") or ""
    try:
        length = int(raw) if raw.strip() else None
    except ValueError:
        length = -1  # the handler answers 400
    if length is None and not (environ.get("wsgi.input_terminated")
                               or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()):
        length = 0  # PEP 3333: no length and no chunking means no body
    environ[STREAMED_BODY] = StreamedBody(environ["wsgi.input"], length,
                                          environ.get("CONTENT_TYPE"),
                                          environ.get("HTTP_CONTENT_ENCODING"))
    environ["wsgi.input"] = io.BytesIO(b"")
    environ["CONTENT_LENGTH"] = "0"
    environ["CONTENT_TYPE"] = "application/octet-stream"


class StorageHook(PecanHook):
    """Hands the blob store to the request, as DBSessionHook does the session."""

    def __init__(self, store):
        self.store = store

    def on_route(self, state):
        state.request.blobs = self.store


class WireMiddleware:
    """The wire rules that come before routing (spec section 1).

    Collapses repeated slashes and drops a trailing one (every route is served the same
    either way), answers OPTIONS from here, adds CORS headers, bounds the body size, gives
    each request an id, and re-runs a whole request when the database asks for a retry.
    """

    def __init__(self, app, *, max_body_size: int, body_limits=None, retries: int = 3,
                 client_timeout: float | None = None):
        self.app = app
        self.max_body_size = max_body_size
        self.body_limits = body_limits  # limits.BodyLimits: per route; else max_body_size
        self.retries = retries
        self.client_timeout = client_timeout or None

    def __call__(self, environ, start_response):
        path = _SLASHES.sub("/", environ.get("PATH_INFO", "") or "/")
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        environ["PATH_INFO"] = path
        request_id = environ.get(REQUEST_ID_KEY) or request_id_of(environ)
        environ[REQUEST_ID_KEY] = request_id

        method = environ.get("REQUEST_METHOD")
        extra = CORS_HEADERS + [("X-Request-ID", request_id)]
        bound_client_io(environ, self.client_timeout)

        def finish(status, headers):
            return [h for h in headers if h[0] != RETRY_HEADER] + extra

        if method == "OPTIONS":
            start_response("200 OK", finish("200 OK", [("Content-Type", "application/json")]))
            return [b"{}"]
        problem = url_problem(path, environ.get("QUERY_STRING", ""))
        if problem is not None:
            status, headers, body = _raw_error(400, problem)
            start_response(status, finish(status, headers))
            return body
        # uploads whose body the app streams to disk: not buffered, not retried, hidden
        # from webob (`streamed` in the route table)
        streamed = method in ("PUT", "POST") and routes.is_streamed(path)
        route, limit = (self.body_limits.for_path(path) if self.body_limits is not None
                        else (path, self.max_body_size))
        environ[BODY_LIMIT] = limit
        if not streamed and _declared_length(environ) > limit:  # uploads: the spooler checks
            status, headers, body = _raw_error(
                413, f"request body is larger than {limit} bytes, the limit for {route}")
            start_response(status, finish(status, [*headers, ("Connection", "close")]))
            return body
        if streamed:
            hide_body(environ)
        elif unsized_body(environ):
            # chunked (no Content-Length): read here, up to the limit and one byte more
            problem = read_unsized_body(environ, limit, route)
            if problem is not None:
                status, headers, body = problem
                start_response(status, finish(status, headers))
                return body
        if method in ("GET", "HEAD") or streamed:
            # reads never retry, nor do artifact uploads: stream straight through
            def start(status, headers, exc_info=None):
                if streamed and int(status.split(" ", 1)[0]) >= 400:
                    headers = [*headers, ("Connection", "close")]  # the body may be unread
                return start_response(status, finish(status, headers), exc_info)
            return self.app(environ, start)
        status, headers, body = self._call_with_retries(environ)
        start_response(status, finish(status, headers))
        return body

    def _call_with_retries(self, environ):
        raw = environ.get(REQUEST_BODY)  # a chunked body, read already (read_unsized_body)
        if raw is None:
            length = environ.get("CONTENT_LENGTH") or "0"
            try:
                length_value = int(length)
            except ValueError:
                return _raw_error(400, "invalid Content-Length")
            try:
                raw = environ["wsgi.input"].read(length_value) if length_value else b""
            except TimeoutError:
                status, headers, body = _raw_error(408, body_timed_out().message)
                return status, [*headers, ("Connection", "close")], body
        # Bodies here are JSON whatever the client calls them (spec 1), decoded by the
        # handler (schemas.parse_json). Hide the type from Pecan and webob: they parse form
        # types (a multipart type without a boundary was a 500) and Pecan decodes JSON types
        # a second time into keyword arguments (non-UTF-8 bytes were an opaque 400).
        environ["CONTENT_TYPE"] = "application/octet-stream"
        environ[REQUEST_BODY] = raw  # the handler's body (Resource._body), read once here
        for attempt in range(self.retries + 1):
            environ["wsgi.input"] = io.BytesIO(raw)
            environ["CONTENT_LENGTH"] = str(len(raw))
            captured: dict = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers
                return lambda data: None

            chunks = self.app(environ, capture)
            try:
                body = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close:
                    close()
            retry = any(k == RETRY_HEADER for k, _ in captured["headers"])
            if not retry or attempt == self.retries:
                return captured["status"], captured["headers"], [body]
            time.sleep(0.01 * (2 ** attempt))
        raise AssertionError("unreachable")


def unsized_body(environ) -> bool:
    """The request has a body of no declared length: sent chunked (`Transfer-Encoding`, which
    gunicorn decodes and ends: `wsgi.input_terminated`). Without a Content-Length or a
    Transfer-Encoding a request has no body (RFC 9112 6.3)."""
    if (environ.get("CONTENT_LENGTH") or "").strip():
        return False
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


UNSIZED_READ = 1 << 20  # bytes asked of wsgi.input at a time for a chunked body


def read_unsized_body(environ, limit: int, route: str):
    """Read a chunked body whole, never more than `limit` + 1 bytes, and put it where a body
    with a Content-Length would be (wsgi.input, CONTENT_LENGTH, REQUEST_BODY): None. Over the
    limit, cut short, or timed out: the (status, headers, body) to answer instead."""
    stream, parts, size = environ["wsgi.input"], [], 0
    try:
        while size <= limit:
            chunk = stream.read(min(UNSIZED_READ, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except TimeoutError:
        return _closing_error(408, body_timed_out().message)
    except Exception as exc:  # gunicorn's NoMoreData, InvalidChunkSize...: client gone or bad
        log.info("chunked request body unreadable: %s", exc)
        return _closing_error(400, "request body ended early or is not valid chunked "
                                   "transfer coding")
    if size > limit:
        return _closing_error(
            413, f"request body is larger than {limit} bytes, the limit for {route}")
    raw = b"".join(parts)
    del parts
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    environ[REQUEST_BODY] = raw
    return None


def _closing_error(status: int, message: str):
    """An error answered before the body was read whole: the connection cannot be reused."""
    status_line, headers, body = _raw_error(status, message)
    return status_line, [*headers, ("Connection", "close")], body


def bound_client_io(environ, timeout: float | None) -> None:
    """A client silent for `timeout` seconds while sending its body (or reading the response)
    fails the read (408, streams.body_timed_out) or the write instead of holding a worker
    thread forever. gunicorn hands the connection's socket over as `gunicorn.socket` and puts
    it back to blocking (or non-blocking, for keep-alive) itself between requests."""
    sock = environ.get("gunicorn.socket")
    if timeout and sock is not None and hasattr(sock, "settimeout"):
        sock.settimeout(timeout)


def url_problem(path: str, query: str) -> str | None:
    """Why the URL cannot be served, or None. The path and query must decode as UTF-8 and
    hold no NUL: no column can store a NUL (PostgreSQL refuses it even in a WHERE clause)."""
    try:
        decoded_path = path.encode("latin-1").decode("utf-8")  # PEP 3333: bytes as latin-1
        decoded_query = unquote_to_bytes(query).decode("utf-8")
    except UnicodeError:
        return "request URL is not valid UTF-8"
    if "\x00" in decoded_path or "\x00" in decoded_query:
        return "request URL must not contain NUL characters"
    return None


BODY_LIMIT = "paddles.body_limit"  # the route's largest body, for handlers that stream it
REQUEST_BODY = "paddles.request_body"  # a buffered request's body (WireMiddleware)


def _declared_length(environ) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # an invalid Content-Length is answered later, as a 400


REQUEST_ID_KEY = "paddles.request_id"
PRINCIPAL_KEY = "paddles.principal"  # the request's API token (paddles/auth.py)
# a client's X-Request-ID is kept when it looks like an id (it goes into every log line)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_of(environ) -> str:
    given = environ.get("HTTP_X_REQUEST_ID") or ""
    # 32 random hex digits, as uuid4().hex gave, without building a UUID
    return given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


class RequestObserver:
    """The outermost WSGI layer: one access-log line and the request metrics per request.

    Timed from arrival to the end of the response body (the server closes the body), so a
    streamed download or export counts its whole transfer. Labelled by route template
    (routes.route_template), never by raw path.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        environ[REQUEST_ID_KEY] = request_id_of(environ)
        seen: dict = {}

        def start(status, headers, exc_info=None):
            seen["status"] = status
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            seen.setdefault("status", "500 Internal Server Error")
            _record(environ, seen, started)
            raise
        return _ObservedBody(body, lambda: _record(environ, seen, started))


class _ObservedBody:
    def __init__(self, body, on_close):
        self._body = body
        self._on_close = on_close

    def __iter__(self):
        return iter(self._body)

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


def _record(environ, seen, started) -> None:
    try:
        seconds = time.perf_counter() - started
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO") or "/"
        status = int(seen.get("status", "500").split(" ", 1)[0])
        route = metrics.route_template(path)
        metrics.observe(method, route, status, seconds)
        principal = environ.get(PRINCIPAL_KEY)
        logs.access(method, route, path, status, seconds * 1000, environ[REQUEST_ID_KEY],
                    environ.get("REMOTE_ADDR"), getattr(principal, "name", None))
    except Exception:  # observing must never break a response
        log.exception("recording request metrics failed")


def _raw_error(status: int, message: str):
    resp = error_response(status, message)
    return resp.status, list(resp.headerlist), [resp.body]
