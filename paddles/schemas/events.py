"""Event queries, message events and webhook subscriptions (extras 3)."""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterable

from ..errors import InvalidRequest, NotFound
from ..models import Job
from ..models.events import DELIVERY_STATUS_VALUES, EVENT_TYPES, VERBOSITY_VALUES
from ..models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from .common import (INT_DIGITS, JSONF, TEXT, check_int64_json, check_string, convert,
                     parse_object, require_key, stored)


DEFAULT_EVENT_PAGE = 100
MAX_EVENT_PAGE = 1000
MAX_EVENT_ID = 2**63 - 1
_GLOB = re.compile(r"[A-Za-z0-9_.*?\-]{1,64}")
_TOPIC_SUFFIX = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
CRITERIA_GLOB_KEYS = ("run", "suite", "branch", "user", "machine_type")
VERBOSITIES = VERBOSITY_VALUES
DELIVERY_STATUSES = DELIVERY_STATUS_VALUES
CRITERIA_STATUSES = tuple(dict.fromkeys(JOB_STATUS_VALUES + RUN_STATUS_VALUES))


def parse_event_id(name: str, text: str | None, default: int | None = 0) -> int | None:
    """A non-negative event id (`since`, `Last-Event-ID`); empty means `default`."""
    if text is None or text.strip() == "":
        return default
    if not INT_DIGITS.fullmatch(text.strip()) or int(text) > MAX_EVENT_ID:
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return int(text)


def parse_type_globs(values: Iterable[str]) -> list[str]:
    """`type=job.*&type=run.status` or `type=job.*,run.status`."""
    globs = [g.strip() for value in values for g in value.split(",") if g.strip()]
    for glob in globs:
        if not _GLOB.fullmatch(glob):
            raise InvalidRequest("type must be an event type or a glob such as job.*")
    return globs


def _getall(params, key: str) -> list[str]:
    getall = getattr(params, "getall", None)
    if getall is not None:
        return list(getall(key))
    value = params.get(key)
    return [] if value is None else [value]


def parse_event_query(params, *, last_event_id: str | None = None) -> dict[str, Any]:
    """GET /events/ and /events/stream: since (or Last-Event-ID), type, run, job, limit."""
    out: dict[str, Any] = {"types": parse_type_globs(_getall(params, "type"))}
    since = parse_event_id("since", params.get("since"), None)
    resumed = parse_event_id("Last-Event-ID", last_event_id, None)
    out["since"] = resumed if resumed is not None else since  # a reconnect resumes
    for key, name, length in (("run", "run_name", 512), ("job", "job_id", 32)):
        value = params.get(key)
        out[name] = check_string(key, value, length) if value else None
    limit = params.get("limit")
    if limit in (None, ""):
        out["limit"] = DEFAULT_EVENT_PAGE
    elif not INT_DIGITS.fullmatch(limit.strip()) or int(limit) < 1:
        raise InvalidRequest("limit must be a positive integer")
    else:
        out["limit"] = min(int(limit), MAX_EVENT_PAGE)
    return out


def parse_message_body(raw: bytes) -> dict[str, Any]:
    """POST /events/: {"message": ..., "topic", "run", "job", "username", "data"}."""
    body = parse_object(raw)
    unknown = set(body) - {"message", "topic", "run", "job", "username", "data"}
    if unknown:
        raise InvalidRequest(f"unknown key: {sorted(unknown)[0]}")
    if body.get("message") is None:
        raise InvalidRequest("could not find required key: 'message'")
    message = check_int64_json("message", convert("message", JSONF, body["message"]))
    topic = body.get("topic")
    if topic is not None:
        topic = check_string("topic", topic, 128)
        if not _TOPIC_SUFFIX.fullmatch(topic):
            raise InvalidRequest("topic must be dot-separated words (letters, digits, _ and -)")
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise InvalidRequest("data must be an object")
    if data is not None:
        check_int64_json("data", convert("data", JSONF, data))
        if set(data) & {"message", "run", "job"}:
            raise InvalidRequest("data must not repeat message, run or job")
    run = body.get("run")
    job = body.get("job")
    if job is not None and run is None:
        raise InvalidRequest("job needs run")
    return {"message": message, "topic": topic, "data": data,
            "run_name": check_string("run", run, 512) if run is not None else None,
            "job_id": convert("job", stored(Job.job_id), job) if job is not None else None,
            "username": check_string("username", body["username"], 128)
            if body.get("username") is not None else None}


