"""Direct routes (paddles/direct.py): job creates and job reports are answered without
Pecan's dispatch, and a client cannot tell: the same status, headers and body as Pecan's
answer for every outcome, and the same rows left behind."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pecan
import pytest

from paddles import direct
from paddles.controllers.jobs import post_job, put_job
from tests.factories import run_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import write_bodies


# ---- which requests take the direct route ---------------------------------------------------

@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/runs/r1/jobs", (post_job, ("r1",))),
    ("PUT", "/runs/r1/jobs/7", (put_job, ("r1", "7"))),
    ("PUT", "/runs/teuthology-2024-01-15_20:00:03-rados/jobs/a.b",
     (put_job, ("teuthology-2024-01-15_20:00:03-rados", "a.b"))),
    # PATH_INFO carries UTF-8 as latin-1 (PEP 3333): the handler gets the text
    ("POST", "/runs/" + "rün".encode().decode("latin-1") + "/jobs", (post_job, ("rün",))),
    # a filter word is a job_id like any other below a run
    ("PUT", "/runs/r1/jobs/branch", (put_job, ("r1", "branch"))),
])
def test_job_writes_match(method, path, expected):
    assert direct.match(method, path) == expected


@pytest.mark.parametrize("method, path", [
    ("GET", "/runs/r1/jobs"),                 # reads, deletes: Pecan
    ("DELETE", "/runs/r1/jobs/7"),
    ("PUT", "/runs/r1/jobs"),                 # no such handler: Pecan's 405
    ("POST", "/runs/r1/jobs/7"),
    ("POST", "/runs/r1"),
    ("PUT", "/runs/r1/jobs/7/artifacts"),     # a job's children
    ("POST", "/nodes/r1/jobs"),
    ("POST", "/runs/branch/jobs"),            # filter words route to the filter chains
    ("POST", "/runs/queued/jobs"),
    ("POST", "/runs/get_all/jobs"),           # names of controller attributes, and private
    ("PUT", "/runs/r1/jobs/post/"[:-1]),      # names: Pecan's own routing decides
    ("PUT", "/runs/r1/jobs/_lookup"),
    ("POST", "/runs/_x/jobs"),
])
def test_other_requests_go_on_to_pecan(method, path):
    assert direct.match(method, path) is None


def test_direct_routes_do_not_reach_pecan(app, monkeypatch):
    run = run_name()
    app.post("/runs/", json.dumps({"name": run}))

    def refuse(self, environ, start_response):
        raise AssertionError(f"Pecan called for {environ['PATH_INFO']}")
    monkeypatch.setattr(pecan.Pecan, "__call__", refuse)
    assert app.post(f"/runs/{run}/jobs/", json.dumps({"job_id": "1"})).json == {"job_id": "1"}
    assert app.put(f"/runs/{run}/jobs/1/", json.dumps({"status": "running"})).json == {}
    with pytest.raises(AssertionError, match="Pecan called"):
        app.get(f"/runs/{run}/jobs/1/")


# ---- the same answers either way ------------------------------------------------------------

def _script(run: str) -> list[tuple[str, str, bytes | str]]:
    """A teuthology run's job writes and the mistakes a client can make."""
    jobs, job = f"/runs/{run}/jobs/", f"/runs/{run}/jobs/1/"
    dump = json.dumps
    return [
        ("POST", jobs, dump(write_bodies.create_body(run, 1))),        # new run, targets
        ("POST", jobs, dump(write_bodies.create_body(run, 2))),
        ("POST", jobs, dump(write_bodies.create_body(run, 1))),        # 400: exists
        ("POST", jobs, dump({"job_id": ""})),                           # next job_id
        ("POST", jobs, dump({"job_id": "x/y"})),                        # 400: job_id
        ("POST", jobs, dump({"job_id": "9", "priority": "high"})),     # 400: a field
        ("POST", jobs, "{not json"),                                    # 400: the body
        ("POST", jobs, ""),                                             # 400: no body
        ("POST", jobs, "{}"),                                           # 400: empty
        ("POST", f"/runs/{run}{'x' * 512}/jobs/", dump({"job_id": "1"})),  # 400: too long
        ("PUT", job, dump(write_bodies.running_body(run, 1))),
        ("PUT", job, dump({"name": run, "job_id": "1"})),               # heartbeat
        ("PUT", job, dump(write_bodies.finish_body(run, 1))),
        ("PUT", job, dump({"status": "nonsense"})),                     # 400: a field
        ("PUT", job, "[1, 2]"),                                         # 400: not an object
        ("PUT", f"/runs/{run}/jobs/404/", dump({"status": "pass"})),    # 404: job
        ("PUT", f"/runs/{run}x/jobs/1/", dump({"status": "pass"})),     # 404: run
        ("PUT", f"/runs/{run}/jobs/2", dump({"status": "dead"})),       # no trailing slash
        ("POST", jobs, dump({"job_id": "queued"})),                     # a filter word
        ("PUT", f"/runs/{run}/jobs/queued/", dump({"status": "running"})),
        ("DELETE", job, ""),                                            # Pecan either way
    ]


def _replay(app, run: str) -> list[tuple]:
    out = []
    for method, path, body in _script(run):
        response = app.request(path, method=method, body=body.encode(), expect_errors=True)
        headers = [(k, v) for k, v in response.headerlist if k != "X-Request-ID"]
        out.append((method, path.replace(run, "RUN"), response.status, headers,
                    response.body.decode().replace(run, "RUN")))
    return out


def _rows(app, run: str):
    """What reads show of the run afterwards, without the times the writes took."""
    def scrub(doc):
        return {k: v for k, v in doc.items() if k not in ("posted", "updated", "started")}
    detail = app.get(f"/runs/{run}/").json
    jobs = [scrub(j) for j in detail.pop("jobs")]
    text = json.dumps([scrub(detail), jobs]).replace(run, "RUN")
    events = [(e["type"], e.get("job_id")) for e in
              app.get("/events/", {"run": run, "limit": 100}).json["events"]]
    return json.loads(text), events


def test_same_answers_and_rows_with_and_without_the_direct_routes(app, monkeypatch):
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi"}))
    direct_run = run_name()
    answered_directly = _replay(app, direct_run)
    monkeypatch.setattr(direct, "match", lambda method, path: None)  # all through Pecan
    pecan_run = run_name()
    answered_by_pecan = _replay(app, pecan_run)
    assert answered_directly == answered_by_pecan
    statuses = [status for _, _, status, _, _ in answered_directly]
    assert statuses.count("200 OK") == 10 and "404 Not Found" in statuses
    assert _rows(app, direct_run) == _rows(app, pecan_run)
