"""The one validation layer: request bodies and query parameters in, clean values out.

Field tables here are the single description of each body; `json_schema()` turns them into
the JSON Schemas the OpenAPI document publishes. A failure raises InvalidRequest (400).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

import orjson

from .errors import InvalidRequest, NotFound
from .models.artifacts import TEST_STATUS_VALUES
from .models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES

BAD_JSON = "could not decode JSON body"
DATE_FORMAT_MSG = "date format must match %Y-%m-%d"
MAX_JSON_DEPTH = 64


@dataclasses.dataclass(frozen=True)
class Field:
    kind: str  # str, text, int, bool, json, object, status, datetime, time, number
    max_length: int | None = None


def _s(n: int) -> Field:
    return Field("str", n)


TEXT, INT, BOOL, JSONF = Field("text"), Field("int"), Field("bool"), Field("json")

# Writable job keys in wire order (spec 6.2); job_id and updated are handled specially.
JOB_FIELDS: dict[str, Field] = {
    "archive_path": _s(512), "description": TEXT, "duration": INT, "email": _s(128),
    "failure_reason": TEXT, "flavor": _s(128), "job_id": _s(32), "kernel": JSONF,
    "last_in_suite": BOOL, "machine_type": _s(32), "name": _s(512), "nuke_on_error": BOOL,
    "os_type": _s(32), "os_version": _s(16), "overrides": JSONF, "owner": _s(128),
    "pid": _s(32), "roles": JSONF, "sentry_event": _s(128), "status": Field("status"),
    "success": BOOL, "branch": _s(128), "seed": INT, "sha1": _s(40), "subset": _s(32),
    "suite": _s(256), "suite_branch": _s(128), "suite_path": _s(256),
    "suite_relpath": _s(256), "suite_repo": _s(256), "suite_sha1": _s(40),
    "targets": Field("object"), "tasks": JSONF, "timestamp": Field("datetime"),
    "teuthology_branch": _s(64), "verbose": BOOL, "pcp_grafana_url": TEXT, "priority": INT,
    "user": _s(64), "queue": _s(32), "package_source": _s(32),
}
JOB_KEYS = tuple(JOB_FIELDS) + ("updated",)


# ---- bodies -------------------------------------------------------------------------------

def parse_json(raw: bytes, *, required: bool = True) -> Any:
    """Decode a body as JSON whatever its Content-Type; bound the nesting depth.

    Refused as undecodable (a 400 here, where they used to be a 500 later): invalid UTF-8,
    lone surrogates (`"\\ud800"`: no database or encoder takes them), NaN/Infinity, and
    numbers that overflow a double (`1e400`). Integers of any size are kept exactly (JSON
    columns store and serve the client's text).
    """
    if not raw or not raw.strip():
        if required:
            raise InvalidRequest(BAD_JSON)
        return None
    value = _orjson_loads(raw)
    if value is _UNDECIDED:
        try:
            value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            raise InvalidRequest(BAD_JSON) from None
        if _SURROGATE_ESCAPE.search(raw) and any(
                isinstance(item, str) and _SURROGATE.search(item)
                for item in walk_json(value)):
            raise InvalidRequest(BAD_JSON)
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


_UNDECIDED = object()
# 19 digits in a row may be an integer orjson would turn into a float (from 2**64 on)
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _orjson_loads(raw: bytes) -> Any:
    """The body decoded by orjson, which is several times faster than the stdlib and refuses
    the same things (NaN, Infinity, 1e400, lone surrogates); `_UNDECIDED` when the stdlib
    must decide: a body orjson refuses (it is also refused there, or it is not UTF-8 but
    UTF-16 or 32, which the stdlib reads), or one with integers orjson would not keep
    exactly."""
    if _LONG_DIGITS.search(raw):
        return _UNDECIDED
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _UNDECIDED


# a surrogate can only come in through a \\uD800-\\uDFFF escape (paired ones decode to one
# character); the walk runs only for bodies that have such an escape
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    """NaN and +/-Infinity are not JSON; PostgreSQL refuses them and the renderer cannot emit
    them, so they are a decode error."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} overflows a double")
    return value


