"""The response cache is per process: two gunicorn servers on one database stay correct.

Each server (one worker) caches GET /runs/NAME/ and its job lists; a write through one must
be what the other answers next, because the version is read from the database on every
request.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager

from tests.deploy.conftest import free_port, gunicorn_process
from tests.factories import job_body, run_name


@contextmanager
def server(database_url, tmp_path):
    port = free_port()
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="1", PADDLES_THREADS="2",
               PADDLES_DATA_DIR=str(tmp_path / f"var{port}"), PADDLES_LOG_LEVEL="warning")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with gunicorn_process(env) as (base, _proc):
        yield base


def call(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_two_processes_see_each_others_writes(database_url, db_engine, tmp_path):
    with ExitStack() as stack:
        a = stack.enter_context(server(database_url, tmp_path))
        b = stack.enter_context(server(database_url, tmp_path))
        run = run_name()
        for j in (1, 2, 3):
            assert call("POST", f"{a}/runs/{run}/jobs/",
                        job_body(str(j), status="queued", name=run))[0] == 200
        docs = (f"/runs/{run}/", f"/runs/{run}/jobs/", f"/runs/{run}/jobs/?status=running")

        def agree():
            answers = [{d: call("GET", base + d)[2] for d in docs} for base in (a, b)]
            assert answers[0] == answers[1]
            return answers[0]

        seen = agree()  # both have it cached now
        writes = [(b, "PUT", "/jobs/1/", {"status": "running"}),
                  (a, "PUT", "/jobs/1/", {"name": run}),  # a heartbeat
                  (b, "PUT", "/jobs/2/", {"status": "pass", "success": True}),
                  (a, "DELETE", "/jobs/3/", None)]
        for base, method, path, body in writes:
            assert call(method, f"{base}/runs/{run}{path}", body)[0] == 200
            now = agree()
            assert now != seen, (method, path)
            seen = now
        detail = json.loads(seen[f"/runs/{run}/"])
        assert [(j["job_id"], j["status"]) for j in detail["jobs"]] == [("1", "running"),
                                                                        ("2", "pass")]
        # an ETag one process gave is honoured by the other
        _, headers, _ = call("GET", f"{a}/runs/{run}/")
        status, _, body = call("GET", f"{b}/runs/{run}/",
                               headers={"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        assert call("DELETE", f"{b}/runs/{run}/")[0] == 200
        assert call("GET", f"{a}/runs/{run}/")[0] == 404
