"""Helpers to run the real server processes the repo's deployment files describe."""
from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    """Live (non-zombie) child processes of `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not ended within `timeout`."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(url: str, timeout: float = 30.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def gunicorn_process(env: dict, *, cwd: Path = REPO, log: Path | None = None,
                     prefix: Sequence[str] = (), ready_path: str = "/",
                     timeout: float = 30.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """paddles under gunicorn with the repo's gunicorn_config.py, as deployed: `env` is the
    whole environment (PADDLES_BIND included), `log` takes its output (else discarded),
    `prefix` a wrapper that execs it. Yields (base URL, process) once `ready_path` answers;
    SIGTERM at the end, SIGKILL if it has not stopped within 20 s."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn_config.py"),
             "paddles.wsgi:application"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()
    base = "http://" + env["PADDLES_BIND"]
    try:
        try:
            wait_for(base + ready_path, timeout=timeout, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
            raise RuntimeError(f"gunicorn did not serve {base}: {exc}\n{tail}") from None
        yield base, proc
    finally:
        stop(proc)
