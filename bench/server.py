"""Start paddles (or the floor app) under gunicorn with gunicorn_config.py, as deployed, for
a benchmark; and read a process's memory from /proc."""
from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env: dict, app: str = "paddles.wsgi:application", *, cwd: Path = REPO,
             timeout: float = 60) -> Iterator[tuple[subprocess.Popen, int]]:
    """(process, port) of a gunicorn serving `app` until the block ends (then SIGTERM).

    As deployed: gunicorn_config.py alone (gunicorn's own access log off: paddles logs each
    request itself, at the level PADDLES_LOG_LEVEL gives), its stderr to a file, as
    supervisord sends it to one."""
    port = free_port()
    env = dict(os.environ, **env, PADDLES_BIND=f"127.0.0.1:{port}")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn_config.py"), app],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_until_serving(proc, port, timeout, log)
            yield proc, port
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_until_serving(proc: subprocess.Popen, port: int, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            log.seek(0)
            raise RuntimeError("gunicorn did not start: "
                               + log.read().decode(errors="replace")[-2000:])
        time.sleep(0.1)


def status_kib(pid: int, key: str) -> int:
    """A /proc/PID/status figure in KiB (VmHWM: peak RSS, VmRSS: current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's children."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(entry.name))
    return found
