"""Spec section 1: the global wire rules every route obeys."""
from __future__ import annotations

import json

import pytest
import webtest
from pecan.rest import RestController
from sqlalchemy import func, select

from paddles.app import make_app
from paddles.controllers import base
from paddles.controllers.base import Resource
from paddles.models import Job, Run
from paddles.settings import load_settings
from tests.factories import job_body, post_job, run_name

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "origin, authorization, accept",
}


def request(app, method, path, body=b"", status="*", **kw):
    if isinstance(body, str):
        body = body.encode()
    return app.request(path, method=method, body=body, status=status, expect_errors=True,
                       **kw)


def assert_cors(resp):
    for key, value in CORS.items():
        assert resp.headers.get(key) == value, key


def count_rows(session, model):
    session.rollback()  # end the snapshot: see what the app committed
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def run(app):
    name = run_name()
    post_job(app, name, job_id=1)
    return name


# ---- content type and CORS ----------------------------------------------------------------

@pytest.mark.parametrize("method,path,status", [
    ("GET", "/", 200),
    ("GET", "/runs/", 200),
    ("GET", "/runs/RUN/", 200),
    ("GET", "/runs/RUN/jobs/", 200),
    ("GET", "/runs/RUN/jobs/1/", 200),
    ("GET", "/runs/nope/", 404),
    ("GET", "/no/such/route/", 404),
    ("POST", "/runs/RUN/", 405),
    ("POST", "/runs/", 400),
    ("GET", "/errors/unavailable/", 503),
    ("OPTIONS", "/runs/", 200),
])
def test_every_response_is_json_with_cors_headers(app, run, method, path, status):
    resp = request(app, method, path.replace("RUN", run))
    assert resp.status_int == status
    assert resp.headers["Content-Type"] == "application/json"
    json.loads(resp.body)
    assert_cors(resp)


def test_liveness_is_empty_object(app):
    assert app.get("/").json == {}


# ---- OPTIONS --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/runs/", "/runs/x/", "/runs/x/jobs/1/", "/jobs/",
                                  "/runs/branch/main/", "/no/such/thing"])
def test_options_answers_empty_object_without_touching_the_database(app, queries, path):
    resp = request(app, "OPTIONS", path)
    assert resp.status_int == 200
    assert resp.json == {}
    assert_cors(resp)
    assert queries.count == 0


# ---- HEAD -----------------------------------------------------------------------------------

def test_head_existing_run_is_200_with_empty_body(app, run):
    resp = app.head(f"/runs/{run}/")
    assert resp.status_int == 200
    assert resp.body == b""
    assert resp.content_type == "application/json"
    assert_cors(resp)


def test_head_missing_run_is_404_with_empty_body(app):
    resp = app.head("/runs/no-such-run/", status=404)
    assert resp.body == b""
    assert_cors(resp)


@pytest.mark.parametrize("path", ["/", "/runs/", "/runs/RUN", "/runs/RUN/jobs/",
                                  "/runs/RUN/jobs/1", "/runs/branch/main/", "/runs/branch/",
                                  "/runs/queued/", "/jobs/"])
def test_head_matches_get_on_every_kind_of_resource(app, run, path):
    path = path.replace("RUN", run)
    got = app.get(path)
    head = app.head(path)
    assert head.status_int == got.status_int == 200
    assert head.body == b""
    assert head.content_type == got.content_type
    assert head.headers.get("Content-Length") == got.headers.get("Content-Length")


def test_head_is_served_by_the_get_handler_trick(app, run, monkeypatch):
    """Resource._handle_head reuses a Pecan internal; if Pecan changes, this must fail."""
    assert Resource._handle_head is RestController._handle_get
    # Without the line, RestController answers HEAD with 405: the line is what makes it work
    # (for the URLs routed RestController's way; the resource itself maps HEAD to its GET
    # handler in Resource._route, taken away here too)
    monkeypatch.delattr(Resource, "_handle_head")
    monkeypatch.delitem(base._HANDLERS, "HEAD")
    assert request(app, "HEAD", f"/runs/{run}/").status_int == 405