def walk_json(value: Any):
    """Every string, number, key and container in a decoded JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_nul(value: Any) -> bool:
    """True when a NUL character hides in any string or key of a JSON value (PostgreSQL
    cannot store it in text or JSONB)."""
    return any(isinstance(item, str) and "\x00" in item for item in walk_json(value))


def check_int64_json(key: str, value: Any) -> Any:
    """A JSON value served by re-encoding it (events): its integers must fit 64 bits."""
    for item in walk_json(value):
        if isinstance(item, int) and not -2**63 <= item < 2**64:
            raise InvalidRequest(f"{key} has an integer beyond 64 bits")
    return value


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        nxt: list = []
        for item in level:
            if isinstance(item, dict):
                nxt.extend(item.values())
            elif isinstance(item, list):
                nxt.extend(item)
        level = nxt if depth <= MAX_JSON_DEPTH else []
    return depth - 1 if depth else 0


def parse_object(raw: bytes, *, allow_empty: bool = True) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict) or (not allow_empty and not value):
        raise InvalidRequest(BAD_JSON)
    return value


def require_key(body: Mapping[str, Any], key: str) -> Any:
    value = body.get(key)
    if value is None or value == "":
        raise InvalidRequest(f"could not find required key: '{key}'")
    return value


def parse_run_name(name: str) -> str:
    """A run name taken from the URL where it creates the run (a job POST)."""
    return check_name("run name", name, 512)


def parse_run_body(raw: bytes) -> str:
    name = require_key(parse_object(raw), "name")
    return check_name("name", name, 512)


def check_name(key: str, value: Any, max_length: int | None) -> str:
    """A name that is a path segment of its own URL and of hrefs, log paths and export file
    names (run names, job ids, node names): no `/` or `\\`, not `.` or `..`, no control
    characters. Anything else could not be addressed again, or would walk up a path."""
    value = check_string(key, value, max_length)
    if "/" in value or "\\" in value:
        raise InvalidRequest(f"{key} must not contain '/' or '\\'")
    if value in (".", ".."):
        raise InvalidRequest(f"{key} must not be '.' or '..'")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidRequest(f"{key} must not contain control characters")
    return value


def parse_job_body(raw: bytes, *, timezone: str, allow_empty: bool = True) -> dict[str, Any]:
    """A job body reduced to known keys with wire types checked and converted."""
    body = parse_object(raw, allow_empty=allow_empty)
    clean: dict[str, Any] = {}
    for key, value in body.items():
        key = str(key).replace("-", "_")
        if key == "updated":
            clean[key] = None if value is None else parse_updated(value, timezone)
            continue
        field = JOB_FIELDS.get(key)
        if field is None:
            continue  # unknown keys are silently ignored
        clean[key] = convert(key, field, value)
    return clean


def convert(key: str, field: Field, value: Any) -> Any:
    if value is None:
        if field.kind == "status":
            raise InvalidRequest(status_message())
        return None
    kind = field.kind
    if kind in ("str", "text"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidRequest(f"{key} must be a string")
        return check_string(key, value if isinstance(value, str) else str(value),
                            field.max_length)
    if kind == "int":
        return check_int(key, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidRequest(f"{key} must be a boolean")
        return value
    if kind == "status":
        if value not in JOB_STATUS_VALUES:
            raise InvalidRequest(status_message())
        return value
    if kind == "datetime":
        return parse_timestamp(key, value)
    if kind == "time":
        return parse_time(key, value)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise InvalidRequest(f"{key} must be a number")
        return value
    if kind == "object" and not isinstance(value, dict):
        raise InvalidRequest(f"{key} must be an object or null")
    if _has_nul(value):
        raise InvalidRequest(f"{key} must not contain NUL characters")
    return value  # json, object: stored as sent


def status_message() -> str:
    return "Job status must be one of: " + ", ".join(JOB_STATUS_VALUES)


def check_string(key: str, value: Any, max_length: int | None) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{key} must be a string")
    if "\x00" in value:
        raise InvalidRequest(f"{key} must not contain NUL characters")
    if max_length is not None and len(value) > max_length:
        raise InvalidRequest(f"{key} is longer than {max_length} characters")
    return value


_INT_LIMIT = 2**63 - 1


def check_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"{key} must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{key} must be an integer")
        value = round(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or abs(value) > _INT_LIMIT:
        raise InvalidRequest(f"{key} must be an integer")
    if key == "priority" and abs(value) > 2**31 - 1:
        raise InvalidRequest("priority must be a 32-bit integer")
    return value


def parse_timestamp(key: str, value: Any) -> dt.datetime:
    """`timestamp` is `YYYY-MM-DD_HH:MM:SS`, stored as given (read as UTC)."""
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d_%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
            try:
                return dt.datetime.strptime(value.split(".")[0], fmt).replace(
                    tzinfo=dt.timezone.utc)
            except ValueError:
                continue
    raise InvalidRequest(f"{key} must be formatted as %Y-%m-%d_%H:%M:%S")


# date and time to the second, then optional fraction and offset: what fromisoformat may see
_UPDATED = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def parse_updated(value: Any, timezone: str) -> dt.datetime:
    """Client `updated`: `YYYY-MM-DD HH:MM:SS[.f]` or ISO 8601, in the configured zone.

    The fraction is dropped (spec 8.8); a bare date or a time without seconds is refused."""
    if isinstance(value, str) and _UPDATED.fullmatch(value.strip()):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            parsed = parsed.replace(microsecond=0)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
            return to_utc("updated", parsed)
    raise InvalidRequest("updated must be formatted as %Y-%m-%d %H:%M:%S")


def to_utc(key: str, when: dt.datetime) -> dt.datetime:
    """An aware time in UTC; one that UTC cannot hold (year 1 ahead of UTC, year 9999
    behind it) is a 400."""
    try:
        return when.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidRequest(f"{key} is out of range") from None


END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def next_day(day: dt.datetime) -> dt.datetime:
    """Midnight after `day`'s; the end of time after 9999-12-31 (half-open day ranges)."""
    try:
        return day + dt.timedelta(days=1)
    except OverflowError:
        return END_OF_TIME


