"""/exports/runs.{csv,json,jsonl}: every run the list routes show, read back with the csv and
json modules and compared with /runs/; filters; 400s; headers; the streamed body's own
session."""
from __future__ import annotations

import io
import json

import pytest

from paddles.services.exports import RUN_COLUMNS
from tests.factories import checked_out, post_job, post_run, run_name

from .conftest import attachment_name, csv_rows, iso, jsonl_rows

COUNTS = ("queued", "pass", "running", "waiting", "fail", "dead", "unknown", "total")


@pytest.fixture
def runs(app):
    """Four runs: finished pass, running (with a queued job), finished fail, empty."""
    made = {
        "passed": run_name(user="alice", when="2024-01-10_08:00:00", suite="rados"),
        "running": run_name(user="bob", when="2024-01-12_09:30:00", suite="fs"),
        "failed": run_name(user="alice", when="2024-01-14_23:59:59", suite="rbd"),
        "empty": run_name(user="carol", when="2024-01-16_00:00:00", suite="rgw"),
    }
    post_job(app, made["passed"], 1, status="pass", sha1="aaaa1111", branch="reef",
             suite="rados")
    post_job(app, made["passed"], 2, status="pass", sha1="aaaa1111", branch="reef",
             suite="rados")
    post_job(app, made["running"], 1, status="running", sha1="bbbb2222", branch="main",
             suite="fs", machine_type="mira")
    post_job(app, made["running"], 2, status="queued", sha1="bbbb2222", branch="main",
             suite="fs", machine_type="mira")
    post_job(app, made["failed"], 1, status="fail", sha1="cccc3333", branch="main",
             suite="rbd", flavor="crimson")
    post_job(app, made["failed"], 2, status="dead", sha1="cccc3333", branch="main",
             suite="rbd", flavor="crimson")
    post_run(app, made["empty"])
    return made


def _expected(api_run: dict) -> dict:
    """What the export says about a run, from the /runs/ API."""
    counts = {k: api_run["results"][k] for k in COUNTS}
    return {"name": api_run["name"], "user": api_run["user"], "suite": api_run["suite"],
            "branch": api_run["branch"],
            "sha1": None if api_run["jobs_count"] == 0 else api_run["sha1"],
            "machine_type": api_run["machine_type"], "status": api_run["status"],
            "counts": counts, "scheduled": iso(api_run["scheduled"]),
            "started": iso(api_run["started"]), "updated": iso(api_run["updated"])}


def test_runs_round_trip_in_every_format(app, runs):
    api = {r["name"]: r for r in app.get("/runs/").json}
    by_scheduled = sorted(api.values(), key=lambda r: r["scheduled"], reverse=True)

    as_json = app.get("/exports/runs.json")
    assert as_json.headers["Content-Type"] == "application/json"
    assert attachment_name(as_json) == "runs.json"
    data = as_json.json
    assert [r["name"] for r in data] == [r["name"] for r in by_scheduled]
    for row in data:
        assert list(row) == [*RUN_COLUMNS[:7], "counts", "scheduled", "started", "updated",
                             "duration"]
        expected = _expected(api[row["name"]])
        assert {k: row[k] for k in expected} == expected
    assert {r["name"]: r["status"] for r in data} == {
        runs["passed"]: "finished pass", runs["running"]: "running",
        runs["failed"]: "finished fail", runs["empty"]: "empty"}
    running = next(r for r in data if r["name"] == runs["running"])
    assert running["counts"] == {**dict.fromkeys(COUNTS, 0), "running": 1, "queued": 1,
                                 "total": 2}
    assert running["started"] is not None and running["duration"] >= 0
    empty = next(r for r in data if r["name"] == runs["empty"])
    assert (empty["started"], empty["duration"], empty["sha1"]) == (None, None, None)

    jsonl = app.get("/exports/runs.jsonl")
    assert jsonl.headers["Content-Type"] == "application/jsonl"
    assert jsonl_rows(jsonl.body) == data

    as_csv = app.get("/exports/runs.csv")
    assert as_csv.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert attachment_name(as_csv) == "runs.csv"
    assert as_csv.body.split(b"\r\n", 1)[0].decode().split(",") == list(RUN_COLUMNS)
    rows = csv_rows(as_csv.body)
    assert len(rows) == len(data)
    for row, obj in zip(rows, data):
        flat = {k: v for k, v in obj.items() if k != "counts"}
        flat.update({f"jobs_{k}": v for k, v in obj["counts"].items()})
        assert row == {k: "" if v is None else str(v) for k, v in flat.items()}


