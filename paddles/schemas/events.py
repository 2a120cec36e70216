"""Event queries, message events and webhook subscriptions (extras 3)."""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterable

from ..errors import InvalidRequest, NotFound
from ..models import Job
from ..models.events import DELIVERY_STATUS_VALUES, EVENT_TYPES, VERBOSITY_VALUES
from ..models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from .common import (BAD_JSON, INT_DIGITS, JSONF, NUL, TEXT, WHITE_SPACE, check_int64_json,
                     check_string, convert, parse_object, stored)
from .validation import BodySchema


DEFAULT_EVENT_PAGE = 100
MAX_EVENT_PAGE = 1000
MAX_EVENT_ID = 2**63 - 1
_GLOB = re.compile(r"[A-Za-z0-9_.*?\-]{1,64}")
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
    MESSAGE_BODY.check(body)
    job = body.get("job")
    return {"message": body["message"], "topic": body.get("topic"), "data": body.get("data"),
            "run_name": body.get("run"),
            "job_id": convert("job", JOB_ID, job) if job is not None else None,
            "username": body.get("username")}


def parse_subscription_body(raw: bytes, *, partial: bool) -> dict[str, Any]:
    """POST /subscriptions/ (url required) and PUT /subscriptions/ID/ (any subset)."""
    body = parse_object(raw)
    (SUBSCRIPTION_CHANGE if partial else SUBSCRIPTION_BODY).check(body)
    out = {key: body[key] for key in ("url", "verbosity", "compare", "enabled", "secret")
           if key in body}
    if "description" in body:  # a number is kept as its text
        out["description"] = convert("description", TEXT, body["description"])
    if "types" in body:  # an item may hold several types, comma-separated
        out["types"] = parse_type_globs(body["types"])
    if "criteria" in body:  # null, false, 0, "" and [] are no criteria
        out["criteria"] = dict(body["criteria"] or {})
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
# ---- request bodies: the JSON Schemas the OpenAPI document publishes and the server checks
# (validation.BodySchema); `x-message` is the 400 message of each failure

JOB_ID = stored(Job.job_id)


def _string(key: str, *, types: tuple[str, ...] = ("string", "null"), **keywords: Any) -> dict:
    """A string field (or as `types` says) without NUL, then `keywords` in order, with the
    messages the server answers: maxLength, minLength, and pattern (its message given as
    `message`)."""
    message = keywords.pop("message", None)
    schema: dict[str, Any] = {"type": list(types), "not": NUL, **keywords}
    messages = {"type": f"{key} must be a string", "not": f"{key} must not contain NUL characters"}
    if "maxLength" in keywords:
        messages["maxLength"] = f"{key} is longer than {keywords['maxLength']} characters"
    if "minLength" in keywords:
        messages["minLength"] = f"{key} must be at least {keywords['minLength']} characters"
    if "pattern" in keywords:
        messages["pattern"] = message
    schema["x-message"] = messages
    return schema


def _json(key: str, value: Any) -> Any:
    """What a message's `message` and `data` must be beyond their schema: no NUL character in
    any string or key, and integers within 64 bits (events are served by re-encoding them)."""
    return check_int64_json(key, convert(key, JSONF, value))


# the top level of a body: parse_object has answered one that is no object
_BODY_MESSAGES = {"type": BAD_JSON, "additionalProperties": "unknown key: {name}",
                  "required": "could not find required key: '{name}'"}
TOPIC_PATTERN = "^[A-Za-z0-9_\\-]+(\\.[A-Za-z0-9_\\-]+)*$"
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["message"],
    "properties": {
        "message": {"not": {"type": "null"},
                    "description": "any JSON value but null; no NUL character in any string "
                                   "or key, integers within 64 bits",
                    "x-message": "could not find required key: 'message'"},
        "topic": {**_string("topic", maxLength=128, pattern=TOPIC_PATTERN,
                            message="topic must be dot-separated words (letters, digits, _ "
                                    "and -)"),
                  "description": "appended to <prefix>.message"},
        "data": {"type": ["object", "null"],
                 "propertyNames": {"not": {"enum": ["message", "run", "job"]}},
                 "description": "added to the event's data; no NUL character in any string "
                                "or key, integers within 64 bits",
                 "x-message": {"type": "data must be an object",
                               "propertyNames": "data must not repeat message, run or job"}},
        "run": _string("run", maxLength=512),
        "job": {**_string("job", types=("string", "number", "null"),
                          maxLength=JOB_ID.max_length),
                "description": "a number is taken as its text, which must fit too"},
        "username": _string("username", maxLength=128),
    },
    # a job (not null) needs its run (not null)
    "if": {"required": ["job"], "properties": {"job": {"not": {"type": "null"}}}},
    "then": {"required": ["run"], "properties": {"run": {"type": "string"}},
             "x-message": "job needs run"},
    "x-message": _BODY_MESSAGES,
}
MESSAGE_BODY = BodySchema(MESSAGE_SCHEMA, {"message": lambda value: _json("message", value),
                                           "data": lambda value: _json("data", value),
                                           "job": lambda value: convert("job", JOB_ID, value)})