def _check_globs(key: str, value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or \
            not all(isinstance(v, str) and v and "\x00" not in v and len(v) <= 512
                    for v in items):
        raise InvalidRequest(f"criteria.{key} must be a string or a list of strings")
    return value


def _parse_criteria(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("criteria must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "status":
            _check_globs(key, item)
            for status in [item] if isinstance(item, str) else item:
                if status not in CRITERIA_STATUSES:
                    raise InvalidRequest("criteria.status values must be job or run statuses: "
                                         + ", ".join(CRITERIA_STATUSES))
            out[key] = item
        elif key in CRITERIA_GLOB_KEYS:
            out[key] = _check_globs(key, item)
        else:
            raise InvalidRequest(f"unknown criteria key: {key} (known: status, "
                                 + ", ".join(CRITERIA_GLOB_KEYS) + ")")
    return out


def parse_subscription_body(raw: bytes, *, partial: bool) -> dict[str, Any]:
    """POST /subscriptions/ (url required) and PUT /subscriptions/ID/ (any subset)."""
    body = parse_object(raw)
    unknown = set(body) - set(SUBSCRIPTION_SCHEMA["properties"])
    if unknown:
        raise InvalidRequest(f"unknown key: {sorted(unknown)[0]}")
    out: dict[str, Any] = {}
    if not partial or "url" in body:
        url = check_string("url", require_key(body, "url"), 2048)
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url):
            raise InvalidRequest("url must be an http:// or https:// URL")
        out["url"] = url
    if "description" in body:
        out["description"] = convert("description", TEXT, body["description"])
    if "types" in body:
        types = body["types"]
        if not isinstance(types, list) or not types or \
                not all(isinstance(t, str) for t in types):
            raise InvalidRequest("types must be a non-empty list of event types or globs")
        out["types"] = parse_type_globs(types)
    if "criteria" in body:
        out["criteria"] = _parse_criteria(body["criteria"] or {})
    if "verbosity" in body:
        if body["verbosity"] not in VERBOSITIES:
            raise InvalidRequest("verbosity must be one of " + ", ".join(VERBOSITIES))
        out["verbosity"] = body["verbosity"]
    for key in ("compare", "enabled"):
        if key in body:
            if not isinstance(body[key], bool):
                raise InvalidRequest(f"{key} must be a boolean")
            out[key] = body[key]
    if "secret" in body:
        secret = check_string("secret", body["secret"], 256)
        if len(secret) < 16:
            raise InvalidRequest("secret must be at least 16 characters")
        out["secret"] = secret
    return out


def parse_subscription_id(text: str) -> int:
    if not INT_DIGITS.fullmatch(text) or int(text) > 2**31 - 1:
        raise NotFound("subscription not found")
    return int(text)


def parse_delivery_query(params) -> dict[str, Any]:
    status = params.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidRequest("status must be one of " + ", ".join(DELIVERY_STATUSES))
    before = parse_event_id("before", params.get("before"), None)
    limit = params.get("limit")
    if limit in (None, ""):
        limit = DEFAULT_EVENT_PAGE
    elif not INT_DIGITS.fullmatch(limit.strip()) or int(limit) < 1:
        raise InvalidRequest("limit must be a positive integer")
    return {"status": status, "before": before, "limit": min(int(limit), MAX_EVENT_PAGE)}


EVENT_SCHEMA = {"type": "object", "properties": {
    "id": {"type": "integer"}, "uuid": {"type": "string"},
    "time": {"type": "string", "example": "2024-01-15 20:00:03.123456"},
    "topic": {"type": "string", "example": "org.paddles.job"},
    "type": {"enum": list(EVENT_TYPES)}, "subject": {"type": "string"},
    "username": {"type": ["string", "null"]}, "run": {"type": ["string", "null"]},
    "job": {"type": ["string", "null"]}, "data": {"type": "object"}}}
MESSAGE_SCHEMA = {"type": "object", "required": ["message"], "additionalProperties": False,
                  "properties": {
                      "message": {"description": "any JSON value"},
                      "topic": {"type": "string", "description": "appended to <prefix>.message"},
                      "run": {"type": "string", "maxLength": 512},
                      "job": {"type": "string", "maxLength": 32},
                      "username": {"type": "string", "maxLength": 128},
                      "data": {"type": "object"}}}
_STRINGS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
SUBSCRIPTION_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "url": {"type": "string", "format": "uri", "maxLength": 2048},
    "description": {"type": ["string", "null"]},
    "types": {"type": "array", "items": {"type": "string"}, "default": ["*"]},
    "criteria": {"type": "object", "additionalProperties": False, "properties": {
        "status": _STRINGS, **{k: _STRINGS for k in CRITERIA_GLOB_KEYS}}},
    "verbosity": {"enum": list(VERBOSITIES), "default": "status"},
    "compare": {"type": "boolean", "default": False},
    "secret": {"type": "string", "minLength": 16, "maxLength": 256,
               "description": "HMAC key; generated (and shown once) when not given"},
    "enabled": {"type": "boolean", "default": True}}}
