"""subunit v2: each test case as its status events and attachments."""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from .common import CHUNK

SUBUNIT_STATUS = {"pass": "success", "fail": "fail", "skip": "skip", "xfail": "xfail",
                  "uxsuccess": "uxsuccess", "error": "fail"}
_TEXT = "text/plain; charset=utf8"


def subunit_chunks(rows: Iterable) -> Iterator[bytes]:
    """Each test: `inprogress` at its start, its attachments, its final status at its stop.

    subunit has no `error`: an error goes out as `fail`. A test with a message but no
    attachment carries the message as `traceback` (failures) or `reason` (skips)."""
    from subunit.v2 import StreamResultToBytes  # python-subunit; imported when used

    buffer = io.BytesIO()
    writer = StreamResultToBytes(buffer)
    for row in rows:
        status = row.status.value
        tags = set(row.tags or ()) or ({row.worker} if row.worker else set())
        if row.start is not None:
            writer.status(test_id=row.test_id, test_status="inprogress", timestamp=row.start,
                          test_tags=tags or None)
        details = dict(row.details or {})
        if not details and row.message:
            key = "reason" if status in ("skip", "xfail") else "traceback"
            details = {key: row.message}
        when = row.stop or row.start
        for name, text in details.items():
            writer.status(test_id=row.test_id, file_name=name,
                          file_bytes=(text or "").encode("utf-8"), mime_type=_TEXT, eof=True,
                          timestamp=when)
        writer.status(test_id=row.test_id, test_status=SUBUNIT_STATUS[status],
                      timestamp=when, test_tags=tags or None)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
