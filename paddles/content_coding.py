"""Content codings of responses: whether a client takes gzip, and gzip itself.

A client takes gzip when its `Accept-Encoding` names `gzip` (or `x-gzip`), or `*` without
naming gzip, with a q-value above 0 (RFC 9110 12.5.3). No header, or one that cannot be
read, gets the identity coding: always safe, and what a client that sends nothing expects.
"""
from __future__ import annotations

import zlib
from types import ModuleType

GZIP_WBITS = 31  # zlib: a gzip header and trailer
# speed over the last bytes: a run document is compressed again after every change to its
# run (heartbeats included). Level 1 of zlib packs a 420 KB run document (150 teuthology
# jobs) in ~1.1 ms to 7.0 KB; level 1 of ISA-L (the `isal` package) in ~0.12 ms to 7.7 KB:
# a sixth of a run document's read when its run has changed (docs/performance.md).
GZIP_LEVEL = 1
GZIP_MIN_SIZE = 1400  # below one packet, the header costs more than it saves


def deflater() -> ModuleType:
    """The module gzip_bytes compresses with: ISA-L's zlib-compatible one (isal.isal_zlib)
    where the `isal` package is installed (setup.py installs it where it has wheels), else
    the standard library's zlib. Both write standard gzip that any client reads."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


_deflate = deflater()

Encoded = tuple[bytes, str | None]  # a body as sent, and its Content-Encoding (None: as is)


def accepts_gzip(header: str | None) -> bool:
    if not header:
        return False
    star = False
    for item in header.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return _weight(params) > 0
        if coding == "*":
            star = _weight(params) > 0
    return star


def _weight(params: str) -> float:
    """The q-value among `params` (1 when absent, 0 when unreadable)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def gzip_bytes(body: bytes) -> bytes:
    """`body` as gzip data, byte for byte the same every time (mtime 0)."""
    return _deflate.compress(body, GZIP_LEVEL, wbits=GZIP_WBITS)


def encode(body: bytes, gzip_ok: bool) -> Encoded:
    """`body` as sent to a client that takes gzip (`gzip_ok`) or not: the bytes and their
    `Content-Encoding` (None: as they are)."""
    if gzip_ok and len(body) >= GZIP_MIN_SIZE:
        return gzip_bytes(body), "gzip"
    return body, None