def test_every_success_is_exactly_200(app):
    """teuthology compares status_code == 200: never 201/204, never a redirect."""
    name = run_name()
    steps = [
        ("POST", "/runs", json.dumps({"name": name}), {}),
        ("POST", f"/runs/{name}/jobs", json.dumps({"job_id": 1}), {"job_id": "1"}),
        ("POST", f"/runs/{name}/jobs/", json.dumps({"job_id": 2}), {"job_id": "2"}),
        ("PUT", f"/runs/{name}/jobs/1", json.dumps({"status": "pass"}), {}),
        ("PUT", f"/runs/{name}/jobs/1/", json.dumps({"status": "pass"}), {}),
        ("DELETE", f"/runs/{name}/jobs/1", "", {}),
        ("DELETE", f"/runs/{name}/jobs/2/", "", {}),
        ("DELETE", f"/runs/{name}", "", {}),
    ]
    for method, path, body, answer in steps:
        resp = request(app, method, path, body)
        assert (resp.status_int, resp.json) == (200, answer), (method, path)


# ---- unsupported methods ----------------------------------------------------------------------

@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/runs/RUN/", {"GET", "HEAD", "DELETE"}),
    ("PUT", "/runs/RUN/", {"GET", "HEAD", "DELETE"}),
    ("PATCH", "/runs/RUN/", {"GET", "HEAD", "DELETE"}),
    ("DELETE", "/runs/", {"GET", "HEAD", "POST"}),
    ("PUT", "/runs/", {"GET", "HEAD", "POST"}),
    ("POST", "/runs/RUN/jobs/1/", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PATCH", "/runs/RUN/jobs/1", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PUT", "/runs/RUN/jobs/", {"GET", "HEAD", "POST"}),
    ("DELETE", "/runs/RUN/jobs/", {"GET", "HEAD", "POST"}),
    ("POST", "/runs/branch/main/", {"GET", "HEAD"}),
    ("DELETE", "/runs/queued/", {"GET", "HEAD"}),
    ("DELETE", "/jobs/", {"GET", "HEAD"}),
    ("PUT", "/", {"GET", "HEAD"}),
])
def test_unsupported_method_is_405_with_allow_header(app, run, method, path, allow):
    resp = request(app, method, path.replace("RUN", run), b"{}")
    assert resp.status_int == 405
    assert resp.json == {"message": "method not allowed"}
    assert {m.strip() for m in resp.headers["Allow"].split(",")} == allow
    assert_cors(resp)


@pytest.mark.parametrize("method,path,family", [
    ("POST", "/nodes/smithi001.front.sepia.ceph.com/", "nodes"),
    ("DELETE", "/queue/", "queue"),
])
def test_unsupported_method_on_nodes_and_queue_is_405(app, method, path, family):
    if family == "nodes":
        app.post("/nodes/", json.dumps({"name": "smithi001.front.sepia.ceph.com"}))
    resp = request(app, method, path, b"{}")
    assert resp.status_int == 405
    assert resp.json == {"message": "method not allowed"}
    assert resp.headers["Allow"]


def test_405_does_not_run_the_get_handler_or_write(app, run, session):
    request(app, "POST", f"/runs/{run}/", json.dumps(job_body()))
    request(app, "DELETE", "/runs/")
    assert count_rows(session, Run) == 1
    assert count_rows(session, Job) == 1


# ---- trailing slash, double slashes, segments ------------------------------------------------

@pytest.mark.parametrize("path", ["/runs/", "/runs/RUN/", "/runs/RUN/jobs/",
                                  "/runs/RUN/jobs/1/", "/runs/branch/main/",
                                  "/runs/date/from/2024-01-01/to/2024-01-31/", "/jobs/"])
