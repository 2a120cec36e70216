"""The interface every blob backend implements: content-addressed, whole files in, byte ranges out.

Blobs are named by the sha256 of their bytes, so a blob is written once and never changes;
`put` of a blob that is already there does nothing. Uploads are first spooled to a file in
`spool_dir` (hashed on the way), then handed to `put`, so a backend never sees a partial blob.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, runtime_checkable
from collections.abc import Iterator

CHUNK_SIZE = 1 << 20  # bytes per read when streaming a blob out
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobMissing(Exception):
    """The backend has no blob with that sha256."""


def check_sha256(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256 or ""):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def fanout(sha256: str) -> str:
    """`ab/cd/abcd...`: two levels of 256 directories (or key prefixes)."""
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


@runtime_checkable
class BlobStore(Protocol):
    #: Where uploads are spooled; for the local backend on the same filesystem as the blobs.
    spool_dir: Path

    def put(self, sha256: str, source: Path) -> None:
        """Store the complete file `source` as blob `sha256` (atomically; no-op if present)."""

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) of the blob, in chunks. Raises BlobMissing before returning."""

    def exists(self, sha256: str) -> bool:
        ...

    def size(self, sha256: str) -> int | None:
        """Size in bytes, or None when the blob does not exist."""

    def delete(self, sha256: str) -> None:
        """Remove the blob; no error when it is already gone."""
