"""Spec 3.1-3.8 and 6.1: runs, their filter chains, value indexes and the run summary."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import webtest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from paddles.schemas import common as schemas
from paddles.app import make_app
from paddles.db import make_engine
from paddles.models import Job, Node, job_nodes
from paddles.serializers import wire_time
from paddles.settings import load_settings
from tests.factories import post_job, post_run, put_job, run_name

DATE_MSG = {"message": "date format must match %Y-%m-%d"}
PAGING_MSG = {"message": "count and page must be integers"}
SUMMARY_KEYS = ["name", "href", "user", "status", "results", "jobs_count", "posted",
                "scheduled", "started", "updated", "branch", "suite", "machine_type", "sha1",
                "priority", "flavor"]
RESULT_KEYS = ["queued", "pass", "running", "waiting", "fail", "dead", "unknown", "total",
               "sha1", "flavor"]
WIRE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")

SHA_A = "abc1230000000000000000000000000000000000"
SHA_B = "abd4560000000000000000000000000000000000"
SHA_C = "fff0000000000000000000000000000000000000"


def names(resp_or_list):
    items = resp_or_list.json if hasattr(resp_or_list, "json") else resp_or_list
    return [r["name"] for r in items]


def make_run(app, user, when, *, status="pass", branch="main", suite="rados",
             machine_type="smithi", sha1=SHA_A, flavor="default", job_id=1, **fields):
    name = run_name(user=user, when=when, suite=suite, branch=branch,
                    machine_type=machine_type)
    post_job(app, name, job_id=job_id, status=status, branch=branch, suite=suite,
             machine_type=machine_type, sha1=sha1, flavor=flavor, **fields)
    return name


@pytest.fixture
def corpus(app):
    """Four runs with distinct attributes; returned by letter."""
    return {
        "A": make_run(app, "alice", "2024-01-15_10:00:00", status="pass"),
        "B": make_run(app, "bob", "2024-01-16_00:00:00", status="fail", suite="fs",
                      machine_type="mira", sha1=SHA_B, flavor="crimson"),
        "C": make_run(app, "alice", "2024-01-17_23:59:59", status="running", branch="reef",
                      sha1=SHA_C),
        "D": make_run(app, "carol", "2024-01-14_12:00:00", status="queued", branch="reef",
                      suite="rgw"),
    }


def small_default_app(database_url, session_factory, count):
    settings = load_settings(environ={}, database_url=database_url,
                             address="http://paddles.test", default_latest_runs_count=count)
    return webtest.TestApp(make_app(settings, session_factory=session_factory))


# ---- 3.1 GET /runs/ -------------------------------------------------------------------------

def test_runs_are_ordered_by_posted_not_scheduled(app, corpus):
    assert names(app.get("/runs/")) == [corpus[k] for k in "DCBA"]


def test_runs_default_count_comes_from_config(database_url, session_factory):
    app = small_default_app(database_url, session_factory, 3)
    made = [post_run(app, run_name()) or None for _ in range(5)]
    assert len(made) == 5
    assert len(app.get("/runs/").json) == 3
    assert len(app.get("/runs/", {"page": 2}).json) == 2
    assert len(app.get("/runs/", {"count": 10}).json) == 5


def test_runs_pagination(app):
    created = [run_name() for _ in range(5)]
    for name in created:
        post_run(app, name)
    newest_first = created[::-1]
    assert names(app.get("/runs/?count=2")) == newest_first[:2]
    assert names(app.get("/runs/?count=2&page=1")) == newest_first[:2]
    assert names(app.get("/runs/?count=2&page=0")) == newest_first[:2]
    assert names(app.get("/runs/?count=2&page=2")) == newest_first[2:4]
    assert names(app.get("/runs/?count=2&page=3")) == newest_first[4:]
    assert app.get("/runs/?count=2&page=4").json == []
    assert app.get("/runs/?count=2&page=400").json == []
    assert app.get("/runs/?count=0").json == []


@pytest.mark.parametrize("query", ["count=x", "count=-1", "page=-2", "page=1.5", "count=1e3",
                                   "count=2&page=two"])
def test_runs_bad_paging_is_400(app, query):
    assert app.get(f"/runs/?{query}", status=400).json == PAGING_MSG


def test_runs_since_is_ignored_on_the_plain_list(app, corpus):
    assert len(app.get("/runs/?since=2030-01-01").json) == 4
    assert len(app.get("/runs/?since=garbage").json) == 4


# ---- 3.8 fields -----------------------------------------------------------------------------

def test_fields_accepts_every_summary_key(app, corpus):
    full = app.get("/runs/").json
    sliced = app.get("/runs/", {"fields": ",".join(SUMMARY_KEYS)}).json
    assert sliced == full
    for key in SUMMARY_KEYS:
        assert app.get("/runs/", {"fields": key}).json[0] == {key: full[0][key]}


def test_fields_keeps_only_the_named_keys(app, corpus):
    body = app.get("/runs/?fields=,name,status,_private,_sa_instance_state,").json
    assert body[0] == {"name": corpus["D"], "status": "queued"}
    assert all(set(item) == {"name", "status"} for item in body)


@pytest.mark.parametrize("field", ["id", "jobs", "count_total", "bogus", "name,nope",
                                   "results.total"])
def test_fields_rejects_unknown_names(app, corpus, field):
    resp = app.get("/runs/", {"fields": field}, status=400)
    assert resp.json == {"message": "an invalid field was specified"}


def test_fields_with_pagination(app, corpus):
    assert app.get("/runs/?fields=name&count=1&page=2").json == [{"name": corpus["C"]}]


# ---- 3.2 POST /runs/ ------------------------------------------------------------------------

def test_post_run_creates_an_empty_run(app):
    name = "teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana"
    assert app.post("/runs/", json.dumps({"name": name, "color": "blue"})).json == {}
    body = app.get(f"/runs/{name}/").json
    assert body["status"] == "empty"
    assert body["jobs"] == []
    assert (body["user"], body["suite"], body["branch"], body["machine_type"]) == \
        ("teuthology", "big", "next", "plana")
    assert body["scheduled"] == "2013-10-22 03:00:02"
    assert WIRE_TIME.match(body["posted"])
    assert body["started"] is None


def test_post_unparsable_run_name_defaults(app):
    post_run(app, "whatup")
    body = app.get("/runs/whatup/").json
    assert (body["user"], body["suite"], body["branch"], body["machine_type"]) == ("", "", "",
                                                                                     "")
    assert body["scheduled"] == body["posted"]


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"[1, 2]", b'"name"', b"null"])
def test_post_run_bad_json(app, body):
    resp = app.post("/runs/", body, status=400)
    assert resp.json == {"message": "could not decode JSON body"}


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": None}, {"nam": "x"}])
def test_post_run_without_name(app, body):
    resp = app.post("/runs/", json.dumps(body), status=400)
    assert resp.json == {"message": "could not find required key: 'name'"}


def test_post_existing_run(app):
    name = run_name()
    post_run(app, name)
    resp = app.post("/runs/", json.dumps({"name": name}), status=400)
    assert resp.json == {"message": f"run with name {name} already exists"}
    assert len(app.get("/runs/").json) == 1


# ---- 3.3 / 3.4 single run ---------------------------------------------------------------------

def test_get_missing_run(app):
    assert app.get("/runs/nope/", status=404).json == {"message": "run not found"}
    assert app.get("/runs/nope", status=404).json == {"message": "run not found"}


def test_head_run(app):
    name = run_name()
    app.head(f"/runs/{name}/", status=404)
    post_run(app, name)
    assert app.head(f"/runs/{name}/").status_int == 200


def test_run_detail_is_summary_plus_jobs(app):
    name = run_name()
    post_job(app, name, job_id=1)
    detail = app.get(f"/runs/{name}/").json
    summary = app.get("/runs/").json[0]
    assert list(detail) == SUMMARY_KEYS + ["jobs"]
    assert {k: v for k, v in detail.items() if k != "jobs"} == summary
    assert detail["jobs"] == [app.get(f"/runs/{name}/jobs/1/").json]


def test_jobs_in_run_are_in_numeric_then_string_order(app):
    name = run_name()
    for job_id in ["10", "b", "2", "a", "1", "9", "100", "A10"]:
        post_job(app, name, job_id=job_id)
    ids = [j["job_id"] for j in app.get(f"/runs/{name}/").json["jobs"]]
    assert ids == ["1", "2", "9", "10", "100", "A10", "a", "b"]


def test_delete_run_removes_jobs_and_links_but_keeps_nodes(app, session):
    name = run_name()
    post_job(app, name, job_id=1, targets={"ubuntu@smithi001.front": "ssh-rsa x"})
    post_job(app, name, job_id=2)
    other = run_name()
    post_job(app, other, job_id=1, targets={"ubuntu@smithi001.front": "ssh-rsa x"})
    assert app.delete(f"/runs/{name}/").json == {}
    app.get(f"/runs/{name}/", status=404)
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert session.scalar(select(func.count()).select_from(job_nodes)) == 1
    assert session.scalars(select(Node.name)).all() == ["smithi001.front"]
    assert app.get(f"/runs/{other}/").json["jobs_count"] == 1


def test_delete_missing_run(app):
    resp = app.delete("/runs/nope/", status=404)
    assert resp.json == {"message": "attempted to delete a non-existent run"}


# ---- 6.1 summary shape ------------------------------------------------------------------------

def test_summary_shape_and_key_order(app):
    name = run_name(user="alice", when="2024-01-15_20:00:03")
    post_job(app, name, job_id=1, status="pass", priority=70)
    post_job(app, name, job_id=2, status="running")
    summary = app.get("/runs/").json[0]
    assert list(summary) == SUMMARY_KEYS
    assert list(summary["results"]) == RESULT_KEYS
    assert summary["href"] == [f"http://paddles.test/runs/{name}/"]
    assert summary["user"] == "alice"
    assert summary["status"] == "running"
    assert summary["results"] == {"queued": 0, "pass": 1, "running": 1, "waiting": 0,
                                  "fail": 0, "dead": 0, "unknown": 0, "total": 2,
                                  "sha1": summary["sha1"], "flavor": "default"}
    assert summary["jobs_count"] == 2
    assert summary["scheduled"] == "2024-01-15 20:00:03"
    for key in ("posted", "started", "updated"):
        assert WIRE_TIME.match(summary[key]), key
    assert (summary["branch"], summary["suite"], summary["machine_type"]) == \
        ("main", "rados", "smithi")
    assert summary["priority"] == 70


def test_summary_of_empty_run(app):
    post_run(app, "whatup")
    summary = app.get("/runs/").json[0]
    assert summary["sha1"] == summary["flavor"] == "none"
    assert summary["results"]["sha1"] == summary["results"]["flavor"] == "none"
    assert summary["priority"] is None
    assert summary["jobs_count"] == summary["results"]["total"] == 0
    assert summary["status"] == "empty"
    assert summary["updated"] is None


def test_summary_first_job_values_follow_job_id_order(app):
    name = run_name()
    post_job(app, name, job_id=10, priority=5, sha1="1" * 40, flavor="f10")
    post_job(app, name, job_id="x", priority=1, sha1="x" * 40, flavor="fx")
    post_job(app, name, job_id=2, priority=9, sha1="2" * 40, flavor="f2")
    summary = app.get(f"/runs/{name}/").json
    assert (summary["priority"], summary["sha1"], summary["flavor"]) == (9, "2" * 40, "f2")
    app.delete(f"/runs/{name}/jobs/2/")
    summary = app.get("/runs/").json[0]
    assert (summary["priority"], summary["sha1"], summary["flavor"]) == (5, "1" * 40, "f10")
    # a PUT on the first job moves the summary with it
    put_job(app, name, 10, flavor="changed", status="queued")
    assert app.get("/runs/").json[0]["flavor"] == "changed"


def test_datetimes_render_like_python_str():
    utc = dt.timezone.utc
    assert wire_time(dt.datetime(2024, 1, 15, 20, 0, 3, tzinfo=utc)) == "2024-01-15 20:00:03"
    assert wire_time(dt.datetime(2024, 1, 15, 20, 0, 3, 218113, tzinfo=utc)) == \
        "2024-01-15 20:00:03.218113"
    est = dt.timezone(dt.timedelta(hours=-5))
    assert wire_time(dt.datetime(2024, 1, 15, 15, 0, 3, tzinfo=est)) == "2024-01-15 20:00:03"
    assert wire_time(None) is None


def test_client_updated_without_fraction_renders_without_fraction(app):
    name = run_name()
    post_job(app, name, job_id=1, updated="2024-01-15 20:00:03.5")
    assert app.get(f"/runs/{name}/").json["updated"] == "2024-01-15 20:00:03"


# ---- 3.5 filter chains --------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("/runs/branch/main/", "BA"),
    ("/runs/branch/reef/", "CD"),
    ("/runs/suite/rados/", "CA"),
    ("/runs/machine_type/mira/", "B"),
    ("/runs/machine_type/smithi/", "CAD"),
    ("/runs/status/finished pass/", "A"),
    ("/runs/status/running/", "C"),
    ("/runs/status/queued/", "D"),
    ("/runs/status/bogus/", ""),
    ("/runs/user/alice/", "CA"),
    ("/runs/user/nobody/", ""),
    ("/runs/sha1/ab/", "BAD"),
    ("/runs/sha1/abc/", "AD"),
    ("/runs/sha1/" + SHA_A + "/", "AD"),
    ("/runs/sha1/fff/", "C"),
    ("/runs/sha1/%25/", ""),
    ("/runs/flavors/default/", "CAD"),
    ("/runs/flavors/crimson/", "B"),
    ("/runs/date/2024-01-15/", "A"),
    ("/runs/date/2024-1-16/", "B"),
    ("/runs/date/2024-01-17/", "C"),
])
def test_single_filters(app, corpus, path, expected):
    assert names(app.get(path)) == [corpus[k] for k in expected]


@pytest.mark.parametrize("path,expected", [
    ("/runs/branch/main/suite/rados/", "A"),
    ("/runs/suite/rados/branch/main/", "A"),
    ("/runs/branch/reef/status/queued/", "D"),
    ("/runs/branch/reef/suite/rgw/status/queued/user/carol/", "D"),
    ("/runs/branch/main/suite/fs/status/finished fail/", "B"),
    ("/runs/user/alice/machine_type/smithi/", "CA"),
    ("/runs/sha1/ab/date/2024-01-16/", "B"),
    ("/runs/sha1/abc/flavor/default/", "AD"),
    ("/runs/sha1/abc/flavor/crimson/", ""),
    ("/runs/sha1/ab/flavor/crimson/", "B"),
    ("/runs/flavors/crimson/sha1/abd/", "B"),
    ("/runs/flavors/default/sha1/fff/", "C"),
    ("/runs/flavors/default/branch/reef/", "CD"),
    ("/runs/machine_type/smithi/flavor/crimson/", ""),
    ("/runs/branch/main/suite/rados/branch/main/", "A"),  # not neighbours: allowed
    ("/runs/status/running/date/2024-01-17/", "C"),
])
def test_nested_filters(app, corpus, path, expected):
    assert names(app.get(path)) == [corpus[k] for k in expected]


def test_filters_see_job_values_copied_onto_the_run(app):
    # modern names mis-parse; the first job write repairs suite/branch/machine_type
    name = "jdoe-2024-01-15_20:00:03-rados:thrash-wip-jdoe-fix-distro-default-smithi"
    post_run(app, name)
    assert app.get("/runs/branch/wip-jdoe-fix/").json == []
    post_job(app, name, job_id=1, branch="wip-jdoe-fix", suite="rados:thrash",
             machine_type="smithi")
    assert names(app.get("/runs/branch/wip-jdoe-fix/suite/rados:thrash/machine_type/smithi/"))\
        == [name]


@pytest.mark.parametrize("path", [
    "/runs/branch/main/branch/main/",
    "/runs/branch/main/branch/",
    "/runs/suite/rados/suite/fs/",
    "/runs/flavors/default/flavor/default/",
    "/runs/kittens/x/",
    "/runs/branch/main/kittens/x/",
    "/runs/branch/main/flavors/default/",   # nested spelling is singular
    "/runs/flavor/default/",                # top-level spelling is plural
    "/runs/branch/main/queued/",
    "/runs/queued/branch/main/",
    "/runs/date/from/2024-01-01/to/2024-01-31/branch/main/",
    "/runs/date/from/2024-01-01/to/",
    "/runs/date/from/2024-01-01/until/2024-01-31/",
])
def test_bad_chains_are_404(app, corpus, path):
    resp = app.get(path, status=404)
    assert set(resp.json) == {"message"}


def test_reserved_words_shadow_run_names(app):
    post_run(app, "branch")
    # /runs/branch/ is the branch index, not the run named "branch"
    assert app.get("/runs/branch/").json == []


def test_filter_leaf_is_ordered_by_scheduled_and_paginated(app, corpus):
    assert names(app.get("/runs/machine_type/smithi/")) == [corpus[k] for k in "CAD"]
    assert names(app.get("/runs/machine_type/smithi/?count=2")) == [corpus["C"], corpus["A"]]
    assert names(app.get("/runs/machine_type/smithi/?count=2&page=2")) == [corpus["D"]]
    assert app.get("/runs/machine_type/smithi/?count=2&page=3").json == []
    assert app.get("/runs/machine_type/smithi/?count=0").json == []
    assert app.get("/runs/machine_type/smithi/?count=-1", status=400).json == PAGING_MSG
    assert app.get("/runs/date/2024-01-15/?page=x", status=400).json == PAGING_MSG


def test_filter_leaf_default_count_comes_from_config(database_url, session_factory):
    app = small_default_app(database_url, session_factory, 2)
    for _ in range(3):
        post_job(app, run_name(), job_id=1)
    assert len(app.get("/runs/branch/main/").json) == 2


def test_filter_leaf_ignores_fields(app, corpus):
    body = app.get("/runs/branch/main/?fields=name").json
    assert list(body[0]) == SUMMARY_KEYS


# ---- value indexes -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("/runs/branch/", ["main", "reef"]),
    ("/runs/suite/", ["fs", "rados", "rgw"]),
    ("/runs/machine_type/", ["mira", "smithi"]),
    ("/runs/user/", ["alice", "bob", "carol"]),
    ("/runs/status/", ["finished fail", "finished pass", "queued", "running"]),
    ("/runs/date/", ["2024-01-14", "2024-01-15", "2024-01-16", "2024-01-17"]),
    ("/runs/sha1/", [SHA_A, SHA_B, SHA_C]),
    ("/runs/flavors/", ["crimson", "default"]),
    ("/runs/branch/main/suite/", ["fs", "rados"]),
    ("/runs/user/alice/branch/", ["main", "reef"]),
    ("/runs/branch/reef/date/", ["2024-01-14", "2024-01-17"]),
    ("/runs/suite/rados/status/", ["finished pass", "running"]),
    ("/runs/date/2024-01-16/user/", ["bob"]),
    # REQ: job-valued indexes honour the chain
    ("/runs/branch/main/sha1/", [SHA_A, SHA_B]),
    ("/runs/branch/reef/sha1/", [SHA_A, SHA_C]),
    ("/runs/branch/main/flavor/", ["crimson", "default"]),
    ("/runs/suite/rados/flavor/", ["default"]),
    ("/runs/sha1/abd/flavor/", ["crimson"]),
    ("/runs/flavors/default/sha1/", [SHA_A, SHA_C]),
    ("/runs/status/running/sha1/", [SHA_C]),
    ("/runs/user/nobody/sha1/", []),
])
def test_value_indexes(app, corpus, path, expected):
    assert app.get(path).json == expected


def test_value_index_skips_empty_values(app, corpus):
    post_run(app, "whatup")  # user, suite, branch "" ; no jobs
    name = run_name()
    post_job(app, name, job_id=1, flavor=None, sha1=None, branch="")
    assert app.get("/runs/user/").json == ["alice", "bob", "carol", "teuthology"]
    assert app.get("/runs/branch/").json == ["main", "reef"]
    assert app.get("/runs/flavors/").json == ["crimson", "default"]
    assert app.get("/runs/sha1/").json == [SHA_A, SHA_B, SHA_C]


def test_sha1_index_only_counts_jobs_of_matching_runs(app, corpus):
    # a job of another branch carrying a different sha1 must not leak into main's index
    post_job(app, corpus["C"], job_id=2, sha1="0" * 40, status="running", branch="reef")
    assert app.get("/runs/branch/main/sha1/").json == [SHA_A, SHA_B]
    assert app.get("/runs/branch/reef/sha1/").json == ["0" * 40, SHA_A, SHA_C]


def test_date_index_is_utc_whatever_the_database_session_zone(database_url, settings, corpus,
                                                                app):
    """PostgreSQL's date() of a timestamptz follows the session zone; ours must not."""
    kw = {}
    if database_url.startswith("postgresql"):
        kw["connect_args"] = {"options": "-c timezone=Pacific/Auckland"}
    engine = make_engine(database_url, **kw)
    try:
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        other = webtest.TestApp(make_app(settings, session_factory=factory))
        assert other.get("/runs/date/").json == ["2024-01-14", "2024-01-15", "2024-01-16",
                                                  "2024-01-17"]
        assert names(other.get("/runs/date/2024-01-16/")) == [corpus["B"]]
    finally:
        engine.dispose()