def test_get_is_the_same_with_or_without_trailing_slash(app, run, path):
    slashed = path.replace("RUN", run)
    with_slash = app.get(slashed)
    without = app.get(slashed.rstrip("/"))
    assert with_slash.status_int == without.status_int == 200
    assert "Location" not in without.headers
    assert with_slash.json == without.json


def test_get_without_slash_keeps_query_string(app, run):
    body = app.get(f"/runs/{run}?fields=name").json  # teuthology-kill's call
    assert "jobs" in body and body["jobs"][0]["job_id"] == "1"


def test_post_without_trailing_slash(app):
    name = run_name()
    assert app.post("/runs", json.dumps({"name": name})).json == {}
    assert app.post(f"/runs/{name}/jobs", json.dumps(job_body(7))).json == {"job_id": "7"}
    assert app.head(f"/runs/{name}").status_int == 200


def test_put_without_trailing_slash_updates(app, run):
    resp = app.put(f"/runs/{run}/jobs/1", json.dumps({"status": "running"}))
    assert resp.status_int == 200 and "Location" not in resp.headers
    assert app.get(f"/runs/{run}/jobs/1/").json["status"] == "running"


def test_delete_without_trailing_slash_deletes(app, run):
    post_job(app, run, job_id=2)
    assert app.delete(f"/runs/{run}/jobs/2").json == {}
    app.get(f"/runs/{run}/jobs/2/", status=404)
    assert app.delete(f"/runs/{run}").json == {}
    app.get(f"/runs/{run}/", status=404)


@pytest.mark.parametrize("path", ["//runs/RUN/jobs/1/", "//runs//RUN//jobs//1//",
                                  "///runs/RUN"])
def test_repeated_slashes_collapse(app, run, path):
    resp = app.get(path.replace("RUN", run))
    assert resp.status_int == 200
    assert "Location" not in resp.headers


def test_put_with_double_slash(app, run):
    app.put(f"//runs/{run}//jobs/1/", json.dumps({"status": "pass"}))
    assert app.get(f"/runs/{run}/jobs/1/").json["status"] == "pass"


def test_segments_are_percent_decoded(app):
    name = run_name()
    post_job(app, name, job_id=1, status="pass")
    names = [r["name"] for r in app.get("/runs/status/finished%20pass/").json]
    assert names == [name]
    assert app.get("/runs/status/finished pass/").json[0]["name"] == name


def test_dots_in_run_names_route_normally(app):
    name = "jdoe-2024-01-15_20:00:03-rados-v18.2.1-distro-default-smithi.json"
    post_job(app, name, job_id="results.xml")
    assert app.get(f"/runs/{name}/").json["name"] == name
    assert app.get(f"/runs/{name}/jobs/results.xml/").json["job_id"] == "results.xml"
    assert app.get(f"/runs/{name}").content_type == "application/json"


# ---- bodies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded",
                                          "text/plain", "application/json"])
def test_body_is_json_whatever_the_content_type(app, content_type):
    name = run_name()
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(job_body(5, status="queued")).encode()
    resp = request(app, "POST", f"/runs/{name}/jobs/", body, headers=headers)
    assert resp.status_int == 200, resp.body
    assert resp.json == {"job_id": "5"}
    resp = request(app, "PUT", f"/runs/{name}/jobs/5/", b'{"status": "running"}',
                   headers=headers)
    assert resp.status_int == 200
    resp = request(app, "POST", "/runs/", json.dumps({"name": name + "-2"}), headers=headers)
    assert resp.status_int == 200
    assert app.get(f"/runs/{name}/jobs/5/").json["status"] == "running"


def test_request_without_content_type_header_really_has_none(app):
    """The helper above really sends no Content-Type for the `None` case."""
    name = run_name()
    req = webtest.TestRequest.blank(f"/runs/{name}/jobs/", method="POST", body=b'{"job_id": 1}')
    assert "CONTENT_TYPE" not in req.environ or not req.environ["CONTENT_TYPE"]
    assert app.do_request(req, status=200).json == {"job_id": "1"}


