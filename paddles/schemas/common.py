"""What every resource's validation shares: JSON decoding, field kinds and their checks,
query parameters, and the JSON Schema of a field table.

Field tables (one per resource, beside its parsers) are the single description of each
body; `json_schema()` turns them into the JSON Schemas the OpenAPI document publishes. A
failure raises InvalidRequest (400).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from typing import Any
from collections.abc import Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

import orjson

from ..errors import InvalidRequest
from ..jsontext import may_hold_long_integer
from ..models.statuses import JOB_STATUS_VALUES

BAD_JSON = "could not decode JSON body"
DATE_FORMAT_MSG = "date format must match %Y-%m-%d"
MAX_JSON_DEPTH = 64


@dataclasses.dataclass(frozen=True)
class Field:
    kind: str  # str, text, int, bool, json, object, status, datetime, time, number
    max_length: int | None = None


def stored(attribute: Any) -> Field:
    """A string field of at most as many characters as the model column it is stored in
    holds (its String(n)): the length is stated once, on the model."""
    return Field("str", attribute.expression.type.length)


TEXT, INT, BOOL, JSONF = Field("text"), Field("int"), Field("bool"), Field("json")


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
    # every level below the top opens with a bracket: few brackets, no walk
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


_UNDECIDED = object()


def _orjson_loads(raw: bytes) -> Any:
    """The body decoded by orjson, which is several times faster than the stdlib and refuses
    the same things (NaN, Infinity, 1e400, lone surrogates); `_UNDECIDED` when the stdlib
    must decide: a body orjson refuses (it is also refused there, or it is not UTF-8 but
    UTF-16 or 32, which the stdlib reads), or one with integers orjson would not keep
    exactly."""
    if may_hold_long_integer(raw):  # an integer orjson would turn into a float
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
    cannot store it in text or JSONB). orjson writes a NUL as the escape \\u0000: a value
    whose encoding has none has no NUL, found in a tenth of the time of the walk, which
    decides the rest (a backslash followed by u0000, integers orjson cannot encode)."""
    if isinstance(value, str):
        return "\x00" in value
    try:
        if b"\\u0000" not in orjson.dumps(value):
            return False
    except orjson.JSONEncodeError:
        pass
    return any(isinstance(item, str) and "\x00" in item for item in walk_json(value))


def check_int64_json(key: str, value: Any) -> Any:
    """A JSON value served by re-encoding it (events): its integers must fit 64 bits."""
    for item in walk_json(value):
        if isinstance(item, int) and not -2**63 <= item < 2**64:
            raise InvalidRequest(f"{key} has an integer beyond 64 bits")
    return value


def _depth(value: Any) -> int:
    """Levels of arrays and objects nested in a value, counted up to MAX_JSON_DEPTH + 1."""
    depth, level = 0, [value]
    while depth <= MAX_JSON_DEPTH:
        containers = [item for item in level if isinstance(item, (dict, list))]
        if not containers:
            break
        depth += 1
        level = [child for item in containers
                 for child in (item.values() if isinstance(item, dict) else item)]
    return depth


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


def check_name(key: str, value: Any, max_length: int | None) -> str:
    """A name that is a path segment of its own URL and of hrefs, log paths and export file
    names (run names, job ids, node names): no `/` or `\\`, not `.` or `..`, no control
    characters. Anything else could not be addressed again, or would walk up a path."""
    value = check_string(key, value, max_length)
    if "/" in value or "\\" in value:
        raise InvalidRequest(f"{key} must not contain '/' or '\\'")
    if value in (".", ".."):
        raise InvalidRequest(f"{key} must not be '.' or '..'")
    if _CONTROL.search(value):
        raise InvalidRequest(f"{key} must not contain control characters")
    return value


_CONTROL = re.compile("[\x00-\x1f\x7f]")


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
                    tzinfo=dt.UTC)
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
        return when.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidRequest(f"{key} is out of range") from None


END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


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
                parsed = parsed.replace(tzinfo=dt.UTC)
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
    today = today or dt.datetime.now(dt.UTC).date()
    if text == "today":
        day = today
    elif text == "yesterday":
        day = today - dt.timedelta(days=1)
    else:
        try:
            day = dt.datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            raise InvalidRequest(DATE_FORMAT_MSG) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


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


ANY_STRING = Field("str")
INT_DIGITS = re.compile(r"[0-9]+")


def known_fields(body: Mapping[str, Any], table: Mapping[str, Field],
           null_is_absent: Iterable[str] = ()) -> dict[str, Any]:
    """The body's keys that the table knows, converted; the rest silently dropped."""
    clean: dict[str, Any] = {}
    for key, value in body.items():
        field = table.get(key)
        if field is None or (value is None and key in null_is_absent):
            continue
        clean[key] = convert(key, field, value)
    return clean


# ---- JSON Schema for OpenAPI ----------------------------------------------------------------

# Patterns are written to mean the same in ECMA 262 (JSON Schema's dialect) and Python's re
# (the server's): no `\s`, `\d`, `\w` or `.`, and `$` only at the end (see
# schemas.validation). White space is Python's (str.isspace(), str.strip(), re's `\s`)
# spelled out: ECMA 262's `\s` has U+FEFF and lacks U+001C-U+001F and U+0085.
WHITE_SPACE = ("\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f"
               "\\u3000")
# a string with a NUL, which PostgreSQL can store in neither text nor JSONB
NUL = {"type": "string", "pattern": "\\x00"}

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