# ---- since ---------------------------------------------------------------------------------------

def test_since_keeps_runs_scheduled_from_that_midnight(app, corpus):
    # B is scheduled at exactly 2024-01-16 00:00:00: included (REQ)
    assert names(app.get("/runs/branch/main/?since=2024-01-16")) == [corpus["B"]]
    assert names(app.get("/runs/branch/main/?since=2024-01-15")) == [corpus["B"], corpus["A"]]
    assert app.get("/runs/branch/main/?since=2024-01-17").json == []
    assert names(app.get("/runs/suite/rados/branch/main/?since=2024-01-01")) == [corpus["A"]]
    assert names(app.get("/runs/machine_type/smithi/?since=2024-1-17")) == [corpus["C"]]


def test_since_today_and_yesterday(app):
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    at_midnight = make_run(app, "u1", f"{today:%Y-%m-%d}_00:00:00")
    yesterday_run = make_run(app, "u2", f"{yesterday:%Y-%m-%d}_23:59:59")
    older = make_run(app, "u3", "2020-01-01_12:00:00")
    assert names(app.get("/runs/branch/main/?since=today")) == [at_midnight]
    assert names(app.get("/runs/branch/main/?since=yesterday")) == [at_midnight, yesterday_run]
    assert len(app.get("/runs/branch/main/").json) == 3
    assert older in names(app.get("/runs/branch/main/"))
    assert names(app.get("/runs/date/today/")) == [at_midnight]
    assert names(app.get("/runs/date/yesterday/")) == [yesterday_run]