# a glob: one or more characters of event types and * ?
_GLOB_PATTERN = "[A-Za-z0-9_.*?\\-]{1,64}"
_SPACES = f"[{WHITE_SPACE}]*"
# an item of `types`: globs separated by commas, each with white space around it, or none
_PIECE = f"{_SPACES}(?:{_GLOB_PATTERN}{_SPACES})?"
TYPES_ITEM_PATTERN = f"^{_PIECE}(?:,{_PIECE})*$"
_CRITERION = {"type": "string", "minLength": 1, "maxLength": 512, "not": NUL}


def _criterion(key: str) -> dict:
    return {"anyOf": [_CRITERION, {"type": "array", "minItems": 1, "items": _CRITERION}],
            "x-message": f"criteria.{key} must be a string or a list of strings"}


_STATUSES = list(CRITERIA_STATUSES)
SUBSCRIPTION_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "properties": {
        "url": {"not": {"enum": [None, ""]}, "type": "string",
                "allOf": [{"not": NUL, "x-message": "url must not contain NUL characters"}],
                "maxLength": 2048,
                "pattern": f"^https?://[^{WHITE_SPACE}/?#]+[^{WHITE_SPACE}]*$",
                "x-message": {"not": "could not find required key: 'url'",
                              "type": "url must be a string",
                              "maxLength": "url is longer than 2048 characters",
                              "pattern": "url must be an http:// or https:// URL"}},
        "description": _string("description", types=("string", "number", "null")),
        "types": {"type": "array", "minItems": 1,
                  "items": {"type": "string", "pattern": TYPES_ITEM_PATTERN,
                            "x-message": {
                                "type": "types must be a non-empty list of event types or "
                                        "globs",
                                "pattern": "type must be an event type or a glob such as "
                                           "job.*"}},
                  "default": ["*"],
                  "description": "event types or globs such as job.*; an item may hold "
                                 "several, comma-separated",
                  "x-message": "types must be a non-empty list of event types or globs"},
        "criteria": {
            "anyOf": [{"type": "object"}, {"enum": [None, False, 0, "", []]}],
            "properties": {
                "status": {"allOf": [_criterion("status"), {
                    "anyOf": [{"enum": _STATUSES},
                              {"type": "array", "items": {"enum": _STATUSES}}],
                    "x-message": "criteria.status values must be job or run statuses: "
                                 + ", ".join(CRITERIA_STATUSES)}]},
                **{key: _criterion(key) for key in CRITERIA_GLOB_KEYS}},
            "additionalProperties": False,
            "description": "all must hold; null, false, 0, \"\" and [] are no criteria",
            "x-message": {"anyOf": "criteria must be an object",
                          "additionalProperties": "unknown criteria key: {name} (known: "
                                                  "status, " + ", ".join(CRITERIA_GLOB_KEYS)
                                                  + ")"}},
        "verbosity": {"enum": list(VERBOSITIES), "default": "status",
                      "x-message": "verbosity must be one of " + ", ".join(VERBOSITIES)},
        "compare": {"type": "boolean", "default": False,
                    "x-message": "compare must be a boolean"},
        "enabled": {"type": "boolean", "default": True,
                    "x-message": "enabled must be a boolean"},
        "secret": {**_string("secret", types=("string",), maxLength=256, minLength=16),
                   "description": "HMAC key; generated (and shown once) when not given"},
    },
    "x-message": _BODY_MESSAGES,
}
# POST: a new subscription needs its url
NEW_SUBSCRIPTION_SCHEMA: dict[str, Any] = {**SUBSCRIPTION_SCHEMA, "required": ["url"]}
SUBSCRIPTION_BODY = BodySchema(NEW_SUBSCRIPTION_SCHEMA)
SUBSCRIPTION_CHANGE = BodySchema(SUBSCRIPTION_SCHEMA)
