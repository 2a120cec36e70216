"""The gunicorn worker SIGKILLed while an artifact upload streams in (SQLite and PostgreSQL).

The client's connection is reset (an error, never a 2xx); no artifact row, blob or event
exists for the upload (its rows are written only after the whole body is stored); the
abandoned spool file is the only trace, and `paddles purge` removes such files once they
are a day old (streams.clean_spool). The master replaces the worker and the same upload
then succeeds.
"""
from __future__ import annotations

import os
import signal
import socket

import pytest
import requests
from sqlalchemy import text

from paddles.streams import clean_spool
from tests.deploy.conftest import alive, wait_until
from tests.factories import run_name
from tests.faults.conftest import gunicorn

pytestmark = pytest.mark.faults


def test_worker_killed_mid_upload_leaves_no_artifact_and_is_replaced(database_url, db_engine,
                                                                     tmp_path):
    with gunicorn(database_url, tmp_path, PADDLES_WORKERS="1") as server:
        run = run_name()
        assert requests.post(f"{server.base}/runs/{run}/jobs/", json={"job_id": "1"},
                             timeout=10).status_code == 200
        with db_engine.connect() as conn:
            events = conn.scalar(text("SELECT count(*) FROM events"))
        path = f"/runs/{run}/jobs/1/artifacts/teuthology.log"
        blob = b"2024-01-15 20:00:03 INFO teuthology log line\n" * 20000
        spool = tmp_path / "var" / "blobs" / ".tmp"
        host, port = server.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
                         f"Content-Length: {len(blob)}\r\n\r\n".encode() + blob[:400_000])
            assert wait_until(lambda: list(spool.glob("upload-*.part")), 20, 0.02)
            victims = server.workers()
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            try:
                answer = sock.recv(1024)
            except ConnectionResetError:
                answer = b""
        assert answer == b""  # connection closed or reset: no answer at all, never a 2xx
        assert wait_until(lambda: (w := server.workers(1)) and not w & victims, 20)
        assert not any(alive(pid) for pid in victims)
        with db_engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM artifacts")) == 0
            assert conn.scalar(text("SELECT count(*) FROM blobs")) == 0
            assert conn.scalar(text("SELECT count(*) FROM events")) == events
        stored = [p for p in (tmp_path / "var" / "blobs").rglob("*")
                  if p.is_file() and p.parent != spool]
        assert stored == []
        assert clean_spool(spool, older_than=0) == 1  # what purge does to day-old ones
        resp = requests.put(server.base + path, data=blob, timeout=20)
        assert resp.status_code == 201, resp.text
        assert requests.get(server.base + path, timeout=20).content == blob