@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "tomorrow", "01/02/2024",
                                   "2024-01-15_00:00:00", "x"])
def test_bad_since_is_400(app, corpus, value):
    assert app.get("/runs/branch/main/", {"since": value}, status=400).json == DATE_MSG


def test_date_leaf_ignores_since(app, corpus):
    assert names(app.get("/runs/date/2024-01-15/?since=2030-01-01")) == [corpus["A"]]
    assert names(app.get("/runs/date/2024-01-15/?since=garbage")) == [corpus["A"]]
    assert names(app.get("/runs/branch/main/date/2024-01-16/?since=2030-01-01")) == \
        [corpus["B"]]


# ---- 3.6 dates --------------------------------------------------------------------------------

def test_day_filter_is_half_open(app):
    last_second = make_run(app, "u1", "2024-01-15_23:59:59")
    next_midnight = make_run(app, "u2", "2024-01-16_00:00:00")
    midnight = make_run(app, "u3", "2024-01-15_00:00:00")
    assert names(app.get("/runs/date/2024-01-15/")) == [last_second, midnight]
    assert names(app.get("/runs/date/2024-01-16/")) == [next_midnight]


def test_day_filter_paginates(app):
    made = [make_run(app, f"u{i}", f"2024-01-15_0{i}:00:00") for i in range(3)]
    assert names(app.get("/runs/date/2024-01-15/?count=2")) == made[::-1][:2]
    assert names(app.get("/runs/date/2024-01-15/?count=2&page=2")) == made[:1]


