"""JUnit XML (root `testsuites` or `testsuite`) into test cases, read with defusedxml."""
from __future__ import annotations

import datetime as dt
import math
from typing import BinaryIO
from xml.etree.ElementTree import ParseError as XMLParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from .common import ParsedTest, ParseResult, clip, summary_line

ROOTS = ("testsuites", "testsuite")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _time(value: str | None) -> float | None:
    try:
        seconds = float((value or "").replace(",", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds < math.inf else None  # not NaN, negative or infinite


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        # in UTC here: 0001-01-01T00:00+01:00 has no UTC datetime (it was a 500 when stored)
        return when.astimezone(dt.UTC) if when.tzinfo else \
            when.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        return None


def _plus(start: dt.datetime | None, seconds: float | None) -> dt.datetime | None:
    """When a test that started at `start` and took `seconds` stopped (None past year 9999)."""
    if start is None or seconds is None:
        return None
    try:
        return start + dt.timedelta(seconds=seconds)
    except OverflowError:
        return None


def _testcase(elem) -> ParsedTest:
    classname, name = elem.get("classname") or "", elem.get("name") or ""
    test_id = f"{classname}.{name}" if classname and name else (name or classname or "?")
    status, message, details = "pass", None, {}
    for child in elem:
        tag = _local(child.tag)
        text = (child.text or "").strip()
        if tag in ("failure", "error") and status in ("pass", "skip"):
            status = "fail" if tag == "failure" else "error"
            message = child.get("message") or summary_line(text)
            if text:
                details[tag] = text
        elif tag == "skipped" and status == "pass":
            # pytest writes expected failures as <skipped type="pytest.xfail">
            status = "xfail" if child.get("type") == "pytest.xfail" else "skip"
            message = child.get("message") or summary_line(text)
        elif tag in ("system-out", "system-err") and text:
            details[tag] = text
    duration = _time(elem.get("time"))
    start = _timestamp(elem.get("timestamp"))
    stop = _plus(start, duration)
    return ParsedTest(test_id=test_id, status=status, start=start, stop=stop,
                      duration=duration, message=message[:1000] if message else None,
                      details={k: clip(v) for k, v in details.items()})


def parse_junit(stream: BinaryIO) -> ParseResult:
    tests: list[ParsedTest] = []
    depth = 0
    try:
        for event, elem in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                if depth == 0 and _local(elem.tag) not in ROOTS:
                    return ParseResult(error=f"junit: root element is <{_local(elem.tag)}>, "
                                             "not <testsuites> or <testsuite>")
                depth += 1
                continue
            depth -= 1
            if _local(elem.tag) == "testcase":
                tests.append(_testcase(elem))
                elem.clear()  # constant memory however many test cases
    except (XMLParseError, DefusedXmlException) as exc:
        return ParseResult(tests=tests, error=f"junit: {type(exc).__name__}: {exc}"[:1000])
    return ParseResult(tests=tests)
