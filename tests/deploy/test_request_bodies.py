"""JSON request bodies through a real gunicorn (gthread, gunicorn_config.py): chunked bodies
are read (gunicorn decodes them and ends wsgi.input), and one that never ends is answered
413 after the route's limit, the worker's memory growing by about that much and no more."""
from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.factories import run_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import server as bench_server

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture
def one_worker(database_url, db_engine, tmp_path):
    """(port, worker pid) of gunicorn with one worker on the test database."""
    env = dict(PADDLES_DATABASE_URL=database_url, PADDLES_DATA_DIR=str(tmp_path / "data"),
               PADDLES_WORKERS="1", PADDLES_LOG_LEVEL="warning")
    with bench_server.gunicorn(env, timeout=60) as (proc, port):
        [worker] = bench_server.worker_pids(proc.pid)
        yield port, worker


def request(port: int, method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        # an iterable body without Content-Length goes out chunked
        conn.request(method, path, body=body, headers=headers or {},
                     encode_chunked=not isinstance(body, (bytes, type(None))))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_chunked_put_and_post_through_gunicorn(one_worker):
    port, _ = one_worker
    run = run_name()
    status, _, body = request(port, "POST", f"/runs/{run}/jobs/", iter(
        [b'{"job_id": "2", ', b'"status": "queued"}']))
    assert (status, json.loads(body)) == (200, {"job_id": "2"})
    status, _, body = request(port, "PUT", f"/runs/{run}/jobs/2", iter([b'{"status":"pass"}']))
    assert (status, json.loads(body)) == (200, {})
    status, _, body = request(port, "GET", f"/runs/{run}/jobs/2/")
    assert json.loads(body)["status"] == "pass"


def _send_chunked_forever(port: int, path: str, total: int) -> tuple[int, dict, int]:
    """POST a chunked body of `total` bytes while reading the answer as it comes: (status,
    message, bytes the client got to send before the server stopped reading)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 .encode())
    answer = bytearray()

    def read():
        try:
            while chunk := sock.recv(65536):
                answer.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    block = b'{"job_id": "1", "description": "' + b"x" * (MIB - 40)
    piece = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sent = 0
    try:
        while sent < total:
            sock.sendall(piece)
            sent += len(block)
    except OSError:  # the server closed the connection after answering
        pass
    reader.join(30)
    sock.close()
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), sent


def test_endless_chunked_body_is_413_and_worker_memory_stays_bound(one_worker):
    port, worker = one_worker
    run = run_name()
    request(port, "POST", f"/runs/{run}/jobs/", json.dumps({"job_id": "0"}).encode())
    before = bench_server.status_kib(worker, "VmHWM")
    status, message, sent = _send_chunked_forever(port, f"/runs/{run}/jobs/", 256 * MIB)
    after = bench_server.status_kib(worker, "VmHWM")
    assert status == 413, message
    assert message == {"message": f"request body is larger than {16 * MIB} bytes, the limit "
                                  "for /runs/{name}/jobs/"}
    assert sent < 64 * MIB  # the server stopped reading near the limit
    growth_mib = (after - before) / 1024
    assert growth_mib < 40, (before, after)  # the 16 MiB limit once, and some buffers
    status, _, body = request(port, "GET", f"/runs/{run}/jobs/")
    assert [job["job_id"] for job in json.loads(body)] == ["0"]