def test_date_range_is_half_open_and_ordered_desc(app):
    before = make_run(app, "u0", "2024-01-09_23:59:59")
    first = make_run(app, "u1", "2024-01-10_00:00:00")
    middle = make_run(app, "u2", "2024-01-12_08:00:00", branch="reef")
    last = make_run(app, "u3", "2024-01-14_23:59:59")
    after = make_run(app, "u4", "2024-01-15_00:00:00")
    got = names(app.get("/runs/date/from/2024-01-10/to/2024-01-14/"))
    assert got == [last, middle, first]
    assert before not in got and after not in got
    assert names(app.get("/runs/date/from/2024-01-10/to/2024-01-14")) == got  # no slash
    assert names(app.get("/runs/date/from/2024-1-10/to/2024-1-10/")) == [first]
    assert app.get("/runs/date/from/2024-01-14/to/2024-01-10/").json == []


def test_date_range_at_the_end_of_a_chain(app):
    main = make_run(app, "u1", "2024-01-12_08:00:00")
    make_run(app, "u2", "2024-01-12_09:00:00", branch="reef")
    assert names(app.get("/runs/branch/main/date/from/2024-01-01/to/2024-01-31/")) == [main]
    assert names(app.get("/runs/branch/main/suite/rados/date/from/2024-01-01/to/2024-01-31"))\
        == [main]


