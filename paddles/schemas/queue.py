"""Queue bodies and parameters (spec 6.4, 11)."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from ..errors import InvalidRequest
from ..models import Queue
from .common import (ANY_STRING, BAD_JSON, Field, convert, known_fields, parse_json,
                     parse_object, require_key, stored)


QUEUE_FIELDS: dict[str, Field] = {
    "paused_by": stored(Queue.paused_by), "paused_since": Field("time"),
    "paused_until": Field("time"), "pause_duration": Field("number"),
}
QUEUE_NAME = stored(Queue.name)
MAX_PAUSE_SECONDS = 100 * 366 * 86400


def parse_queue_body(raw: bytes) -> tuple[str, dict[str, Any]]:
    """POST and PUT /queue/: the queue name, then the writable keys."""
    body = parse_object(raw)
    name = convert("queue", QUEUE_NAME, require_key(body, "queue"))
    fields = known_fields(body, QUEUE_FIELDS)
    duration = fields.get("pause_duration")
    if duration is not None and duration > MAX_PAUSE_SECONDS:
        raise InvalidRequest(f"pause_duration must be at most {MAX_PAUSE_SECONDS} seconds")
    return name, fields


def parse_queue_params(query: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """pop_queue, stats, queued_jobs: JSON-object body keys, overridden by the query string."""
    body = parse_json(raw, required=False)
    if body is not None and not isinstance(body, dict):
        raise InvalidRequest(BAD_JSON)
    merged = {**(body or {}), **query}
    out = {"queue": convert("queue", QUEUE_NAME, require_key(merged, "queue"))}
    for key in ("user", "run_name"):
        if merged.get(key) not in (None, ""):
            out[key] = convert(key, ANY_STRING, merged[key])
    return out