@pytest.mark.parametrize("query,expected", [
    ("branch=reef", {"passed"}),
    ("suite=fs", {"running"}),
    ("machine_type=mira", {"running"}),
    ("status=running", {"running"}),
    ("status=finished%20fail", {"failed"}),
    ("user=alice", {"passed", "failed"}),
    ("sha1=bbbb", {"running"}),
    ("sha1=cccc3333", {"failed"}),
    ("flavor=crimson", {"failed"}),
    ("since=2024-01-12", {"running", "failed", "empty"}),
    ("until=2024-01-14", {"passed", "running", "failed"}),
    ("since=2024-01-11&until=2024-01-13", {"running"}),
    ("until=2024-01-14T23:59:58Z", {"passed", "running"}),
    ("since=2024-01-12T09:30:00%2B00:00", {"running", "failed", "empty"}),
    ("user=alice&branch=main&status=finished%20fail", {"failed"}),
    ("user=nobody", set()),
])
def test_run_filters(app, runs, query, expected):
    names = {r["name"] for r in app.get(f"/exports/runs.json?{query}").json}
    assert names == {runs[key] for key in expected}
    assert {r["name"] for r in csv_rows(app.get(f"/exports/runs.csv?{query}").body)} == names


def test_filters_match_the_url_chains(app, runs):
    for path in ("branch/main", "user/alice", "status/running", "machine_type/mira",
                 "sha1/cccc"):
        key, value = path.split("/")
        chain = {r["name"] for r in app.get(f"/runs/{path}/?count=1000").json}
        assert {r["name"] for r in app.get(f"/exports/runs.json?{key}={value}").json} == chain


@pytest.mark.parametrize("query,message", [
    ("status=bogus", "status must be one of empty, queued"),
    ("since=last-week", "since must be YYYY-MM-DD"),
    ("until=2024-13-01", "until must be YYYY-MM-DD"),
    ("colour=blue", "unknown filter 'colour'"),
    ("branch=a&branch=b", "branch is given more than once"),
    ("user=", "user must not be empty"),
])
def test_bad_filter_values_are_400(app, query, message):
    for fmt in ("csv", "json", "jsonl"):
        resp = app.get(f"/exports/runs.{fmt}?{query}", status=400)
        assert resp.json["message"].startswith(message)


def test_no_runs_gives_a_header_or_an_empty_array(app):
    assert app.get("/exports/runs.csv").body.decode() == ",".join(RUN_COLUMNS) + "\r\n"
    assert app.get("/exports/runs.json").json == []
    assert app.get("/exports/runs.jsonl").body == b""


def test_unknown_formats_and_paths_are_404(app):
    for path in ("/exports/runs.xml", "/exports/runs", "/exports/jobs.csv",
                 "/exports/runs/x/runs.csv", "/exports/runs/x/jobs.xml", "/exports/runs/x",
                 "/exports/runs/x/tests.junit", "/exports/runs/x/y/jobs.csv"):
        assert app.get(path, status=404).json == {"message": "resource was not found"}


def test_trailing_slash_and_head(app, runs, db_engine):
    body = app.get("/exports/runs.csv").body
    assert app.get("/exports/runs.csv/").body == body
    head = app.head("/exports/runs.csv")
    assert head.status_int == 200 and head.body == b""
    assert head.headers["Content-Disposition"] == app.get("/exports/runs.csv") \
        .headers["Content-Disposition"]
    assert checked_out(db_engine) == 0


def _wsgi_get(wsgi_app, path: str):
    """(status, headers, body iterable) from a plain WSGI call: the body not yet read."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "paddles.test", "SERVER_PORT": "80",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO()}
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    body = wsgi_app(environ, start_response)
    return captured["status"], captured["headers"], body


def test_the_body_streams_on_its_own_session_after_the_request_ends(app, runs, db_engine):
    """The handler has returned (and DBSessionHook closed the request's session) after
    making the first chunk (a failure there is still a JSON error: test_failures.py); the
    body holds its own connection, its cursor open, until it is closed."""
    status, headers, body = _wsgi_get(app.app, "/exports/runs.jsonl")
    assert status == "200 OK" and "Content-Length" not in headers
    assert db_engine.pool.checkedout() == 1  # the export's own session, the request's closed
    first = next(iter(body))
    assert db_engine.pool.checkedout() == 1
    rest = b"".join(body)
    body.close()
    assert checked_out(db_engine) == 0
    assert [json.loads(line)["name"] for line in (first + rest).splitlines()] == \
        [r["name"] for r in app.get("/exports/runs.json").json]


def test_a_body_closed_early_releases_its_connection(app, runs, db_engine):
    _, _, body = _wsgi_get(app.app, "/exports/runs.csv")
    next(iter(body))
    body.close()  # a client that went away
    assert checked_out(db_engine) == 0
    _, _, body = _wsgi_get(app.app, "/exports/runs.csv")
    body.close()  # never read at all
    assert checked_out(db_engine) == 0
