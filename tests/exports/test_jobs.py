"""/exports/runs/NAME/jobs.{csv,json,jsonl}: awkward text survives the CSV round trip, rows
match /runs/NAME/jobs/, empty and running runs, ?status=, 404/400, many rows in many chunks."""
from __future__ import annotations

import pytest

from paddles.services.exports import JOB_COLUMNS
from tests.factories import checked_out, post_job, post_run, put_job, run_name

from .conftest import attachment_name, bulk_jobs, cell, csv_rows, iso, jsonl_rows

AWKWARD = [
    'comma, "double quotes", and a trailing backslash \\',
    "line one\nline two\r\nline three\rend",
    "non-ASCII: café, Ceph 🐙, 日本語, ünïcödé",
    "  leading and trailing spaces  ",
    '"', ",", "", "=1+2 (formula-looking)",
]


def _expected(api_job: dict) -> dict:
    return {"job_id": api_job["job_id"], "description": api_job["description"],
            "status": api_job["status"], "success": api_job["success"],
            "failure_reason": api_job["failure_reason"], "duration": api_job["duration"],
            "machine_type": api_job["machine_type"], "os_type": api_job["os_type"],
            "os_version": api_job["os_version"], "targets": api_job["targets"],
            "log_href": api_job["log_href"], "started": iso(api_job["started"]),
            "updated": iso(api_job["updated"])}


@pytest.fixture
def run(app):
    name = run_name()
    for i, text in enumerate(AWKWARD, start=1):
        post_job(app, name, i, status="running", description=text,
                 failure_reason=AWKWARD[-i],
                 targets={f"ubuntu@smithi{i:03d}.front.sepia.ceph.com": f"ssh-ed25519 {text}",
                          "nested": {"list": [1, 2.5, None, True], "é": text}})
    put_job(app, name, 1, status="pass", success=True, duration=3600)
    put_job(app, name, 2, status="fail", success=False, duration=12,
            failure_reason='Command failed, "rc 1"\non smithi002')
    post_job(app, name, 10, status="queued")  # numeric order: 1, 2, ..., 8, 10
    return name


def test_jobs_round_trip_in_every_format(app, run):
    api = {j["job_id"]: j for j in app.get(f"/runs/{run}/jobs/").json}
    expected = [_expected(api[i]) for i in sorted(api, key=int)]

    resp = app.get(f"/exports/runs/{run}/jobs.json")
    assert attachment_name(resp) == run.replace(":", "_") + "-jobs.json"
    assert "filename*=UTF-8''" + run.replace(":", "%3A") + "-jobs.json" \
        in resp.headers["Content-Disposition"]
    assert resp.json == expected
    assert [list(row) for row in resp.json] == [list(JOB_COLUMNS)] * len(expected)
    assert jsonl_rows(app.get(f"/exports/runs/{run}/jobs.jsonl").body) == expected

    body = app.get(f"/exports/runs/{run}/jobs.csv").body
    rows = csv_rows(body)
    assert [list(row) for row in rows] == [list(JOB_COLUMNS)] * len(expected)
    assert rows == [{k: cell(v) for k, v in job.items()} for job in expected]
    # the awkward text came back exactly, \r\n and lone \r included
    assert [row["description"] for row in rows[:len(AWKWARD)]] == AWKWARD
    assert rows[0]["success"] == "true" and rows[1]["success"] == "false"
    assert rows[-1]["job_id"] == "10" and rows[-1]["status"] == "queued"


def test_csv_is_rfc_4180(app, run):
    body = app.get(f"/exports/runs/{run}/jobs.csv").body
    body.decode("utf-8")  # UTF-8, no BOM
    assert not body.startswith(b"\xef\xbb\xbf") and body.endswith(b"\r\n")
    header = body.split(b"\r\n", 1)[0]
    assert header == ",".join(JOB_COLUMNS).encode()
    # fields with quotes, commas or line breaks are quoted, quotes doubled
    assert b'"comma, ""double quotes"", and a trailing backslash \\"' in body
    assert b'"line one\nline two\r\nline three\rend"' in body
    # nested values are compact JSON in one cell (PostgreSQL's JSONB orders the keys)
    assert b'""ubuntu@smithi001.front.sepia.ceph.com"":""ssh-ed25519 comma, ' in body
    assert b'""list"":[1,2.5,null,true]' in body and b'": ' not in body


def test_status_filter_and_bad_values(app, run):
    assert [j["job_id"] for j in
            app.get(f"/exports/runs/{run}/jobs.json?status=running").json] == \
        [str(i) for i in range(3, len(AWKWARD) + 1)]
    assert app.get(f"/exports/runs/{run}/jobs.json?status=dead").json == []
    assert app.get(f"/exports/runs/{run}/jobs.csv?status=bogus", status=400) \
        .json["message"].startswith("status must be one of pass, fail")
    assert app.get(f"/exports/runs/{run}/jobs.csv?branch=main", status=400) \
        .json["message"] == "unknown parameter 'branch'; this export takes: status"
    assert app.get(f"/exports/runs/{run}/jobs.csv?status=pass&status=fail", status=400) \
        .json["message"] == "status is given more than once"


def test_empty_run_and_unknown_run(app):
    name = run_name()
    post_run(app, name)
    assert app.get(f"/exports/runs/{name}/jobs.csv").body == \
        (",".join(JOB_COLUMNS) + "\r\n").encode()
    assert app.get(f"/exports/runs/{name}/jobs.json").json == []
    assert app.get(f"/exports/runs/{name}/jobs.jsonl").body == b""
    for fmt in ("csv", "json", "jsonl"):
        assert app.get(f"/exports/runs/no-such-run/jobs.{fmt}", status=404).json == \
            {"message": "run not found"}


def test_a_running_run_exports_as_it_stands(app):
    name = run_name()
    post_job(app, name, 1, status="running")
    post_job(app, name, 2, status="pass")
    run = app.get("/exports/runs.json").json[0]
    assert (run["name"], run["status"], run["counts"]["running"]) == (name, "running", 1)
    jobs = app.get(f"/exports/runs/{name}/jobs.json").json
    assert [(j["job_id"], j["status"]) for j in jobs] == [("1", "running"), ("2", "pass")]
    post_job(app, name, 3, status="running")
    assert len(app.get(f"/exports/runs/{name}/jobs.json").json) == 3


def test_many_jobs_stream_in_many_chunks(app, db_engine):
    from .test_runs import _wsgi_get

    name = run_name()
    post_run(app, name)
    bulk_jobs(db_engine, name, 2500)
    _, _, body = _wsgi_get(app.app, f"/exports/runs/{name}/jobs.csv")
    try:
        chunks = list(body)
    finally:
        body.close()
    assert len(chunks) > 5 and max(len(c) for c in chunks) < 128 * 1024
    rows = csv_rows(b"".join(chunks))
    assert [r["job_id"] for r in rows] == [str(i) for i in range(1, 2501)]
    assert rows[41]["description"] == 'job 42, "x"'
    assert rows[41]["targets"] == '{"ubuntu@smithi042.front":"ssh-ed25519 AAAA"}'
    assert app.get("/exports/runs.json").json[0]["counts"]["pass"] == 2500
    assert checked_out(db_engine) == 0