def parse_time(key: str, value: Any) -> dt.datetime:
    """An instant as the wire renders it (`YYYY-MM-DD HH:MM:SS[.f]`) or ISO 8601; naive = UTC."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return to_utc(key, parsed)
    raise InvalidRequest(f"{key} must be formatted as %Y-%m-%d %H:%M:%S")


# ---- query parameters ---------------------------------------------------------------------

MAX_PAGE_ROWS = 2**62


def parse_paging(params: Mapping[str, str], default_count: int | None) -> tuple[int | None, int]:
    """`count` and `page`: non-negative integers; returns (limit, offset)."""
    try:
        count = int(params["count"]) if params.get("count", "") != "" else default_count
        page = int(params["page"]) if params.get("page", "") != "" else 1
    except ValueError:
        raise InvalidRequest("count and page must be integers") from None
    if (count is not None and count < 0) or page < 0:
        raise InvalidRequest("count and page must be integers")
    if count is None:
        return None, 0
    # Clamp to what LIMIT/OFFSET accept (64-bit) on every backend: beyond that the answer is
    # the same (all rows, or an empty page), and it must not be a 500.
    count = min(count, MAX_PAGE_ROWS)
    return count, min(count * (page - 1), MAX_PAGE_ROWS) if page > 1 else 0


def parse_day(text: str, *, today: dt.date | None = None) -> dt.datetime:
    """`YYYY-MM-DD` (single digits allowed), `today` or `yesterday`: that UTC midnight."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    if text == "today":
        day = today
    elif text == "yesterday":
        day = today - dt.timedelta(days=1)
    else:
        try:
            day = dt.datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            raise InvalidRequest(DATE_FORMAT_MSG) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def parse_fields(text: str | None, allowed: Iterable[str]) -> list[str] | None:
    """`fields=a,b`: names kept in order; `_private` names skipped; unknown -> 400."""
    if text is None:
        return None
    names = [n for n in text.strip(",").split(",") if n and not n.startswith("_")]
    allowed = set(allowed)
    for name in names:
        if name not in allowed:
            raise InvalidRequest("an invalid field was specified")
    return names


