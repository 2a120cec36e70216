"""Artifact formats: kind detection and the parsers that turn uploads into test cases or a timeline.

Pure functions over byte streams: no database, no web framework. A parser returns what it
could read and, when the file was damaged or not of its kind, the reason (`ParseResult.error`).
"""
from __future__ import annotations

from typing import BinaryIO

from .common import KINDS, PARSED_KINDS, ParsedTest, ParseResult, Timeline, make_storable
from .detect import SNIFF_SIZE, detect_kind
from .dstat import parse_dstat
from .junit import parse_junit
from .subunit import parse_subunit

__all__ = ["KINDS", "PARSED_KINDS", "SNIFF_SIZE", "ParseResult", "ParsedTest", "Timeline",
           "detect_kind", "parse", "parse_dstat", "parse_junit", "parse_subunit"]

DETAILS_BUDGET = 32 * 1024 * 1024  # characters of attachments kept per artifact
_PARSERS = {"subunit": parse_subunit, "junit": parse_junit, "dstat": parse_dstat}


def parse(kind: str, stream: BinaryIO) -> ParseResult | None:
    """Parse `stream` (decoded bytes) as `kind`; None for kinds that are stored only. What it
    returns can be stored on every backend (common.make_storable)."""
    parser = _PARSERS.get(kind)
    if parser is None:
        return None
    try:
        result = parser(stream)
    except Exception as exc:  # a parser bug must not lose the upload: it is recorded instead
        return ParseResult(error=f"{kind}: unexpected parser failure: {exc!r}"[:1000])
    make_storable(result)
    _cap_details(result)
    return result


def _cap_details(result: ParseResult) -> None:
    """Attachments kept per artifact are bounded (each one is clipped by its parser)."""
    used = 0
    for test in result.tests:
        size = sum(len(text) for text in test.details.values())
        if used + size > DETAILS_BUDGET:
            test.details = {"paddles": f"attachments not kept: this artifact's tests carry "
                                       f"more than {DETAILS_BUDGET} characters of them"}
        else:
            used += size
