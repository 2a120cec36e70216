"""The WSGI layers around Pecan: what happens to a request before routing and after the
response, without the database.

RequestObserver (outermost) gives each request an id and, when the body is done, one access
log line and the request metrics; WireMiddleware applies the wire rules of spec section 1:
slashes, OPTIONS and CORS, URLs that are not UTF-8, body limits per route (paddles/limits.py),
chunked and streamed bodies, client time-outs, and re-running a whole write the database
asked to retry (responses.RETRY_HEADER). AuthMiddleware (paddles/auth.py) sits inside them,
Pecan and its hooks (paddles/hooks.py) innermost.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from . import logs, metrics, routes
from .responses import RETRY_HEADER, raw_error
from .streams import body_timed_out

log = logging.getLogger(__name__)

CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, OPTIONS"),
    ("Access-Control-Allow-Headers", "origin, authorization, accept"),
]

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
            status, headers, body = raw_error(400, problem)
            start_response(status, finish(status, headers))
            return body
        # uploads whose body the app streams to disk: not buffered, not retried, hidden
        # from webob (`streamed` in the route table)
        streamed = method in ("PUT", "POST") and routes.is_streamed(path)
        route, limit = (self.body_limits.for_path(path) if self.body_limits is not None
                        else (path, self.max_body_size))
        environ[BODY_LIMIT] = limit
        if not streamed and _declared_length(environ) > limit:  # uploads: the spooler checks
            status, headers, body = raw_error(
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
                return raw_error(400, "invalid Content-Length")
            try:
                raw = environ["wsgi.input"].read(length_value) if length_value else b""
            except TimeoutError:
                status, headers, body = raw_error(408, body_timed_out().message)
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

            def capture(status, headers, exc_info=None, captured=captured):
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
    status_line, headers, body = raw_error(status, message)
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
