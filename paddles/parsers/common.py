"""What the parsers produce."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

KINDS = ("subunit", "junit", "dstat", "log", "binary")
PARSED_KINDS = ("subunit", "junit", "dstat")
DETAIL_LIMIT = 64 * 1024  # characters kept per attachment (traceback, captured output)


@dataclasses.dataclass
class ParsedTest:
    test_id: str
    status: str  # pass | fail | skip | error | xfail | uxsuccess
    start: dt.datetime | None = None
    stop: dt.datetime | None = None
    duration: float | None = None
    worker: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    message: str | None = None
    details: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Timeline:
    columns: list[str]
    rows: list[list[Any]]


@dataclasses.dataclass
class ParseResult:
    tests: list[ParsedTest] = dataclasses.field(default_factory=list)
    timeline: Timeline | None = None
    error: str | None = None  # set when the file could not be (fully) parsed


def clip(text: str | None, limit: int = DETAIL_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters not kept]"


def summary_line(text: str | None, limit: int = 1000) -> str | None:
    """The line that says what happened: the last non-blank line of a traceback."""
    if not text:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else None


def duration_between(start: dt.datetime | None, stop: dt.datetime | None) -> float | None:
    if start is None or stop is None:
        return None
    return max((stop - start).total_seconds(), 0.0)
