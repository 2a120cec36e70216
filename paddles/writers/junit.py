"""JUnit XML: one `testsuite` per job, test cases streamed in, totals known beforehand."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape, quoteattr

from .common import CHUNK, NOTHING, iso_time


@dataclasses.dataclass(frozen=True)
class Suite:
    """Per-job totals, known before the job's test cases stream (for JUnit's attributes)."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0
    start: dt.datetime | None = None


# test status -> the JUnit counter it adds to (no entry: a pass)
JUNIT_COUNTER = {"fail": "failures", "uxsuccess": "failures", "error": "errors",
                 "skip": "skipped", "xfail": "skipped"}


# characters XML 1.0 cannot carry at all, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text))


def _xml_attr(value: Any) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", str(value)))


def split_test_id(test_id: str) -> tuple[str, str]:
    """JUnit (classname, name): split at the last `.` before any `[...]` parameters, so
    that `classname.name` gives the test id back."""
    base, bracket, params = test_id.partition("[")
    if "." not in base:
        return "", test_id
    classname, name = base.rsplit(".", 1)
    if not name:
        return "", test_id
    return classname, name + bracket + params


def _suite_open(name: str, suite: Suite, properties: dict[str, str]) -> str:
    attrs = {"name": name, "tests": suite.tests, "failures": suite.failures,
             "errors": suite.errors, "skipped": suite.skipped, "time": f"{suite.time:.3f}"}
    if suite.start is not None:
        attrs["timestamp"] = iso_time(suite.start)
    head = "  <testsuite" + "".join(f" {k}={_xml_attr(v)}" for k, v in attrs.items()) + ">\n"
    props = "".join(f"      <property name={_xml_attr(k)} value={_xml_attr(v)}/>\n"
                    for k, v in properties.items())
    return head + (f"    <properties>\n{props}    </properties>\n" if props else "")


def _testcase_xml(row) -> str:
    classname, name = split_test_id(row.test_id)
    attrs = {"classname": classname, "name": name}
    if row.duration is not None:
        attrs["time"] = f"{row.duration:.6f}".rstrip("0").rstrip(".") or "0"
    if row.start is not None:
        attrs["timestamp"] = iso_time(row.start)
    details: dict[str, str] = dict(row.details or {})
    status = row.status.value
    message = row.message
    body: list[str] = []
    used: set[str] = set()
    if status in ("fail", "error", "uxsuccess"):
        tag = "error" if status == "error" else "failure"
        key = next((k for k in (tag, "traceback") if details.get(k)), None)
        text = details[key] if key else (message or "")
        if key:
            used.add(key)
        extra = ' type="uxsuccess"' if status == "uxsuccess" else ""
        msg = message or ("unexpected success" if status == "uxsuccess" else "")
        body.append(f"      <{tag} message={_xml_attr(msg)}{extra}>{_xml_text(text)}</{tag}>\n")
    elif status in ("skip", "xfail"):
        used.add("reason")
        extra = ' type="pytest.xfail"' if status == "xfail" else ""
        body.append(f"      <skipped message={_xml_attr(message or '')}{extra}/>\n")
    out = details.pop("system-out", None)
    err = details.pop("system-err", None)
    if out is None:
        rest = [f"[{k}]\n{v}" for k, v in details.items() if k not in used and v]
        out = "\n".join(rest) or None
    if out:
        body.append(f"      <system-out>{_xml_text(out)}</system-out>\n")
    if err:
        body.append(f"      <system-err>{_xml_text(err)}</system-err>\n")
    head = "    <testcase" + "".join(f" {k}={_xml_attr(v)}" for k, v in attrs.items())
    if not body:
        return head + "/>\n"
    return head + ">\n" + "".join(body) + "    </testcase>\n"


def junit_chunks(run_name: str, suites: dict[str | None, Suite],
                 rows: Iterable) -> Iterator[bytes]:
    """One `testsuite` per job (`name` = job_id; the run's own test cases: `name="run"`)."""
    total = Suite(tests=sum(s.tests for s in suites.values()),
                  failures=sum(s.failures for s in suites.values()),
                  errors=sum(s.errors for s in suites.values()),
                  skipped=sum(s.skipped for s in suites.values()),
                  time=sum(s.time for s in suites.values()))
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<testsuites'
             + "".join(f" {k}={_xml_attr(v)}" for k, v in (
                 ("name", run_name), ("tests", total.tests), ("failures", total.failures),
                 ("errors", total.errors), ("skipped", total.skipped),
                 ("time", f"{total.time:.3f}")))
             + ">\n"]
    size = 0
    current: object = NOTHING
    for row in rows:
        if row.job_id != current:
            if current is not NOTHING:
                parts.append("  </testsuite>\n")
            current = row.job_id
            props = {"run": run_name}
            if row.job_id is not None:
                props["job_id"] = row.job_id
            parts.append(_suite_open("run" if row.job_id is None else row.job_id,
                                     suites.get(row.job_id, Suite()), props))
        part = _testcase_xml(row)
        parts.append(part)
        size += len(part)
        if size >= CHUNK:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    if current is not NOTHING:
        parts.append("  </testsuite>\n")
    parts.append("</testsuites>\n")
    yield "".join(parts).encode("utf-8")