_TRUE = {"t", "true", "y", "yes", "on", "1"}
_FALSE = {"f", "false", "n", "no", "off", "0"}


def parse_bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidRequest(f"{name} must be a boolean")


# ---- nodes (spec 5, 6.3, 9) ------------------------------------------------------------------

# Updatable node keys (POST/PUT/lock bodies); vm_host is given as a node name.
NODE_FIELDS: dict[str, Field] = {
    "arch": _s(16), "description": TEXT, "os_type": _s(32), "os_version": _s(16),
    "is_vm": BOOL, "locked": BOOL, "locked_by": _s(64), "locked_since": Field("time"),
    "mac_address": _s(17), "machine_type": _s(32), "ssh_pub_key": TEXT, "up": BOOL,
    "vm_host": _s(256),
}
# `locked: null` is treated as absent (upstream crashes); is_vm has no null either.
_NODE_NULL_IS_ABSENT = ("locked", "is_vm")
LOCK_MANY_KEYS = ("count", "locked_by", "machine_type", "description")
UNLOCK_MANY_KEYS = ("names", "locked_by")
ANY_STRING = Field("str")
_INT_DIGITS = re.compile(r"[0-9]+")
MAX_LIMIT = 2**31 - 1
MAX_SINCE_DAYS = 100 * 366


def _known(body: Mapping[str, Any], table: Mapping[str, Field],
           null_is_absent: Iterable[str] = ()) -> dict[str, Any]:
    """The body's keys that the table knows, converted; the rest silently dropped."""
    clean: dict[str, Any] = {}
    for key, value in body.items():
        field = table.get(key)
        if field is None or (value is None and key in null_is_absent):
            continue
        clean[key] = convert(key, field, value)
    return clean


def parse_node_body(raw: bytes) -> dict[str, Any]:
    """PUT /nodes/NODE/ and /nodes/NODE/lock/: updatable keys; `name` is ignored."""
    return _known(parse_object(raw), NODE_FIELDS, _NODE_NULL_IS_ABSENT)


def parse_new_node_body(raw: bytes) -> tuple[str, dict[str, Any]]:
    """POST /nodes/: the required name, then the updatable keys."""
    body = parse_object(raw)
    name = check_name("name", require_key(body, "name"), 256)
    return name, _known(body, NODE_FIELDS, _NODE_NULL_IS_ABSENT)


def split_machine_types(value: str) -> list[str]:
    """`a|b` names several machine types."""
    return [part for part in value.split("|") if part]


def parse_lock_many_body(raw: bytes) -> dict[str, Any]:
    """POST /nodes/lock_many/: keyword arguments for services.nodes.lock_many."""
    body = parse_object(raw)
    if any(key not in body for key in LOCK_MANY_KEYS):
        raise InvalidRequest("must pass these fields: " + ", ".join(LOCK_MANY_KEYS))
    count = body["count"]
    if isinstance(count, float) and math.isfinite(count) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidRequest("count must be an integer")
    if count < 1:
        raise InvalidRequest("cannot lock less than 1 node")
    if not body["machine_type"]:
        raise InvalidRequest("must specify machine_type")
    machine_type = check_string("machine_type", body["machine_type"], None)
    if not body["locked_by"]:
        raise InvalidRequest("Cannot lock without specifying locked_by")
    out = {
        "count": count,
        "machine_types": split_machine_types(machine_type),
        "locked_by": convert("locked_by", NODE_FIELDS["locked_by"], body["locked_by"]),
        "description": convert("description", TEXT, body["description"]),
    }
    for key in ("os_type", "os_version", "arch"):  # filters: empty means "any"
        out[key] = convert(key, ANY_STRING, body.get(key)) or None
    return out


