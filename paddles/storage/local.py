"""Blobs as files under one directory, fanned out `ab/cd/<sha256>`."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from collections.abc import Iterator

from .base import CHUNK_SIZE, BlobMissing, fanout


class LocalBlobStore:
    def __init__(self, root: str | Path, spool_dir: str | Path | None = None):
        self.root = Path(root).absolute()
        # the spool sits inside the blob root by default, so `put` is a link, not a copy
        self.spool_dir = Path(spool_dir).absolute() if spool_dir else self.root / ".tmp"

    def path(self, sha256: str) -> Path:
        return self.root / fanout(sha256)

    def put(self, sha256: str, source: Path) -> None:
        dest = self.path(sha256)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{sha256}.{uuid.uuid4().hex}.part")
        try:
            try:
                os.link(source, partial)  # the spooled file stays for a possible re-put
            except OSError:  # another filesystem, or no hard links: copy
                with open(source, "rb") as src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_SIZE)
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(partial, dest)  # whole or not at all
            _fsync_dir(dest.parent)
        finally:
            partial.unlink(missing_ok=True)

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            # _read_range closes it when the response is done with it
            handle = open(self.path(sha256), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        return _read_range(handle, start, end)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def _read_range(handle, start: int, end: int | None) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = None if end is None else max(end - start, 0)
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
