"""CSV and JSON writers: rows in, bytes out in CHUNK-sized pieces."""
from __future__ import annotations

import csv
import io
from typing import Any
from collections.abc import Callable, Iterable, Iterator, Sequence

from .common import CHUNK, dumps


def _cell(value: Any) -> Any:
    """A CSV cell: empty for null, true/false, nested values as compact JSON."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return dumps(value).decode()
    return value


def csv_chunks(columns: Sequence[str], records: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """RFC 4180: header row, every field quoted when needed, CRLF line ends, UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(v) for v in record])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def json_chunks(objects: Iterable[dict], *, lines: bool) -> Iterator[bytes]:
    """One JSON array (one element per line), or JSON Lines."""
    parts: list[bytes] = []
    size = 0
    first = True
    if not lines:
        parts.append(b"[")
    for obj in objects:
        data = dumps(obj)
        if lines:
            parts.append(data + b"\n")
        else:
            parts.append((b"\n" if first else b",\n") + data)
        first = False
        size += len(data) + 2
        if size >= CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    if not lines:
        parts.append(b"]\n" if first else b"\n]\n")
    yield b"".join(parts)


def tabular(fmt: str, columns: Sequence[str], records: Iterable[tuple],
            to_object: Callable[[tuple], dict]) -> Iterator[bytes]:
    if fmt == "csv":
        return csv_chunks(columns, records)
    return json_chunks((to_object(r) for r in records), lines=fmt == "jsonl")
