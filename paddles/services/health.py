"""Liveness and readiness: what a load balancer or supervisor asks before sending traffic."""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import migrations
from ..errors import Unavailable

if TYPE_CHECKING:
    from ..storage.base import BlobStore


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration this code ships (the scripts do not change while it runs)."""
    return migrations.head_revision("")


def check_ready(session: Session, replica_factory: Callable[[], Session] | None = None
                ) -> dict[str, str | None]:
    """`{"database": "ok", "migrations": "current", "revision": ...}` (plus `"replica": "ok"`
    when a read replica is configured), or Unavailable naming what is wrong: the database
    unreachable, or its schema not at this code's head."""
    try:
        session.execute(text("SELECT 1"))
        current = schema_revision(session)
    except DBAPIError as exc:
        raise Unavailable(f"database unreachable: {_first_line(exc.orig or exc)}",
                          headers={"Retry-After": "5"}) from None
    head = head_revision()
    if current != head:
        raise Unavailable(f"database schema is at revision {current or 'none (empty)'}, "
                          f"this code needs {head}: run `paddles migrate`",
                          headers={"Retry-After": "30"})
    ready: dict[str, str | None] = {"database": "ok", "migrations": "current",
                                    "revision": head}
    if replica_factory is not None:
        with replica_factory() as replica:
            ready["replica"] = check_replica(replica)
    return ready


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_replica(session: Session) -> str:
    """"ok" when the read replica answers and has the current schema, else Unavailable."""
    try:
        current = schema_revision(session)
    except DBAPIError as exc:
        raise Unavailable(f"read replica unreachable: {_first_line(exc.orig or exc)}",
                          headers={"Retry-After": "5"}) from None
    if current != head_revision():
        raise Unavailable(f"read replica schema is at revision {current or 'none'}, this "
                          f"code needs {head_revision()}", headers={"Retry-After": "30"})
    return "ok"


def schema_revision(session: Session) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    if not inspect(session.connection()).has_table("alembic_version"):
        return None
    revision: str | None = session.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


def probe_blob_store(store: BlobStore) -> str:
    """Write, read back and delete a small unique blob through the store; returns where."""
    import hashlib
    import os
    import uuid

    spool = Path(store.spool_dir)
    spool.mkdir(parents=True, exist_ok=True)
    data = f"paddles check-config {uuid.uuid4()}\n".encode()
    sha256 = hashlib.sha256(data).hexdigest()
    probe = spool / f".probe-{sha256[:16]}"
    try:
        probe.write_bytes(data)
        store.put(sha256, probe)
        if b"".join(store.open_range(sha256)) != data:
            raise OSError("the blob read back differs from the one written")
        store.delete(sha256)
        blob_path = getattr(store, "path", None)
        if blob_path is not None:  # local: the fan-out directories made for the probe
            for parent in list(blob_path(sha256).parents)[:2]:
                try:
                    parent.rmdir()
                except OSError:  # not empty (real blobs share it) or already gone
                    break
    finally:
        if probe.exists():
            os.unlink(probe)
    root = getattr(store, "root", None)
    if root is not None:
        return str(root)
    return f"s3://{getattr(store, 'bucket', None)}/{getattr(store, 'prefix', '')}"
