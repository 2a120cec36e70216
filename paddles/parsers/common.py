"""What the parsers produce."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from ..models.artifacts import ARTIFACT_KINDS

KINDS = ARTIFACT_KINDS
PARSED_KINDS = ("subunit", "junit", "dstat")  # the kinds with a parser: a subset of KINDS
DETAIL_LIMIT = 64 * 1024  # characters kept per attachment (traceback, captured output)
WORKER_LIMIT = 64  # characters of a worker name (the test_cases.worker column)
# what no database column can hold: NUL (PostgreSQL refuses it in text and in jsonb) and lone
# surrogates (not encodable as UTF-8), both of which decoded attachments can carry
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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


def storable(text: str | None) -> str | None:
    """`text` with NUL and lone surrogates replaced by U+FFFD, so any backend can store it."""
    if text is None or _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def make_storable(result: ParseResult) -> None:
    """Every text a parser produced made storable (in place): names, messages, attachments,
    tags, timeline columns; a worker name longer than its column is dropped (the tag stays)."""
    for test in result.tests:
        test.test_id = storable(test.test_id)
        test.message = storable(test.message)
        worker = storable(test.worker)
        test.worker = worker if worker is None or len(worker) <= WORKER_LIMIT else None
        test.tags = [storable(tag) for tag in test.tags]
        test.details = {storable(k): storable(v) for k, v in test.details.items()}
    if result.timeline is not None:
        result.timeline.columns = [storable(c) if isinstance(c, str) else c
                                   for c in result.timeline.columns]
        result.timeline.rows = [[storable(v) if isinstance(v, str) else v for v in row]
                                for row in result.timeline.rows]
    result.error = storable(result.error)
