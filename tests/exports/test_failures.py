"""An export that fails (docs/exports.md, "When an export fails"), through a real gunicorn
(gthread, gunicorn_config.py) read with http.client, on SQLite and PostgreSQL:

* before the first byte of the body (the first rows cannot be read or rendered): a JSON 5xx
  `{"message": ...}`, not gunicorn's HTML error page;
* after it (the status line and part of the body are out): the connection is cut without
  the chunked body's terminating zero-length chunk, so a client sees a broken download,
  never a well-formed but truncated file.

The failures are real: a stored JSON value that cannot be decoded (`1e5000`: beyond a double,
and as the integer PostgreSQL's JSONB prints it, more digits than Python reads; written by
another tool, the API refuses it), and on PostgreSQL the export's backend
terminated mid-stream."""
from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.factories import checked_out, run_name

from .conftest import bulk_jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import server as bench_server

pytestmark = pytest.mark.slow
JOBS = 3000  # several 64 KiB chunks and several 1000-row batches


@pytest.fixture
def served(database_url, db_engine, tmp_path):
    """(port, run name, log file) of gunicorn on the test database, the run holding JOBS
    jobs."""
    env = dict(PADDLES_DATABASE_URL=database_url, PADDLES_DATA_DIR=str(tmp_path / "data"),
               PADDLES_WORKERS="1", PADDLES_LOG_LEVEL="warning")
    with bench_server.gunicorn(env, timeout=60) as (proc, port):
        run = run_name()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/runs/", body=json.dumps({"name": run}).encode())
        assert conn.getresponse().status == 200
        conn.close()
        bulk_jobs(db_engine, run, JOBS)
        yield port, run


def unrenderable(db_engine, run: str, job_id: str) -> None:
    """Store a JSON value no reader can decode in the job's targets, as SQL can."""
    cast = "CAST(:bad AS jsonb)" if db_engine.dialect.name == "postgresql" else ":bad"
    with db_engine.begin() as conn:
        conn.execute(text(f"UPDATE jobs SET targets = {cast} WHERE job_id = :job_id AND "
                          "run_id = (SELECT id FROM runs WHERE name = :run)"),
                     {"bad": '{"x": 1e5000}', "job_id": job_id, "run": run})


def get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    return conn, conn.getresponse()


def read_all(resp) -> tuple[bytes, Exception | None]:
    """The body as http.client reads it, and the error that ended it early, if one did."""
    got = bytearray()
    try:
        while chunk := resp.read(65536):
            got.extend(chunk)
    except (http.client.IncompleteRead, ConnectionError) as exc:
        return bytes(got), exc
    return bytes(got), None


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_failure_before_the_first_byte_is_a_json_5xx(served, db_engine, fmt):
    port, run = served
    unrenderable(db_engine, run, "1")
    conn, resp = get(port, f"/exports/runs/{run}/jobs.{fmt}")
    body = resp.read()
    conn.close()
    assert resp.status == 500, body
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"message": "internal server error"}


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_failure_after_the_first_byte_cuts_the_connection(served, db_engine, fmt):
    port, run = served
    unrenderable(db_engine, run, str(JOBS - 10))
    conn, resp = get(port, f"/exports/runs/{run}/jobs.{fmt}")
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    body, error = read_all(resp)
    conn.close()
    assert isinstance(error, http.client.IncompleteRead), (len(body), error)
    assert len(body) > 64 * 1024  # part of the export came through, then the cut
    # the same export without the bad row is whole: the cut was the failure
    unrenderable_fixed(db_engine, run, str(JOBS - 10))
    conn, resp = get(port, f"/exports/runs/{run}/jobs.{fmt}")
    body, error = read_all(resp)
    conn.close()
    assert error is None and resp.status == 200
    assert body.count(b"\n") >= JOBS


def unrenderable_fixed(db_engine, run: str, job_id: str) -> None:
    cast = "CAST(:good AS jsonb)" if db_engine.dialect.name == "postgresql" else ":good"
    with db_engine.begin() as conn:
        conn.execute(text(f"UPDATE jobs SET targets = {cast} WHERE job_id = :job_id AND "
                          "run_id = (SELECT id FROM runs WHERE name = :run)"),
                     {"good": '{"x": 1}', "job_id": job_id, "run": run})


def test_database_backend_killed_mid_stream_cuts_the_connection(served, db_engine,
                                                                database_url):
    """PostgreSQL: the export's backend is terminated while the export waits for the client
    to read (its server-side cursor open between batches): the rest cannot be fetched."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("a backend to terminate: PostgreSQL")
    port, run = served
    bulk_jobs_more(db_engine, run, 20_000)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    conn.request("GET", f"/exports/runs/{run}/jobs.csv")
    resp = conn.getresponse()
    assert resp.status == 200
    head = resp.read(1024)  # then stop reading: the worker blocks on a full socket

    def export_backend():
        with db_engine.connect() as admin:
            return admin.scalar(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                "pid <> pg_backend_pid() AND state = 'idle in transaction' AND "
                "(query ILIKE 'FETCH%' OR query ILIKE '%FROM jobs%')"))

    pid = None
    deadline = time.monotonic() + 15  # the cursor's statement is FETCH (yield_per)
    while pid is None and time.monotonic() < deadline:
        pid = export_backend()
        time.sleep(0.1)
    assert pid is not None, "no export backend waiting between batches"
    with db_engine.connect() as admin:
        assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    body, error = read_all(resp)
    conn.close()
    assert isinstance(error, http.client.IncompleteRead), (len(body), error)
    lines = (head + body).count(b"\n")
    assert 1000 <= lines < 20_000 + JOBS
    # the next export, on a fresh connection from the pool, is whole
    conn, resp = get(port, f"/exports/runs/{run}/jobs.csv")
    body, error = read_all(resp)
    conn.close()
    assert error is None and body.count(b"\n") == 20_000 + JOBS + 1


def bulk_jobs_more(db_engine, run: str, n: int) -> None:
    """`n` more jobs in the run (ids after JOBS), each row a few hundred bytes."""
    from sqlalchemy import insert, select

    from paddles.models import Job, JobStatus, Run
    from paddles.models.base import sortable_job_id
    with db_engine.begin() as conn:
        run_id = conn.scalar(select(Run.id).where(Run.name == run))
        rows = [{"run_id": run_id, "job_id": str(i), "sort_key": sortable_job_id(str(i)),
                 "status": JobStatus.PASS, "description": "rados/thrash/" + "x" * 300}
                for i in range(JOBS + 1, JOBS + n + 1)]
        for start in range(0, n, 1000):
            conn.execute(insert(Job), rows[start:start + 1000])


def test_failure_before_the_first_byte_in_process(app, db_engine):
    """The same answer from the app itself (no server involved): the handler made the first
    chunk, so the error is the app's JSON response, and the export's session is closed."""
    run = run_name()
    app.post("/runs/", json.dumps({"name": run}), status=200)
    bulk_jobs(db_engine, run, 3)
    unrenderable(db_engine, run, "1")
    resp = app.get(f"/exports/runs/{run}/jobs.json", status=500)
    assert resp.json == {"message": "internal server error"}
    assert checked_out(db_engine) == 0
