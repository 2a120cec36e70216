"""dstat CSV output into a timeline: `columns` named `group/column`, `rows` of [time, values...].

dstat writes a preamble ("Dstat 0.7.x CSV output", author, host, command line, date), a row of
group names ("system","total cpu usage",,,...) and a row of column names ("time","usr",...).
Its `time` column is `dd-mm HH:MM:SS` in the host's local time without a year: the year comes
from the preamble's Date line (rolling over at New Year). An `epoch` column is Unix seconds.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
from typing import BinaryIO

from .common import ParseResult, Timeline

TIME_COLUMNS = ("time", "epoch")
_DSTAT_TIME = re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)")
MAX_ROWS = 500_000  # four days at one sample a second


def _year(rows: list[list[str]]) -> int | None:
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            if cell.strip() == "Date:":
                parts = row[i + 1].split()
                try:
                    return dt.datetime.strptime(" ".join(parts[:3]), "%d %b %Y").year
                except ValueError:
                    return None
    return None


def _column_names(groups: list[str], names: list[str]) -> list[str]:
    out, group = [], ""
    for i, name in enumerate(names):
        if i < len(groups) and groups[i].strip():
            group = groups[i].strip()
        out.append(f"{group}/{name.strip()}" if group else name.strip())
    return out


def _number(cell: str):
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None  # no NaN/inf


def parse_dstat(stream: BinaryIO) -> ParseResult:
    reader = csv.reader(codecs.getreader("utf-8")(stream, errors="replace"))
    preamble: list[list[str]] = []
    header = None
    try:
        for row in reader:
            if row and row[0].strip() in TIME_COLUMNS and preamble and any(preamble[-1]):
                header = (preamble[-1], row)
                break
            preamble.append(row)
            if len(preamble) > 100:
                break
        if header is None:
            return ParseResult(error="dstat: no column header row (\"time\",\"usr\",...) found")
        groups, names = header
        columns = _column_names(groups, names)
        epoch = names[0].strip() == "epoch"
        columns[0] = "time"
        year = _year(preamble) or dt.datetime.now(dt.UTC).year
        rows: list[list] = []
        last_month = None
        for line_no, row in enumerate(reader, start=len(preamble) + 2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if row[0].strip() in TIME_COLUMNS or row[0].startswith("Dstat"):
                continue  # dstat repeats its headers when restarted into the same file
            when, last_month, year = _when(row[0], epoch, year, last_month)
            if when is None:
                return ParseResult(timeline=Timeline(columns, rows),
                                   error=f"dstat: line {line_no}: bad time {row[0][:40]!r}")
            values = [_number(cell) for cell in row[1:len(columns)]]
            values += [None] * (len(columns) - 1 - len(values))
            rows.append([when, *values])
            if len(rows) >= MAX_ROWS:
                return ParseResult(timeline=Timeline(columns, rows),
                                   error=f"dstat: more than {MAX_ROWS} rows; the rest not kept")
    except csv.Error as exc:
        return ParseResult(error=f"dstat: {exc}")
    return ParseResult(timeline=Timeline(columns, rows))


def _when(cell: str, epoch: bool, year: int, last_month: int | None):
    """(time as 'YYYY-MM-DD HH:MM:SS', month, year) or (None, ...) when unreadable."""
    cell = cell.strip()
    if epoch:
        value = _number(cell)
        if value is None:
            return None, last_month, year
        try:
            when = dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None, last_month, year
        return str(when), last_month, year
    match = _DSTAT_TIME.fullmatch(cell)
    if not match:
        return None, last_month, year
    day, month, hour, minute, second = (int(g) for g in match.groups())
    if last_month is not None and month < last_month:
        year += 1  # December into January
    try:
        when = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None, month, year
    return str(when), month, year
