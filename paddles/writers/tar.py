"""The tarball writer: members written to memory, then (past SPOOL_MEMORY) a temporary file,
gzipped as written when asked, added whole; the tar's bytes taken out after each member."""
from __future__ import annotations

import gzip as gzip_module
import tarfile
import tempfile

SPOOL_MEMORY = 1 << 20  # members above this go to a temporary file


class TarSink:
    """Where tarfile writes: the bytes are taken out after each member."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class Member:
    """One file of the tarball, written to memory then (past SPOOL_MEMORY) a temporary file;
    gzipped as it is written when asked."""

    def __init__(self, name: str, compress: bool):
        self.name = name + (".gz" if compress else "")
        # closed by add_to() once the tarball has taken it
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self._gzip = (gzip_module.GzipFile(filename="", mode="wb", fileobj=self.file,
                                           mtime=0) if compress else None)

    def write(self, data: bytes) -> None:
        (self._gzip or self.file).write(data)

    def add_to(self, tar: tarfile.TarFile, mtime: float) -> None:
        if self._gzip is not None:
            self._gzip.close()
        size = self.file.tell()
        self.file.seek(0)
        info = tarfile.TarInfo(self.name)
        info.size, info.mtime, info.mode = size, mtime, 0o644
        tar.addfile(info, self.file)
        self.file.close()