def test_unknown_query_params_are_ignored(app, run):
    assert app.get("/runs/?color=blue&x=").status_int == 200
    assert app.get(f"/runs/{run}/?fields=nonsense").json["name"] == run
    assert app.get(f"/runs/{run}/jobs/1/?fields=nonsense&foo=1").json["job_id"] == "1"
    assert app.get(f"/runs/{run}/jobs/?foo=bar").json[0]["job_id"] == "1"
    app.put(f"/runs/{run}/jobs/1/?foo=bar", json.dumps({"status": "dead"}))
    assert app.get("/jobs/?whatever=1").json[0]["status"] == "dead"


def test_oversized_body_is_413_and_nothing_is_written(database_url, session_factory, session):
    small = load_settings(environ={}, database_url=database_url, max_body_size=1000)
    app = webtest.TestApp(make_app(small, session_factory=session_factory))
    name = run_name()
    big = json.dumps(job_body(1, description="x" * 2000))
    resp = request(app, "POST", f"/runs/{name}/jobs/", big)
    assert resp.status_int == 413
    assert resp.content_type == "application/json"
    assert set(resp.json) == {"message"}
    assert_cors(resp)
    assert count_rows(session, Run) == 0
    # a body under the limit still works on the same app
    assert app.post(f"/runs/{name}/jobs/", json.dumps({"job_id": 1})).json == {"job_id": "1"}
    resp = request(app, "PUT", f"/runs/{name}/jobs/1/", json.dumps({"status": "pass",
                                                                     "failure_reason": "y" * 2000}))
    assert resp.status_int == 413
    session.rollback()  # end the snapshot: see what the app committed
    assert session.scalar(select(Job.status)).value == "unknown"


# ---- error pseudo-routes and unknown routes ---------------------------------------------------

@pytest.mark.parametrize("route,status,default", [
    ("invalid", 400, "invalid request"),
    ("forbidden", 403, "forbidden"),
    ("not_found", 404, "resource was not found"),
    ("unavailable", 503, "service unavailable"),
])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_error_routes_answer_any_method_with_defaults(app, route, status, default, method):
    for path in (f"/errors/{route}/", f"/errors/{route}"):
        resp = request(app, method, path)
        assert resp.status_int == status
        assert resp.json == {"message": default}
        assert_cors(resp)


@pytest.mark.parametrize("text", ["job %d went away", "a+b; c&d = 100%", "line\nbreak"])
def test_error_routes_send_the_message_verbatim(app, text):
    resp = app.get("/errors/invalid/", {"error_message": text}, status=400)
    assert resp.json == {"message": text}


def test_nothing_else_under_errors(app):
    for path in ("/errors/", "/errors/teapot/", "/errors/notfound/"):
        assert request(app, "GET", path).status_int == 404


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/nothing-here/", "/runs/RUN/bogus/", "/runs/RUN/jobs/1/x/",
                                  "/jobs/x/", "/runs/queued/x/", "/runs/kittens/x/jobs/1/y/"])
def test_unknown_routes_are_404_json(app, run, method, path):
    resp = request(app, method, path.replace("RUN", run), b"{}")
    assert resp.status_int == 404
    assert set(resp.json) == {"message"}
    assert_cors(resp)


@pytest.mark.parametrize("route", ["invalid", "forbidden", "not_found", "unavailable"])
def test_error_routes_take_no_extra_segments(app, route):
    resp = app.get(f"/errors/{route}/extra/", status=404)
    assert resp.json == {"message": "resource was not found"}


@pytest.mark.parametrize("override", ["delete", "put", "DELETE"])
def test_method_override_parameter_is_ignored(app, run, session, override):
    """Pecan's `_method` override must not turn a POST into a DELETE or PUT."""
    resp = app.post(f"/runs/{run}/?_method={override}", "{}", status=405)
    assert resp.json == {"message": "method not allowed"}
    assert session.scalar(select(func.count()).select_from(Run).where(Run.name == run)) == 1
