"""supervisord_paddles.conf as shipped: supervisord starts, migrates and serves paddles, replaces
a killed gunicorn worker while traffic goes on, and stops every process it started."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, alive, children, free_port, wait_for, wait_until

BIN = Path(sys.executable).parent


def _get(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


class Traffic(threading.Thread):
    """GET a URL over and over (a new connection each time) until stopped. A request the
    killed worker had taken is never answered: it gives up after 2 s (one error), so that
    the traffic goes on within the test's window."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.ok = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                status, _ = _get(self.url, timeout=2)
                self.ok += status == 200
            # a response the killed worker had begun ends short: IncompleteRead
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                self.errors.append(repr(exc))
            time.sleep(0.01)

    def stop(self):
        self._halt.set()
        self.join(15)


@pytest.mark.slow
def test_supervisord_serves_replaces_a_killed_worker_and_stops_cleanly(tmp_path, database_url,
                                                                       db_engine):
    started = time.monotonic()
    # A deployment directory laid out like the checkout: the conf, gunicorn_config.py, .venv
    shutil.copy(REPO / "supervisord_paddles.conf", tmp_path)
    shutil.copy(REPO / "gunicorn_config.py", tmp_path)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    (tmp_path / "var" / "log").mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    conf = str(tmp_path / "supervisord_paddles.conf")
    ctl = [str(BIN / "supervisorctl"), "-c", conf]
    subprocess.run([str(BIN / "supervisord"), "-c", conf], env=env, check=True, cwd=tmp_path)
    supervisord = int(wait_until(lambda: _read(tmp_path / "var" / "supervisord.pid"), 10))
    pids: set[int] = {supervisord}
    try:
        wait_for(f"{base}/ready/", timeout=60)
        assert _get(f"{base}/runs/") == (200, b"[]")
        assert json.loads(_get(f"{base}/ready/")[1])["migrations"] == "current"
        assert wait_until(lambda: "RUNNING" in _status(ctl), 20)
        assert wait_until(lambda: "RUNNING" in _status(ctl, "paddles-dispatch"), 20)
        master = int(_ctl(ctl, "pid", "paddles"))
        dispatch = int(_ctl(ctl, "pid", "paddles-dispatch"))
        pids |= {master, dispatch}
        workers = wait_until(lambda: _workers(master, 2), 20)
        assert workers, children(master)
        pids |= workers

        traffic = Traffic(f"{base}/runs/")
        traffic.start()
        wait_until(lambda: traffic.ok >= 20, 10)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)  # mid-traffic
        replaced = wait_until(lambda: _workers(master, 2, without=victim), 15)
        ok_before = traffic.ok
        wait_until(lambda: traffic.ok >= ok_before + 20, 20)
        traffic.stop()
        assert replaced and victim not in replaced and not alive(victim)
        pids |= replaced
        # at most the one request the killed worker was serving is lost
        assert len(traffic.errors) <= 1, traffic.errors
        assert traffic.ok >= ok_before + 20
        for _ in range(10):
            assert _get(f"{base}/runs/")[0] == 200
        assert "RUNNING" in _status(ctl)  # supervisord saw no exit: gunicorn replaced it
        scrape = _get(f"{base}/metrics/")[1].decode()
        assert 'paddles_http_requests_total{method="GET",route="/runs/",status="200"}' in scrape
    finally:
        out = subprocess.run(ctl + ["shutdown"], capture_output=True, text=True)
    assert "Shut down" in out.stdout, out
    gone = wait_until(lambda: not any(alive(p) for p in pids), 40)
    assert gone, [p for p in pids if alive(p)]
    log = (tmp_path / "var" / "log" / "paddles.log").read_text()
    assert "schema is current" in log and "Booting worker" in log
    assert f"(pid:{victim}) was sent SIGKILL" in log or "was sent SIGKILL" in log
    assert "paddles.access" in log and "route=/runs/" in log  # the request log
    assert time.monotonic() - started < 60


def _workers(master: int, count: int, without: int | None = None) -> set[int] | None:
    found = children(master)
    return found if len(found) == count and without not in found else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _ctl(ctl, *args) -> str:
    return subprocess.run(ctl + list(args), capture_output=True, text=True).stdout.strip()


def _status(ctl, program="paddles") -> str:
    return _ctl(ctl, "status", program)