def test_date_range_has_no_pagination(app):
    made = [make_run(app, f"u{i}", f"2024-01-1{i}_08:00:00") for i in range(3)]
    got = names(app.get("/runs/date/from/2024-01-10/to/2024-01-12/?count=1&page=2"))
    assert got == made[::-1]


def test_date_from_alone_is_empty(app, corpus):
    assert app.get("/runs/date/from/2024-01-15/").json == []
    assert app.get("/runs/branch/main/date/from/2024-01-15").json == []


@pytest.mark.parametrize("path", [
    "/runs/date/2024-13-01/",
    "/runs/date/20240115/",
    "/runs/date/bogus/",
    "/runs/branch/main/date/2024-02-30/",
    "/runs/date/from/bogus/to/2024-01-01/",
    "/runs/date/from/2024-01-01/to/bogus/",
    "/runs/date/from/bogus/",
])
def test_invalid_day_is_400_verbatim(app, path):
    assert app.get(path, status=400).json == DATE_MSG


def test_yesterday_on_the_first_of_a_month():
    utc = dt.timezone.utc
    assert schemas.parse_day("yesterday", today=dt.date(2024, 3, 1)) == \
        dt.datetime(2024, 2, 29, tzinfo=utc)
    assert schemas.parse_day("yesterday", today=dt.date(2024, 1, 1)) == \
        dt.datetime(2023, 12, 31, tzinfo=utc)
    assert schemas.parse_day("today", today=dt.date(2024, 3, 1)) == \
        dt.datetime(2024, 3, 1, tzinfo=utc)
    assert schemas.parse_day("2024-3-1") == dt.datetime(2024, 3, 1, tzinfo=utc)


