"""Which Accept-Encoding headers take gzip (RFC 9110 12.5.3), and gzip itself."""
from __future__ import annotations

import gzip

import pytest

from paddles.content_coding import GZIP_MIN_SIZE, accepts_gzip, encode, gzip_bytes


@pytest.mark.parametrize("header,takes", [
    (None, False), ("", False), ("identity", False),
    ("gzip", True), ("GZip", True), ("x-gzip", True), ("gzip, deflate", True),
    ("gzip, deflate, br, zstd", True), ("br, gzip;q=0.8", True), ("deflate;q=1, gzip;q=0.001", True),
    ("gzip;q=0", False), ("gzip; q=0.0", False), ("gzip;q=0.000", False),
    ("*", True), ("*;q=0", False), ("gzip;q=0, *", False), ("*, gzip;q=0", False),
    ("gzip;q=nope", False), ("gzip;q=2", False), ("deflate, br", False), (" , ,", False),
    ("gzip;level=1;q=0.5", True),
])
def test_accepts_gzip(header, takes):
    assert accepts_gzip(header) is takes


def test_gzip_is_deterministic_and_round_trips():
    body = b'{"status": "pass"}' * 200
    assert gzip_bytes(body) == gzip_bytes(body)
    assert gzip.decompress(gzip_bytes(body)) == body


def test_encode_leaves_small_bodies_and_refusing_clients_alone():
    big = b"x" * GZIP_MIN_SIZE
    assert encode(big[:-1], True) == (big[:-1], None)
    assert encode(big, False) == (big, None)
    packed, coding = encode(big, True)
    assert coding == "gzip" and gzip.decompress(packed) == big


def test_gzip_is_isal_where_installed_else_zlib(monkeypatch):
    import sys
    import zlib

    from paddles import content_coding
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    assert content_coding.deflater() is isal_zlib
    monkeypatch.setitem(sys.modules, "isal", None)  # as on a platform without its wheel
    assert content_coding.deflater() is zlib
    monkeypatch.setattr(content_coding, "_deflate", zlib)
    body = b'{"jobs": [' + b'{"status": "pass"}, ' * 400 + b"]}"
    assert gzip.decompress(gzip_bytes(body)) == body
