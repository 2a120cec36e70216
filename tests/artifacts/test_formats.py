"""Kind detection and parser details that need no server (pure functions)."""
from __future__ import annotations

import io

import pytest

from paddles import parsers
from paddles.parsers.common import ParsedTest, ParseResult

from .conftest import DATA


@pytest.mark.parametrize("head,kind", [
    (b"\xb3\x29\x00", "subunit"),
    (b'<?xml version="1.0"?>\n<!-- made by ctest -->\n<testsuites><testsuite/>', "junit"),
    (b"\xef\xbb\xbf<!DOCTYPE x>\n<testsuite name='a'>", "junit"),
    (b"<ns:testsuite xmlns:ns='urn:x'>", "junit"),
    (b"<?xml version='1.0'?><project/>", "log"),
    ((DATA / "dstat.csv").read_bytes()[:300], "dstat"),
    (b'"system","total cpu usage",,,\n"time","usr","sys","idl"\n', "dstat"),
    (b'"epoch","usr","sys","idl","wai"\n1705348803,1,2,97,0\n', "dstat"),
    (b"2024-01-15 INFO caf\xc3\xa9 \xe2\x9c\x93\n", "log"),
    (b"caf\xc3", "log"),  # cut inside a UTF-8 character by the sniff window
    (b"latin-1 log: caf\xe9 na\xefve\n" * 10, "log"),
    (b"\x1b[32mcolored\x1b[0m output\n", "log"),
    (b"", "log"),
    (b"ELF\x00\x01\x02", "binary"),
    (bytes(range(1, 32)) * 10, "binary"),
], ids=lambda value: "" if isinstance(value, bytes) else value)
def test_detect_kind(head, kind):
    assert parsers.detect_kind(head) == kind


def test_dstat_epoch_column_gives_utc_times():
    data = (b'"Dstat 0.7.4 CSV output"\n\n"epoch","total cpu usage",,\n'
            b'"epoch","usr","sys","idl"\n1705348803.0,1.5,2,96.5\n1705348804.0,,x,97\n')
    result = parsers.parse("dstat", io.BytesIO(data))
    assert result.error is None
    assert result.timeline.columns == ["time", "total cpu usage/usr", "total cpu usage/sys",
                                       "total cpu usage/idl"]
    assert result.timeline.rows == [["2024-01-15 20:00:03", 1.5, 2.0, 96.5],
                                    ["2024-01-15 20:00:04", None, None, 97.0]]


def test_dstat_bad_time_keeps_the_rows_before_it():
    data = (DATA / "dstat.csv").read_bytes() + b"not a time,1,2\n"
    result = parsers.parse("dstat", io.BytesIO(data))
    assert len(result.timeline.rows) == 40
    assert result.error == "dstat: line 48: bad time 'not a time'"


def test_attachments_have_a_budget_per_artifact(monkeypatch):
    monkeypatch.setattr(parsers, "DETAILS_BUDGET", 10)
    result = ParseResult(tests=[ParsedTest("a", "fail", details={"traceback": "12345"}),
                                ParsedTest("b", "fail", details={"traceback": "1234567"})])
    parsers._cap_details(result)
    assert result.tests[0].details == {"traceback": "12345"}
    assert list(result.tests[1].details) == ["paddles"]


def test_a_parser_crash_is_a_parse_error(monkeypatch):
    def boom(stream):
        raise RuntimeError("bug")
    monkeypatch.setitem(parsers._PARSERS, "junit", boom)
    assert parsers.parse("junit", io.BytesIO(b"")).error \
        == "junit: unexpected parser failure: RuntimeError('bug')"
    assert parsers.parse("log", io.BytesIO(b"x")) is None
