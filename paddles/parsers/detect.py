"""Which kind an upload is, from its first bytes (after gzip decoding)."""
from __future__ import annotations

import re

SNIFF_SIZE = 64 * 1024
_CONTROL = bytes(range(9)) + bytes(range(14, 27)) + bytes(range(28, 32))
_PROLOG = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)", re.S)
_FIRST_TAG = re.compile(r"\s*<([A-Za-z_][\w.:-]*)")
_DSTAT_COLUMNS = re.compile(r'^"(?:time|epoch)",(?:"[^"\n]*",?)*$', re.M)
_DSTAT_GROUPS = re.compile(r'^"(?:system|epoch)","(?:total cpu usage|cpu\d* usage)"', re.M)


def detect_kind(head: bytes) -> str:
    """subunit (0xB3 first), junit (XML rooted at testsuites/testsuite), dstat, log or binary."""
    if head[:1] == b"\xb3":
        return "subunit"
    text = as_text(head)
    if text is None:
        return "binary"
    if xml_root(text) in ("testsuites", "testsuite"):
        return "junit"
    if is_dstat(text):
        return "dstat"
    return "log"


def as_text(head: bytes) -> str | None:
    """The sniffed bytes as text, or None when they look binary."""
    if b"\x00" in head:
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    controls = sum(head.count(bytes([c])) for c in _CONTROL)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            text = head[:exc.start].decode("utf-8")  # cut inside the last character
        else:  # not UTF-8: still text (latin-1 logs) when control characters are rare
            return head.decode("latin-1") if controls * 100 < len(head) else None
    return text if controls * 10 < max(len(head), 1) else None


def xml_root(text: str) -> str | None:
    """Local name of the first element, skipping the XML declaration, comments, doctype."""
    pos = 0
    while True:
        match = _PROLOG.match(text, pos)
        if not match:
            break
        pos = match.end()
    match = _FIRST_TAG.match(text, pos)
    return match.group(1).rsplit(":", 1)[-1] if match else None


def is_dstat(text: str) -> bool:
    if text.lstrip().startswith('"Dstat '):
        return True
    return bool(_DSTAT_GROUPS.search(text)) or bool(
        _DSTAT_COLUMNS.search(text) and '"usr","sys","idl"' in text)
