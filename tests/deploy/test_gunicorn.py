"""gunicorn_config.py really serves the app: boot it and talk HTTP to it."""
from __future__ import annotations

import json
import os
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deploy.conftest import children, free_port, gunicorn_process, wait_until
from tests.factories import run_name


@pytest.fixture
def gunicorn_server(database_url, db_engine, request, tmp_path):
    port = free_port()
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2",
               PADDLES_DATA_DIR=str(tmp_path / "var"),
               PADDLES_PRELOAD="1" if getattr(request, "param", None) == "preload" else "0")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with gunicorn_process(env) as server:
        yield server


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


def _text(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def _counted(scrape: str, series: str) -> float:
    for line in scrape.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("gunicorn_server", ["preload"], indirect=True)
def test_preloaded_workers_serve_with_their_own_connections_and_metrics_add_up(
        gunicorn_server):
    """PADDLES_PRELOAD=1: the app (and engine) is built in the master; each worker drops the
    inherited pool after fork. Concurrent writes and reads from both workers all succeed, and
    a scrape (answered by one worker) counts the requests every worker served."""
    base, proc = gunicorn_server
    assert len(wait_until(lambda: children(proc.pid) if len(children(proc.pid)) == 2 else None,
                          20)) == 2
    run = run_name()
    _request("POST", f"{base}/runs/{run}/jobs/", {"job_id": "0"})

    def work(i):
        _request("POST", f"{base}/runs/{run}/jobs/", {"job_id": str(i + 1), "status": "queued"})
        return _request("GET", f"{base}/runs/{run}/jobs/{i + 1}/")[0]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(40))) == [200] * 40
    assert _request("GET", f"{base}/ready/")[1]["migrations"] == "current"
    series = ('paddles_http_requests_total{method="GET",route="/runs/{name}/jobs/{job_id}/",'
              'status="200"}')
    # a request is counted when its body is closed, just after the client has it: poll
    assert wait_until(lambda: _counted(_text(f"{base}/metrics/"), series) == 40, 5)
    scrape = _text(f"{base}/metrics/")
    assert _counted(scrape, 'paddles_http_requests_total{method="POST",'
                            'route="/runs/{name}/jobs/",status="200"}') == 41
    assert _counted(scrape, "paddles_db_pool_capacity") > 0


def test_hup_replaces_workers_gracefully_and_metrics_survive(gunicorn_server):
    base, proc = gunicorn_server
    old = wait_until(lambda: children(proc.pid) if len(children(proc.pid)) == 2 else None, 20)
    for _ in range(5):
        assert _request("GET", f"{base}/runs/")[0] == 200
    proc.send_signal(signal.SIGHUP)
    new = wait_until(lambda: (c := children(proc.pid)) and not c & old and len(c) == 2 and c,
                     20)
    assert new and not new & old
    assert _request("GET", f"{base}/runs/")[0] == 200
    # the retired workers' counters are still in the files: nothing counted is lost (a
    # request is counted when its body is closed, just after the client has it: poll)
    series = 'paddles_http_requests_total{method="GET",route="/runs/",status="200"}'
    assert wait_until(lambda: _counted(_text(f"{base}/metrics/"), series) == 6, 5)