def parse_unlock_many_body(raw: bytes) -> tuple[list[str], str | None]:
    """POST /nodes/unlock_many/: exactly `names` and `locked_by`."""
    body = parse_object(raw)
    if set(body) != set(UNLOCK_MANY_KEYS):
        raise InvalidRequest("must pass these fields: " + ", ".join(UNLOCK_MANY_KEYS))
    names = body["names"]
    if not isinstance(names, list):
        raise InvalidRequest("'names' must be a list")
    if not all(isinstance(name, str) for name in names):
        raise InvalidRequest("'names' must be a list of strings")
    for name in names:  # a NUL reached PostgreSQL's IN (...) and was a 500
        check_string("names", name, None)
    return names, convert("locked_by", NODE_FIELDS["locked_by"], body["locked_by"])


def parse_node_query(params: Mapping[str, str]) -> dict[str, Any]:
    """GET /nodes/ filters: keyword arguments for services.nodes.list_nodes."""
    out: dict[str, Any] = {}
    for key in ("up", "locked"):
        if params.get(key):
            out[key] = parse_bool(key, params[key])
    if params.get("machine_type"):
        out["machine_types"] = split_machine_types(params["machine_type"])
    for key in ("locked_by", "os_type", "os_version", "arch"):
        if params.get(key):
            out[key] = params[key]
    count = params.get("count")
    if count:
        if not _INT_DIGITS.fullmatch(count):
            raise InvalidRequest("count must be an integer")
        out["limit"] = min(int(count), MAX_LIMIT)
    return out


def parse_since_days(text: str | None, default: int = 14) -> int:
    if text is None or text == "":
        return default
    if not _INT_DIGITS.fullmatch(text.strip()) or int(text) < 1:
        raise InvalidRequest("since_days must be a positive integer")
    return min(int(text), MAX_SINCE_DAYS)


# ---- queues (spec 6.4, 11) ---------------------------------------------------------------------

QUEUE_FIELDS: dict[str, Field] = {
    "paused_by": _s(64), "paused_since": Field("time"), "paused_until": Field("time"),
    "pause_duration": Field("number"),
}
QUEUE_NAME = _s(32)
MAX_PAUSE_SECONDS = 100 * 366 * 86400


def parse_queue_body(raw: bytes) -> tuple[str, dict[str, Any]]:
    """POST and PUT /queue/: the queue name, then the writable keys."""
    body = parse_object(raw)
    name = convert("queue", QUEUE_NAME, require_key(body, "queue"))
    fields = _known(body, QUEUE_FIELDS)
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


# ---- JSON Schema for OpenAPI ----------------------------------------------------------------

_KIND_SCHEMA: dict[str, Callable[[Field], dict]] = {
    "str": lambda f: {"type": ["string", "number", "null"], "maxLength": f.max_length},
    "text": lambda f: {"type": ["string", "null"]},
    "int": lambda f: {"type": ["integer", "null"]},
    "bool": lambda f: {"type": ["boolean", "null"]},
    "json": lambda f: {},
    "object": lambda f: {"type": ["object", "null"]},
    "status": lambda f: {"enum": list(JOB_STATUS_VALUES)},
    "datetime": lambda f: {"type": ["string", "null"], "example": "2024-01-15_20:00:03"},
    "time": lambda f: {"type": ["string", "null"], "example": "2024-01-15 20:00:03"},
    "number": lambda f: {"type": ["number", "null"]},
}


def json_schema(fields: Mapping[str, Field]) -> dict:
    props = {k: _KIND_SCHEMA[f.kind](f) for k, f in fields.items()}
    return {"type": "object", "properties": props, "additionalProperties": True}


