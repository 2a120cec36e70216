"""What every export writer shares: chunk size, content types, times, JSON, file names."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote

import orjson

CHUNK = 64 * 1024       # bytes gathered before a chunk is handed out

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8; header=present",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "junit.xml": "application/xml",
    "subunit": "application/vnd.subunit.v2",
    "tar.gz": "application/gzip",
}

# the end of a row stream, or "no row yet" (a sentinel no row equals)
NOTHING = object()


def iso_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a Z: `2024-01-15T20:00:03Z` (a fraction only when non-zero)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def dumps(value: Any) -> bytes:
    """Compact JSON; integers beyond 64 bits fall back to the stdlib, which writes them."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def safe_filename(text: str) -> str:
    """A file name any system accepts: letters, digits, `.`, `_` and `-` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".")
    return cleaned[:200] or "export"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII name and the exact one per RFC 6266 / RFC 5987."""
    return (f'attachment; filename="{safe_filename(filename)}"; '
            f"filename*=UTF-8''{quote(filename, safe='')}")