# ---- 3.7 queued ----------------------------------------------------------------------------------

def test_queued_lists_runs_with_a_queued_job_by_scheduled_ascending(app, corpus):
    later = make_run(app, "dave", "2024-02-01_00:00:00", status="queued")
    # a running run that still has one queued job is listed too
    put_job(app, corpus["C"], 1, status="running")
    post_job(app, corpus["C"], job_id=2, status="queued")
    assert app.get(f"/runs/{corpus['C']}/").json["status"] == "running"
    assert names(app.get("/runs/queued/")) == [corpus["D"], corpus["C"], later]
    # no pagination
    assert len(app.get("/runs/queued/?count=1").json) == 3


def test_queued_summaries_have_the_summary_shape(app, corpus):
    body = app.get("/runs/queued").json
    assert [list(item) for item in body] == [SUMMARY_KEYS]


@pytest.mark.parametrize("route", ["/runs/", "/runs/branch/main/", "/runs/date/2024-01-15/",
                                   "/jobs/"])
@pytest.mark.parametrize("query", ["count=99999999999999999999",
                                   "count=10&page=99999999999999999999",
                                   "count=9223372036854775807&page=3"])
def test_huge_paging_values_are_not_500(app, corpus, route, query):
    resp = app.get(f"{route}?{query}", status="*")
    assert resp.status_int in (200, 400), resp.body
    if resp.status_int == 400:
        assert resp.json == PAGING_MSG


def test_post_run_over_long_name(app):
    resp = app.post("/runs/", json.dumps({"name": "x" * 513}), status=400)
    assert "name" in resp.json["message"]
    assert app.get("/runs/").json == []
    post_run(app, "y" * 512)


@pytest.mark.parametrize("name", ["run %d", "a+b", "c;d&e=f"])
def test_duplicate_run_message_is_verbatim(app, name):
    post_run(app, name)
    resp = app.post("/runs/", json.dumps({"name": name}), status=400)
    assert resp.json == {"message": f"run with name {name} already exists"}


def test_parsed_values_are_cut_to_their_columns(app):
    """A long user or suite in a name never refuses the run (the job POST must work)."""
    name = "u" * 40 + "-2024-01-15_20:00:03-" + "s" * 300 + "-main-distro-default-smithi"
    post_job(app, name, job_id=1, suite=None, branch=None, machine_type=None)
    body = app.get(f"/runs/{name}/").json
    assert body["user"] == "u" * 32
    assert body["scheduled"] == "2024-01-15 20:00:03"
