"""A slow client: one that sends half its body and then goes silent.

With PADDLES_CLIENT_TIMEOUT set, the read of the body fails after that long without data
and the client gets 408 `{"message"}` and the connection is closed, nothing is written (no job,
no artifact row, no spool file), and the server keeps answering everyone else meanwhile.
Real sockets against gunicorn, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
import requests
from sqlalchemy import func, select, text

from paddles.models import Artifact, Job
from tests.factories import run_name
from tests.deploy.conftest import wait_until
from tests.faults.conftest import gunicorn

pytestmark = pytest.mark.faults

CLIENT_TIMEOUT = 1.0


def _stall(base: str, method: str, path: str, body: bytes, *, send: int,
           content_type: str = "application/json") -> tuple[float, bytes]:
    """Send the headers and the first `send` bytes of `body`, then nothing: (seconds until
    the server answered and closed, the raw answer)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body[:send])
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return time.monotonic() - started, answer


def _parse(answer: bytes) -> tuple[int, dict, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slow_client")
    with gunicorn(database_url, workdir, PADDLES_CLIENT_TIMEOUT=str(CLIENT_TIMEOUT)) as srv:
        yield srv


def test_a_json_body_that_stalls_gets_408_and_writes_nothing(server, db_engine):
    run = run_name()
    body = json.dumps({"job_id": "1", "status": "queued", "description": "x" * 2000}).encode()
    seconds, answer = _stall(server.base, "POST", f"/runs/{run}/jobs/", body, send=1000)
    status, headers, doc = _parse(answer)
    assert status == 408 and "timed out" in doc["message"], doc
    # and the server closed the connection (_stall read to the end); gunicorn writes its own
    # Connection header, but closes when a body read failed
    assert headers["content-type"] == "application/json"
    assert CLIENT_TIMEOUT * 0.9 <= seconds < CLIENT_TIMEOUT + 8  # margin: a busy machine
    with db_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Job)) == 0
        assert conn.scalar(text("SELECT count(*) FROM runs")) == 0
    # the same request sent whole is served
    assert requests.post(f"{server.base}/runs/{run}/jobs/", data=body, timeout=10).json() \
        == {"job_id": "1"}


def test_an_artifact_upload_that_stalls_gets_408_and_leaves_no_spool_file(server, db_engine):
    run = run_name()
    requests.post(f"{server.base}/runs/{run}/jobs/", json={"job_id": "1"}, timeout=10)
    blob = b"2024-01-15 20:00:03 INFO teuthology log line\n" * 20000  # ~900 KB
    seconds, answer = _stall(server.base, "PUT", f"/runs/{run}/jobs/1/artifacts/teuthology.log",
                             blob, send=300_000, content_type="text/plain")
    status, headers, doc = _parse(answer)
    assert status == 408 and "nothing was stored" in doc["message"], doc
    assert headers["content-type"] == "application/json"
    assert seconds < CLIENT_TIMEOUT + 8
    blobs = server.workdir / "var" / "blobs"  # the spool is blobs/.tmp
    assert not [p for p in blobs.rglob("*") if p.is_file()]
    with db_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Artifact)) == 0
    resp = requests.put(f"{server.base}/runs/{run}/jobs/1/artifacts/teuthology.log", data=blob,
                        timeout=10)
    assert resp.status_code == 201, resp.text


def test_clients_stalling_every_thread_hold_them_only_until_the_timeout(server, db_engine):
    """Two workers of four threads: eight clients stall mid-body, taking every thread. Other
    requests wait (gunicorn queues them), but only until the stalled reads time out: all
    are served, and each stalled client gets its 408. Without the timeout they would wait
    for as long as the stalled clients cared to."""
    run = run_name()
    answers: list[tuple[float, bytes]] = []
    body = json.dumps({"job_id": "9", "description": "y" * 4000}).encode()
    stalled = [threading.Thread(target=lambda: answers.append(
        _stall(server.base, "POST", f"/runs/{run}/jobs/", body, send=100)))
        for _ in range(8)]
    for thread in stalled:
        thread.start()
    time.sleep(0.3)
    served: list[tuple[int, float]] = []

    def report(n):
        started = time.monotonic()
        resp = requests.post(f"{server.base}/runs/{run}/jobs/", json={"job_id": str(n)},
                             timeout=30)
        served.append((resp.status_code, time.monotonic() - started))
    others = [threading.Thread(target=report, args=(n,)) for n in range(4)]
    for thread in others:
        thread.start()
    for thread in others + stalled:
        thread.join(30)
    assert sorted(s for s, _ in served) == [200] * 4
    assert max(t for _, t in served) < CLIENT_TIMEOUT + 10, served  # not the 30 s timeout
    assert sorted(_parse(a)[0] for _, a in answers) == [408] * 8


def test_a_client_that_stops_reading_a_download_is_dropped(server, db_engine):
    """The timeout covers the answer too: a download whose client stops reading (its socket
    buffers full) ends after the timeout instead of holding the thread."""
    run = run_name()
    requests.post(f"{server.base}/runs/{run}/jobs/", json={"job_id": "1"}, timeout=10)
    path = f"/runs/{run}/jobs/1/artifacts/big.bin"
    blob = os.urandom(16 << 20)  # more than the loopback socket buffers hold
    assert requests.put(server.base + path, data=blob, timeout=30).status_code == 201
    host, port = server.base.removeprefix("http://").split(":")
    dropped = "TimeoutError: timed out"  # gunicorn's sendall timed out; it logs, lets go
    before = server.log_text().count(dropped)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert wait_until(lambda: server.log_text().count(dropped) > before,
                          CLIENT_TIMEOUT + 15)
    assert requests.get(server.base + path, timeout=30).content == blob  # a reading client
