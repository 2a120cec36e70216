"""Responses: JSON bodies, the JSON renderer, and the one mapping of exceptions to errors.

Every error a client sees is `{"message": ...}` with its status, built here: ErrorHook
(paddles/hooks.py) maps the exceptions a handler raises with `exception_response`, the
middleware (paddles/middleware.py) answers what it refuses before routing with
`raw_error`, and a failed COMMIT (DBSessionHook) or an auth lookup (paddles/auth.py) uses
`database_error_response`.
"""
from __future__ import annotations

import errno
import logging

import orjson
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from webob import Response
from webob.exc import HTTPException

from .errors import InsufficientStorage, PaddlesError

log = logging.getLogger(__name__)

# SQLSTATEs meaning "run the whole request again": serialization failure, deadlock
RETRYABLE_PGCODES = {"40001", "40P01"}
# set on a response the middleware should re-run the request for (it never goes out)
RETRY_HEADER = "X-Paddles-Retry"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL lock_timeout (settings.db_lock_timeout)


def json_response(status: int, body, headers=None) -> Response:
    resp = Response(status=status, body=orjson.dumps(body), content_type="application/json",
                    charset=None)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def error_response(status: int, message: str, headers=None) -> Response:
    return json_response(status, {"message": message}, headers)


def raw_error(status: int, message: str):
    """An error as WSGI parts, (status line, headers, body), for the middleware."""
    resp = error_response(status, message)
    return resp.status, list(resp.headerlist), [resp.body]


class OrjsonRenderer:
    """Pecan's 'json' renderer, replaced by orjson (faster, and it refuses NaN)."""

    def __init__(self, path, extra_vars):
        pass

    def render(self, template_path, namespace):
        return orjson.dumps(namespace)


def exception_response(exc: BaseException, method: str, path: str) -> Response:
    """The answer to an exception a request raised: a PaddlesError's own status, a webob
    HTTP exception's code (routing 404, RestController 405 with its Allow header), the
    database's and the disk's troubles as below, and a logged, generic 500 for the rest."""
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
        log.error("no space left on %s %s: %s", method, path, exc)
        return error_response(InsufficientStorage.status, NO_SPACE_MESSAGE)
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
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
    log.error("database error", exc_info=exc)
    return error_response(500, "internal server error")


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig or exc).strip().splitlines() or ["?"])[0]
