"""subunit v2 streams into test cases, read with python-subunit and a testtools collector."""
from __future__ import annotations

import re
from typing import BinaryIO

import subunit
import testtools

from .common import ParsedTest, ParseResult, clip, duration_between, summary_line

STATUS = {"success": "pass", "fail": "fail", "skip": "skip", "xfail": "xfail",
          "uxsuccess": "uxsuccess",
          "inprogress": "error"}  # started and never finished: the worker died under it
PARSER_TEST_ID = "subunit.parser"  # python-subunit reports damaged packets as this test
_WORKER = re.compile(r"worker-\S+")


class _Collector(testtools.StreamToDict):
    """StreamToDict that also counts test events and keeps python-subunit's parse errors."""

    def __init__(self):
        self.tests: list[ParsedTest] = []
        self.errors: list[str] = []
        self.events = 0
        super().__init__(self._on_test)

    def status(self, test_id=None, test_status=None, **kw):
        if test_id is not None and test_id != PARSER_TEST_ID:
            self.events += 1
        super().status(test_id=test_id, test_status=test_status, **kw)

    def _on_test(self, record: dict) -> None:
        details = {name: _content_text(content) for name, content in record["details"].items()}
        if record["id"] == PARSER_TEST_ID:
            self.errors.append(details.get("Parser Error") or "damaged packet")
            return
        status = STATUS.get(record["status"])
        if status is None:  # 'exists' (a listing), 'unknown' (attachments only): not a run
            return
        start, stop = record["timestamps"]
        tags = sorted(record["tags"] or ())
        worker = next((t for t in tags if _WORKER.fullmatch(t)), None)
        if record["status"] == "inprogress":
            message = "test started but never finished"
        elif status == "skip":
            message = summary_line(details.get("reason"))
        else:
            message = summary_line(details.get("traceback") or details.get("reason"))
        self.tests.append(ParsedTest(
            test_id=record["id"], status=status, start=start, stop=stop,
            duration=duration_between(start, stop), worker=worker, tags=tags,
            message=message, details={k: clip(v) for k, v in details.items()}))


def _content_text(content) -> str:
    data = b"".join(content.iter_bytes())
    ctype = content.content_type
    if ctype.type == "text" or (ctype.type == "application" and ctype.subtype in ("json", "xml")):
        charset = (ctype.parameters or {}).get("charset", "utf-8").strip('"')
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")
    return f"<{len(data)} bytes of {ctype.type}/{ctype.subtype}>"


def parse_subunit(stream: BinaryIO) -> ParseResult:
    collector = _Collector()
    collector.startTestRun()
    subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout").run(collector)
    collector.stopTestRun()
    error = None
    if collector.errors:
        error = "subunit: " + "; ".join(collector.errors[:3])
    elif collector.events == 0:
        error = "subunit: no subunit v2 test events found"
    return ParseResult(tests=collector.tests, error=error)