# ---- artifacts ------------------------------------------------------------------------------

ARTIFACT_KINDS = ("subunit", "junit", "dstat", "log", "binary")
MAX_ARTIFACT_NAME_BYTES = 1024
_SEPARATORS = re.compile(r"[/\\]")


def parse_artifact_name(name: str | None) -> str:
    """An artifact PATH: relative, `/`-separated, no `.`/`..` segments, NUL or control chars."""
    if not name:
        raise InvalidRequest("artifact path is empty")
    if "\x00" in name:
        raise InvalidRequest("artifact path must not contain NUL")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("artifact path must not contain control characters")
    if name[0] in "/\\" or re.match(r"[A-Za-z]:[/\\]", name):
        raise InvalidRequest("artifact path must be relative")
    segments = _SEPARATORS.split(name)
    if any(s in (".", "..") for s in segments):
        raise InvalidRequest("artifact path must not contain '.' or '..' segments")
    if "" in segments:
        raise InvalidRequest("artifact path must not contain empty segments")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidRequest(f"artifact path is longer than {MAX_ARTIFACT_NAME_BYTES} bytes")
    return name


def parse_artifact_path(segments: Iterable[str]) -> str:
    return parse_artifact_name("/".join(segments))


_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+"
                         r"(\s*;[\x20-\x7e]*)?")


def parse_content_type(value: str | None) -> str | None:
    """An upload's Content-Type, stored and sent back as a header: a media type in printable
    ASCII (a control character in it made the download's response invalid)."""
    if value is None or value.strip() == "":
        return None
    if not _MEDIA_TYPE.fullmatch(value.strip()):
        raise InvalidRequest("Content-Type must be a media type such as text/plain")
    return value.strip()


def parse_artifact_kind(value: str | None) -> str | None:
    """`?kind=`: one of ARTIFACT_KINDS, or None to detect it from the content."""
    if value in (None, ""):
        return None
    if value not in ARTIFACT_KINDS:
        raise InvalidRequest("kind must be one of " + ", ".join(ARTIFACT_KINDS))
    return value


def parse_test_status(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in TEST_STATUS_VALUES:
        raise InvalidRequest("status must be one of " + ", ".join(TEST_STATUS_VALUES))
    return value


# ---- events and webhooks (extras 3) -------------------------------------------------------

EVENT_TYPES = ("run.created", "run.status", "run.deleted", "job.created", "job.updated",
               "job.status", "job.deleted", "node.created", "node.locked", "node.unlocked",
               "node.updated", "node.deleted", "artifact.created", "artifact.updated",
               "artifact.deleted", "message")
DEFAULT_EVENT_PAGE = 100
MAX_EVENT_PAGE = 1000
MAX_EVENT_ID = 2**63 - 1
_GLOB = re.compile(r"[A-Za-z0-9_.*?\-]{1,64}")
_TOPIC_SUFFIX = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
CRITERIA_GLOB_KEYS = ("run", "suite", "branch", "user", "machine_type")
VERBOSITIES = ("quiet", "status", "verbose")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
CRITERIA_STATUSES = tuple(dict.fromkeys(JOB_STATUS_VALUES + RUN_STATUS_VALUES))


def parse_event_id(name: str, text: str | None, default: int | None = 0) -> int | None:
    """A non-negative event id (`since`, `Last-Event-ID`); empty means `default`."""
    if text is None or text.strip() == "":
        return default
    if not _INT_DIGITS.fullmatch(text.strip()) or int(text) > MAX_EVENT_ID:
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
    elif not _INT_DIGITS.fullmatch(limit.strip()) or int(limit) < 1:
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
            "job_id": convert("job", _s(32), job) if job is not None else None,
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
    if not _INT_DIGITS.fullmatch(text) or int(text) > 2**31 - 1:
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
    elif not _INT_DIGITS.fullmatch(limit.strip()) or int(limit) < 1:
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
