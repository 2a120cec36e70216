"""Request bodies in, blob bytes out, in constant memory.

An upload is read from the WSGI input in chunks and written to a spool file while its sha256
is computed (and, for `Content-Encoding: gzip`, while it is checked to be whole gzip data),
counting bytes against the size limit. Only a complete, valid body becomes a `SpooledUpload`;
on any failure the spool file is removed. Downloads of gzip-stored blobs for clients that do
not accept gzip are decompressed on the fly, chunk by chunk.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import os
import tempfile
import time
import zlib
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterable, Iterator

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from .content_coding import GZIP_WBITS
from .errors import InvalidRequest, PayloadTooLarge, RequestTimeout
from .parsers import SNIFF_SIZE

READ_SIZE = 1 << 20
MULTIPART_OVERHEAD = 1 << 20  # boundaries and part headers allowed beyond the size limit


class UploadInterrupted(InvalidRequest):
    """The client stopped sending before the body was complete."""


@dataclasses.dataclass
class SpooledUpload:
    path: Path
    sha256: str
    size: int
    head: bytes  # the first bytes of the (decoded) content, to detect its kind
    content_encoding: str | None = None
    content_type: str | None = None
    filename: str | None = None  # multipart part's filename

    def open_decoded(self) -> BinaryIO:
        handle = open(self.path, "rb")  # noqa: SIM115 (the caller owns and closes it)
        return gzip.GzipFile(fileobj=handle, mode="rb") if self.content_encoding == "gzip" \
            else handle

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def clean_spool(spool_dir: Path, older_than: float) -> int:
    """Remove spool files untouched for `older_than` seconds (left by killed workers)."""
    if not spool_dir.exists():
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for path in spool_dir.glob("upload-*.part"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def body_timed_out() -> RequestTimeout:
    """The client went silent mid-body for longer than client_timeout (a socket timeout)."""
    return RequestTimeout("request body timed out: the client sent nothing for too long "
                          "(PADDLES_CLIENT_TIMEOUT); nothing was stored")


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"artifact is larger than the {limit} byte limit")


class _Spooler:
    """One spool file being written: hash, size limit, gzip check, sniffed head."""

    def __init__(self, spool_dir: Path, limit: int, content_encoding: str | None):
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-", suffix=".part")
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.limit = limit
        self.encoding = content_encoding
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.inflater = zlib.decompressobj(GZIP_WBITS) if content_encoding == "gzip" else None
        self.members = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.hash.update(chunk)
        self.file.write(chunk)
        if self.inflater is None:
            self._keep_head(chunk)
        else:
            self._inflate(chunk)

    def _keep_head(self, data) -> None:
        if len(self.head) < SNIFF_SIZE:
            self.head += data[:SNIFF_SIZE - len(self.head)]

    def _inflate(self, data) -> None:
        """Decompress and drop (bounded output per step), keeping the head: checks the gzip."""
        try:
            while data:
                if self.inflater.eof:  # concatenated gzip members are one gzip file
                    self.inflater = zlib.decompressobj(GZIP_WBITS)
                self._keep_head(self.inflater.decompress(data, READ_SIZE))
                if self.inflater.eof:
                    self.members += 1
                    data = self.inflater.unused_data
                else:
                    data = self.inflater.unconsumed_tail
        except zlib.error as exc:
            raise InvalidRequest(f"Content-Encoding is gzip but the body is not: {exc}") from None

    def finish(self, **meta) -> SpooledUpload:
        if self.inflater is not None and (not self.members or not self.inflater.eof):
            raise InvalidRequest("Content-Encoding is gzip but the gzip data is incomplete")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return SpooledUpload(self.path, self.hash.hexdigest(), self.size, bytes(self.head),
                             self.encoding, **meta)

    def abort(self) -> None:
        try:
            self.file.close()  # flushes the buffer: fails again on a full disk
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)


def _read(stream: BinaryIO, size: int, done: int, expected: int | None) -> bytes:
    try:
        chunk = stream.read(size)
    except TimeoutError:
        raise body_timed_out() from None
    except Exception as exc:  # whatever the server raises when the client goes away
        raise UploadInterrupted(f"upload interrupted after {done} bytes: {exc}") from None
    if not chunk and expected is not None and done < expected:
        raise UploadInterrupted(f"request body ended after {done} of {expected} bytes")
    return chunk


def _chunks(stream: BinaryIO, length: int | None) -> Iterator[bytes]:
    """The body in chunks: `length` bytes, or up to EOF when the length is unknown (chunked)."""
    done = 0
    while length is None or done < length:
        want = READ_SIZE if length is None else min(READ_SIZE, length - done)
        chunk = _read(stream, want, done, length)
        if not chunk:
            return
        done += len(chunk)
        yield chunk


def spool_body(stream: BinaryIO, length: int | None, *, spool_dir: Path, limit: int,
               content_encoding: str | None, content_type: str | None) -> SpooledUpload:
    """A raw request body (PUT) into one spool file."""
    if length is not None and length > limit:
        raise too_large(limit)  # before reading a byte
    spooler = _Spooler(spool_dir, limit, content_encoding)
    try:
        for chunk in _chunks(stream, length):
            spooler.write(chunk)
        return spooler.finish(content_type=content_type)
    except BaseException:
        spooler.abort()
        raise


def spool_multipart(stream: BinaryIO, length: int | None, content_type: str, *,
                    spool_dir: Path, limit: int) -> list[SpooledUpload]:
    """Every file part of a multipart/form-data body; `limit` bounds their total size."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidRequest("multipart/form-data body without a boundary")
    if length is not None and length > limit + MULTIPART_OVERHEAD:
        raise too_large(limit)
    done: list[SpooledUpload] = []
    current: _Spooler | None = None
    segment: MultipartSegment | None = None
    parser = PushMultipartParser(boundary, content_length=-1 if length is None else length,
                                 max_header_count=16, max_segment_count=10_000)
    try:
        for chunk in itertools.chain(_chunks(stream, length), [b""]):  # b"": end of input
            for event in parser.parse(chunk):
                if isinstance(event, MultipartSegment):
                    segment = event
                    if event.filename is not None:  # plain form fields are ignored
                        used = sum(u.size for u in done)
                        encoding = (event.header("Content-Encoding") or "").lower() or None
                        current = _Spooler(spool_dir, limit - used, _encoding(encoding))
                elif event is None:
                    if current is not None:
                        done.append(current.finish(content_type=segment.content_type,
                                                   filename=segment.filename))
                    current = None
                elif current is not None:
                    try:
                        current.write(event)
                    except PayloadTooLarge:
                        raise too_large(limit) from None
        if not parser.closed or current is not None:
            raise InvalidRequest("multipart body ended early")
        if not done:
            raise InvalidRequest("no file in the multipart body (send it as "
                                 "`curl -F file=@NAME`)")
        return done
    except MultipartError as exc:
        _cleanup(current, done)
        raise InvalidRequest(f"bad multipart body: {exc}") from None
    except BaseException:
        _cleanup(current, done)
        raise


def _cleanup(current: _Spooler | None, done: list[SpooledUpload]) -> None:
    if current is not None:
        current.abort()
    for upload in done:
        upload.discard()


def _encoding(value: str | None) -> str | None:
    """The Content-Encoding we store: gzip or nothing (identity); others are refused."""
    if value in (None, "", "identity"):
        return None
    if value in ("gzip", "x-gzip"):
        return "gzip"
    raise InvalidRequest(f"unsupported Content-Encoding {value!r}: send gzip or identity")


def content_encoding(header: str | None) -> str | None:
    return _encoding((header or "").strip().lower() or None)


def gunzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress gzip data (one or more members) as it streams, bounded output per step."""
    inflater = zlib.decompressobj(GZIP_WBITS)
    try:
        for data in chunks:
            while data:
                if inflater.eof:
                    inflater = zlib.decompressobj(GZIP_WBITS)
                out = inflater.decompress(data, READ_SIZE)
                if out:
                    yield out
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        tail = inflater.flush()
        if tail:
            yield tail
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
