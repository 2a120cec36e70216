"""gunicorn_config.py really serves the app: boot it and talk HTTP to it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.deploy.conftest import REPO, free_port, wait_for
from tests.factories import run_name


@pytest.fixture
def gunicorn_server(database_url, db_engine):
    port = free_port()
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn_config.py"),
         "paddles.wsgi:application"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/", proc=proc)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _request(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # no Content-Type, as teuthology
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def test_gunicorn_serves_runs_and_jobs(gunicorn_server):
    base, proc = gunicorn_server
    run = run_name()
    assert _request("POST", f"{base}/runs/{run}/jobs/", {"job_id": "7", "status": "running"}) \
        == (200, {"job_id": "7"})
    status, body = _request("GET", f"{base}//runs/{run}")
    assert status == 200 and body["status"] == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # graceful shutdown
