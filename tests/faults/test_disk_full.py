"""Disk full on artifact upload: the artifact store is a 1 MiB tmpfs.

An upload that does not fit answers 507 `{"message"}` (not 500): no spool file, no partial
blob, no artifact or blob row, no event is left, artifacts stored before are intact, and once
space is freed the same upload succeeds. A real filesystem running out of space (mounted by
the test as root, else by the server in a user namespace of its own; skipped when neither
is allowed), paddles under gunicorn, SQLite and PostgreSQL.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests.factories import run_name
from tests.faults.conftest import gunicorn

pytestmark = pytest.mark.faults


TMPFS = "size=1M,mode=0755"
# not root: a user and mount namespace of the server's own, where it may mount (Linux)
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


@pytest.fixture
def tiny_store(tmp_path):
    """(mount point, command prefix for gunicorn): a 1 MiB tmpfs. As root it is mounted for
    the test. Otherwise the server runs in a mount namespace of its own (unshare) and mounts
    it there first; the test then sees it through /proc/<server>/root."""
    mount = tmp_path / "store"
    mount.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", TMPFS, "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        try:
            yield mount, []
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        return
    mount_then_exec = ["sh", "-c", f'mount -t tmpfs -o {TMPFS} tmpfs "$0" && exec "$@"',
                       str(mount)]
    probe = subprocess.run([*UNSHARE, *mount_then_exec, "true"], capture_output=True,
                           text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot mount a tmpfs: not root, and no unprivileged user namespaces "
                    f"({probe.stderr.strip() if probe else 'no unshare'})")
    yield mount, [*UNSHARE, *mount_then_exec]


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {table: conn.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in ("artifacts", "blobs", "events")}


def test_upload_onto_a_full_disk_is_507_and_leaves_nothing(database_url, db_engine, tmp_path,
                                                           tiny_store):
    mount, prefix = tiny_store
    with gunicorn(database_url, tmp_path, prefix=prefix, PADDLES_WORKERS="1",
                  PADDLES_ARTIFACTS_DIR=str(mount / "blobs")) as server:
        # the tmpfs as the server sees it (in its own mount namespace without root)
        tiny = Path(f"/proc/{server.proc.pid}/root{mount}") if prefix else mount
        assert os.statvfs(tiny).f_blocks * os.statvfs(tiny).f_frsize <= 1 << 20
        store = tiny / "blobs"
        run = run_name()
        base = f"{server.base}/runs/{run}/jobs/1/artifacts"
        assert requests.post(f"{server.base}/runs/{run}/jobs/", json={"job_id": "1"},
                             timeout=10).status_code == 200
        small = b"small log\n" * 1000
        assert requests.put(f"{base}/small.log", data=small, timeout=10).status_code == 201
        before_files, before_rows = _files(store), _counts(db_engine)

        filler = tiny / "filler"  # someone else's data fills the disk
        filler.write_bytes(b"\0" * 700 * 1024)
        big = os.urandom(600 * 1024)  # does not fit in what is left
        resp = requests.put(f"{base}/big.bin", data=big, timeout=10)
        assert resp.status_code == 507, resp.text
        assert resp.headers["Content-Type"] == "application/json"
        assert "insufficient storage" in resp.json()["message"]
        form = requests.post(f"{base}/", files={"file": ("big.bin", big)}, timeout=10)
        assert form.status_code == 507, form.text
        assert "insufficient storage" in form.json()["message"]

        # nothing half-stored: no spool file, no partial blob, no row, no event
        assert _files(store) == before_files
        assert _counts(db_engine) == before_rows
        listing = requests.get(f"{base}/", timeout=10).json()
        assert [a["name"] for a in listing] == ["small.log"]
        assert requests.get(f"{base}/small.log", timeout=10).content == small
        assert requests.get(f"{base}/big.bin", timeout=10).status_code == 404

        filler.unlink()  # space freed: the same upload now works
        resp = requests.put(f"{base}/big.bin", data=big, timeout=10)
        assert resp.status_code == 201, resp.text
        assert resp.json()["sha256"] == hashlib.sha256(big).hexdigest()
        assert requests.get(f"{base}/big.bin", timeout=10).content == big
        assert not [f for f in _files(store) if f.startswith(".tmp/")]
        log = server.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "no space left" in log
