"""Domain errors. Each carries the HTTP status and the exact message clients see."""
from __future__ import annotations


class PaddlesError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}


class InvalidRequest(PaddlesError):
    status = 400


class Forbidden(PaddlesError):
    status = 403


class NotFound(PaddlesError):
    status = 404


class MethodNotAllowed(PaddlesError):
    status = 405


class PayloadTooLarge(PaddlesError):
    status = 413


class Unavailable(PaddlesError):
    status = 503


class AlreadyExists(InvalidRequest):
    """Upstream answers duplicates with 400 and a message ending in 'already exists'."""


class RunNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class NodeNotFound(NotFound):
    pass


class QueueNotFound(InvalidRequest):
    """Upstream answers an unknown queue with 400, not 404 (spec 11)."""


class ArtifactNotFound(NotFound):
    pass


class RangeNotSatisfiable(PaddlesError):
    status = 416


class RequestTimeout(PaddlesError):
    """The client stopped sending the request body for longer than client_timeout."""

    status = 408


class InsufficientStorage(PaddlesError):
    """The artifact store (or its spool) has no space left."""

    status = 507
