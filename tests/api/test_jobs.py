"""Spec 4.1-4.6 and section 8: jobs under a run, the job write rules, and /jobs/."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import webtest
from sqlalchemy import func, select

from paddles.app import make_app
from paddles.models import Job, Node, Run, job_nodes
from paddles.settings import load_settings
from tests.factories import job_body, post_job, post_run, put_job, run_name

BAD_JSON = {"message": "could not decode JSON body"}
STATUS_MSG = {"message": "Job status must be one of: pass, fail, queued, running, dead, "
                         "unknown, waiting"}
JOB_KEYS = [
    "log_href", "archive_path", "description", "duration", "email", "failure_reason",
    "flavor", "job_id", "kernel", "last_in_suite", "machine_type", "name", "nuke_on_error",
    "os_type", "os_version", "overrides", "owner", "pid", "roles", "sentry_event", "status",
    "success", "branch", "seed", "sha1", "subset", "suite", "suite_branch", "suite_path",
    "suite_relpath", "suite_repo", "suite_sha1", "targets", "tasks", "timestamp",
    "teuthology_branch", "verbose", "pcp_grafana_url", "priority", "user", "queue",
    "package_source", "posted", "started", "updated",
]


def when(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def get_job(app, run, job_id):
    return app.get(f"/runs/{run}/jobs/{job_id}/").json


def get_run(app, run):
    return app.get(f"/runs/{run}/").json


def raw_post(app, run, body: bytes, status=400):
    return app.post(f"/runs/{run}/jobs/", body, status=status)


def raw_put(app, run, job_id, body: bytes, status=400):
    return app.put(f"/runs/{run}/jobs/{job_id}/", body, status=status)


def row_counts(session):
    session.rollback()  # end the snapshot: see what the app committed
    return tuple(session.scalar(select(func.count()).select_from(t))
                 for t in (Run, Job, Node, job_nodes))


@pytest.fixture
def run():
    return run_name()


def tz_app(database_url, session_factory, timezone):
    settings = load_settings(environ={}, database_url=database_url, timezone=timezone)
    return webtest.TestApp(make_app(settings, session_factory=session_factory))


# ---- 4.2 POST -------------------------------------------------------------------------------

def test_post_job_creates_the_run(app, run):
    app.head(f"/runs/{run}/", status=404)
    assert post_job(app, run, job_id=1) == {"job_id": "1"}
    detail = get_run(app, run)
    assert detail["jobs_count"] == 1
    assert detail["user"] == "teuthology"
    assert detail["scheduled"] == "2024-01-15 20:00:03"


def test_integer_job_id_comes_back_as_string(app, run):
    assert post_job(app, run, job_id=4242) == {"job_id": "4242"}
    assert get_job(app, run, 4242)["job_id"] == "4242"
    assert post_job(app, run, job_id="abc") == {"job_id": "abc"}


def test_server_assigns_ids_that_never_collide(app, run):
    post_job(app, run, job_id=1)
    post_job(app, run, job_id="7")
    post_job(app, run, job_id="x99")
    assigned = post_job(app, run)["job_id"]
    assert assigned not in {"1", "7", "x99"}
    again = post_job(app, run)["job_id"]
    assert again not in {"1", "7", "x99", assigned}
    assert {j["job_id"] for j in get_run(app, run)["jobs"]} == {"1", "7", "x99", assigned,
                                                                 again}
    # the auto-assigned id is an ordinary id: a client posting it again is a duplicate
    resp = post_job(app, run, job_id=assigned, expect=400)
    assert resp["message"].endswith("already exists")


def test_assigned_ids_are_per_run(app):
    first, second = run_name(), run_name()
    assert post_job(app, first)["job_id"] == post_job(app, second)["job_id"]


def test_empty_job_id_means_assign_one(app, run):
    assert post_job(app, run, job_id="")["job_id"] != ""


def test_duplicate_job_is_400_then_put_works(app, run):
    post_job(app, run, job_id=1, status="queued")
    resp = post_job(app, run, job_id=1, status="running", expect=400)
    assert resp == {"message": "job with job_id 1 already exists"}
    assert resp["message"].endswith("already exists")
    # teuthology's fallback: PUT the same body
    app.put(f"/runs/{run}/jobs/1/", json.dumps(job_body(1, status="running")))
    assert get_job(app, run, 1)["status"] == "running"
    assert get_run(app, run)["jobs_count"] == 1


def test_duplicate_compares_ids_as_strings(app, run):
    post_job(app, run, job_id=1)
    assert post_job(app, run, job_id="1", expect=400)["message"].endswith("already exists")
    assert post_job(app, run, job_id="01") == {"job_id": "01"}


@pytest.mark.parametrize("body", [b"", b"   ", b"nope", b"{", b"{}", b"[]", b"[1]", b'"x"',
                                  b"1", b"null", b"true"])
def test_post_bad_body(app, run, session, body):
    assert raw_post(app, run, body).json == BAD_JSON
    assert row_counts(session) == (0, 0, 0, 0)


@pytest.mark.parametrize("status", ["passed", "PASS", "", None, 1, "finished pass"])
def test_post_bad_status_text(app, run, session, status):
    resp = raw_post(app, run, json.dumps({"job_id": 1, "status": status}).encode())
    assert resp.json == STATUS_MSG
    assert row_counts(session) == (0, 0, 0, 0)


@pytest.mark.parametrize("key,value", [
    ("timestamp", "yesterday"), ("timestamp", "2024-13-01_00:00:00"), ("timestamp", 17),
    ("updated", "soon"), ("updated", "2024-01-15 25:00:00"), ("updated", 1705348803),
    ("duration", "long"), ("duration", [1]), ("duration", True), ("seed", {"a": 1}),
    ("priority", "high"), ("priority", 1.5e40), ("last_in_suite", "yes"), ("verbose", 1),
    ("nuke_on_error", "false"), ("success", "true"), ("success", 0), ("name", {"a": 1}),
    ("description", ["a"]), ("owner", True), ("job_id", {"id": 1}), ("job_id", "a/b"),
])
def test_post_bad_values_are_400_and_write_nothing(app, run, session, key, value):
    resp = raw_post(app, run, json.dumps({"job_id": 1, key: value}).encode())
    assert set(resp.json) == {"message"}
    assert row_counts(session) == (0, 0, 0, 0)


@pytest.mark.parametrize("key,limit", [
    ("archive_path", 512), ("email", 128), ("flavor", 128), ("job_id", 32),
    ("machine_type", 32), ("name", 512), ("os_type", 32), ("os_version", 16),
    ("owner", 128), ("pid", 32), ("sentry_event", 128), ("branch", 128), ("sha1", 40),
    ("subset", 32), ("suite", 256), ("suite_branch", 128), ("suite_path", 256),
    ("suite_relpath", 256), ("suite_repo", 256), ("suite_sha1", 40),
    ("teuthology_branch", 64), ("user", 64), ("queue", 32), ("package_source", 32),
])
def test_over_long_strings_are_400_naming_the_field(app, run, session, key, limit):
    body = job_body(1, status="queued")
    body[key] = "x" * limit
    assert post_job(app, run, **body) == {"job_id": str(body["job_id"])}
    before = get_job(app, run, body["job_id"])
    too_long = dict(body, status="running", **{key: "y" * (limit + 1)})
    resp = app.put(f"/runs/{run}/jobs/{body['job_id']}/", json.dumps(too_long), status=400)
    assert key in resp.json["message"]
    after = get_job(app, run, body["job_id"])
    assert after == before
    assert get_run(app, run)["status"] == "queued"
    # a new run is not created by a rejected POST either
    other = run_name()
    resp = app.post(f"/runs/{other}/jobs/", json.dumps(too_long), status=400)
    assert key in resp.json["message"]
    app.head(f"/runs/{other}/", status=404)


def test_long_text_fields_are_accepted(app, run):
    post_job(app, run, job_id=1, description="d" * 20000, failure_reason="f" * 20000)
    assert len(get_job(app, run, 1)["failure_reason"]) == 20000


# ---- 6.2 job object -------------------------------------------------------------------------

def test_job_object_has_every_key_in_order(app, run):
    post_job(app, run, job_id=1)
    job = get_job(app, run, 1)
    assert list(job) == JOB_KEYS
    assert job["log_href"] == f"http://qa-proxy.ceph.com/teuthology/{run}/1/teuthology.log"
    assert job["overrides"] == {"ceph": {"conf": {"osd": {"debug osd": 20}}}}
    assert job["roles"] == [["mon.a", "osd.0"], ["mon.b", "osd.1"]]
    assert job["priority"] == 70
    for key in ("archive_path", "duration", "pid", "success", "started", "timestamp",
                "targets", "kernel", "package_source"):
        assert job[key] is None, key
    assert when(job["posted"]) <= when(job["updated"])


def test_log_href_uses_the_configured_template(database_url, session_factory, run):
    settings = load_settings(environ={}, database_url=database_url,
                             job_log_href_templ="https://logs/{run_name}/{job_id}/log")
    app = webtest.TestApp(make_app(settings, session_factory=session_factory))
    post_job(app, run, job_id=3)
    assert get_job(app, run, 3)["log_href"] == f"https://logs/{run}/3/log"


def test_all_writable_keys_round_trip(app, run):
    body = {
        "archive_path": "/a/p", "description": "desc", "duration": 123, "email": "a@b.c",
        "failure_reason": "boom", "flavor": "default", "job_id": "5",
        "kernel": {"kdb": True, "sha1": "distro"}, "last_in_suite": False,
        "machine_type": "smithi", "name": run, "nuke_on_error": True, "os_type": "centos",
        "os_version": "9.stream", "overrides": {"a": [1, 2]}, "owner": "me@host",
        "pid": "999", "roles": [["client.0"]], "sentry_event": "http://sentry/1",
        "status": "fail", "success": False, "branch": "squid", "seed": 42, "sha1": "a" * 40,
        "subset": "1/9", "suite": "fs", "suite_branch": "squid",
        "suite_path": "/suite/path", "suite_relpath": "qa", "suite_repo": "https://git/c",
        "suite_sha1": "b" * 40, "targets": None, "tasks": [{"exec": "true"}],
        "timestamp": "2024-01-15_20:00:03", "teuthology_branch": "main", "verbose": True,
        "pcp_grafana_url": "http://grafana", "priority": 100, "user": "jdoe",
        "queue": "smithi", "package_source": "ceph-ci",
    }
    post_job(app, run, **body)
    job = get_job(app, run, 5)
    for key, value in body.items():
        expected = "2024-01-15 20:00:03" if key == "timestamp" else value
        assert job[key] == expected, key


# ---- section 8: write rules -------------------------------------------------------------------

def test_status_rules_protect_pass_and_fail(app, run):
    post_job(app, run, job_id=1, status="running")
    put_job(app, run, 1, status="pass")
    put_job(app, run, 1, status="dead")
    assert get_job(app, run, 1)["status"] == "pass"
    put_job(app, run, 1, status="running")
    assert get_job(app, run, 1)["status"] == "pass"
    post_job(app, run, job_id=2, status="fail")
    put_job(app, run, 2, status="dead")
    assert get_job(app, run, 2)["status"] == "fail"
    assert get_run(app, run)["results"]["dead"] == 0


def test_dead_is_not_protected(app, run):
    post_job(app, run, job_id=1, status="dead")
    assert get_run(app, run)["status"] == "finished dead"
    put_job(app, run, 1, status="running")
    assert get_job(app, run, 1)["status"] == "running"
    assert get_run(app, run)["status"] == "running"


@pytest.mark.parametrize("success,status", [(True, "pass"), (False, "fail"),
                                            (None, "unknown")])
def test_success_sets_status(app, run, success, status):
    post_job(app, run, job_id=1, status="running")
    put_job(app, run, 1, success=success)
    job = get_job(app, run, 1)
    assert (job["status"], job["success"]) == (status, success)


def test_success_overrides_pass_and_fail(app, run):
    post_job(app, run, job_id=1, status="pass")
    put_job(app, run, 1, success=False)
    assert get_job(app, run, 1)["status"] == "fail"
    put_job(app, run, 1, success=True)
    assert get_job(app, run, 1)["status"] == "pass"
    assert get_run(app, run)["status"] == "finished pass"


@pytest.mark.parametrize("finished", ["pass", "fail"])
def test_success_null_never_downgrades_a_finished_job(app, run, finished):
    post_job(app, run, job_id=1, status=finished)
    put_job(app, run, 1, success=None)
    job = get_job(app, run, 1)
    assert job["status"] == finished
    assert job["success"] is None  # the value itself is still stored as sent
    assert get_run(app, run)["status"] == f"finished {finished}"


def test_status_and_success_together(app, run):
    post_job(app, run, job_id=1, status="running")
    put_job(app, run, 1, status="fail", success=True)
    job = get_job(app, run, 1)
    assert (job["status"], job["success"]) == ("fail", True)
    post_job(app, run, job_id=2, status="pass", success=False)
    job = get_job(app, run, 2)
    assert (job["status"], job["success"]) == ("pass", False)
    # a finished job ignores the status; success is still stored
    put_job(app, run, 2, status="dead", success=True)
    job = get_job(app, run, 2)
    assert (job["status"], job["success"]) == ("pass", True)


def test_new_job_without_status_or_success_is_unknown(app, run):
    post_job(app, run, job_id=1)
    assert get_job(app, run, 1)["status"] == "unknown"
    assert get_run(app, run)["status"] == "unknown"


def test_heartbeat_put_only_refreshes_updated(app, run):
    post_job(app, run, job_id=1, status="running")
    before, run_before = get_job(app, run, 1), get_run(app, run)
    app.put(f"/runs/{run}/jobs/1/", json.dumps({"name": before["name"], "job_id": "1"}))
    after, run_after = get_job(app, run, 1), get_run(app, run)
    assert when(after["updated"]) > when(before["updated"])
    assert when(run_after["updated"]) > when(run_before["updated"])
    assert {k: v for k, v in after.items() if k != "updated"} == \
        {k: v for k, v in before.items() if k != "updated"}
    assert run_after["status"] == run_before["status"] == "running"
    assert run_after["results"] == run_before["results"]
    assert run_after["started"] == run_before["started"]


def test_empty_put_body_is_a_heartbeat(app, run):
    post_job(app, run, job_id=1, status="queued")
    assert app.put(f"/runs/{run}/jobs/1/", b"{}").json == {}
    assert get_job(app, run, 1)["status"] == "queued"


@pytest.mark.parametrize("path", [["queued"], ["waiting"], ["unknown"], []])
def test_started_set_on_first_running(app, run, path):
    post_job(app, run, job_id=1, **({"status": path[0]} if path else {}))
    for status in path[1:]:
        put_job(app, run, 1, status=status)
    assert get_job(app, run, 1)["started"] is None
    put_job(app, run, 1, status="running")
    started = get_job(app, run, 1)["started"]
    assert started is not None
    assert get_run(app, run)["started"] == started
    # running again (after dead) does not move it
    put_job(app, run, 1, status="dead")
    put_job(app, run, 1, status="running")
    assert get_job(app, run, 1)["started"] == started


def test_post_running_sets_started(app, run):
    post_job(app, run, job_id=1, status="running")
    job = get_job(app, run, 1)
    assert job["started"] is not None
    assert get_run(app, run)["started"] == job["started"]


def test_run_started_follows_each_entry_into_running(app, run):
    post_job(app, run, job_id=1, status="queued")
    assert get_run(app, run)["started"] is None
    put_job(app, run, 1, status="running")
    first = get_run(app, run)["started"]
    assert first == get_job(app, run, 1)["started"]
    post_job(app, run, job_id=2, status="queued")
    put_job(app, run, 1, status="pass")      # run: queued (1 pass, 1 queued)
    assert get_run(app, run)["status"] == "queued"
    put_job(app, run, 2, status="running")   # run re-enters running
    second = get_run(app, run)["started"]
    assert second == get_job(app, run, 2)["started"]
    assert when(second) > when(first)
    post_job(app, run, job_id=3, status="running")  # already running: unchanged
    assert get_run(app, run)["started"] == second


def test_priority_changes_only_while_queued(app, run):
    post_job(app, run, job_id=1, status="queued", priority=70)
    put_job(app, run, 1, priority=10)
    assert get_job(app, run, 1)["priority"] == 10
    assert get_run(app, run)["priority"] == 10
    put_job(app, run, 1, status="running")
    put_job(app, run, 1, priority=5)
    assert get_job(app, run, 1)["priority"] == 10
    put_job(app, run, 1, priority=10, description="same priority is fine")
    assert get_job(app, run, 1)["description"] == "same priority is fine"
    # the create sets it whatever the status
    post_job(app, run, job_id=2, status="running", priority=3)
    assert get_job(app, run, 2)["priority"] == 3


def test_job_id_in_put_body_never_renames(app, run):
    post_job(app, run, job_id=1)
    app.put(f"/runs/{run}/jobs/1/", json.dumps({"job_id": "2", "status": "running"}))
    assert get_job(app, run, 1)["status"] == "running"
    app.get(f"/runs/{run}/jobs/2/", status=404)
    assert [j["job_id"] for j in get_run(app, run)["jobs"]] == ["1"]


def test_pid_int_is_stored_as_string(app, run):
    post_job(app, run, job_id=1, pid=31337)
    assert get_job(app, run, 1)["pid"] == "31337"
    put_job(app, run, 1, pid=4)
    assert get_job(app, run, 1)["pid"] == "4"


@pytest.mark.parametrize("sent,stored", [
    ("2024-01-15 20:00:03", "2024-01-15 20:00:03"),
    ("2024-01-15 20:00:03.218113", "2024-01-15 20:00:03"),
    ("2024-01-15T20:00:03", "2024-01-15 20:00:03"),
    ("2024-01-15T20:00:03.5", "2024-01-15 20:00:03"),
    ("2024-01-15T21:00:03+01:00", "2024-01-15 20:00:03"),
    ("2024-01-15T21:00:03.25+01:00", "2024-01-15 20:00:03"),
])
def test_client_updated_is_stored_on_job_and_run(app, run, sent, stored):
    post_job(app, run, job_id=1, status="running")
    put_job(app, run, 1, updated=sent)
    assert get_job(app, run, 1)["updated"] == stored
    assert get_run(app, run)["updated"] == stored


def test_client_updated_on_create(app, run):
    post_job(app, run, job_id=1, updated="2024-01-15 20:00:03")
    assert get_job(app, run, 1)["updated"] == "2024-01-15 20:00:03"


def test_client_updated_uses_the_configured_zone(database_url, session_factory, run):
    app = tz_app(database_url, session_factory, "America/New_York")
    post_job(app, run, job_id=1, updated="2024-01-15 15:00:03")
    assert get_job(app, run, 1)["updated"] == "2024-01-15 20:00:03"
    put_job(app, run, 1, updated="2024-07-15 16:00:03")  # daylight saving time
    assert get_job(app, run, 1)["updated"] == "2024-07-15 20:00:03"


@pytest.mark.parametrize("value", ["soon", "2024-01-15", "15/01/2024 20:00:03",
                                   "2024-02-30 00:00:00", 5, True, ["2024-01-15 20:00:03"]])
def test_bad_updated_is_400_and_writes_nothing(app, run, value):
    post_job(app, run, job_id=1, status="queued")
    before = get_job(app, run, 1)
    resp = raw_put(app, run, 1, json.dumps({"status": "running", "updated": value}).encode())
    assert "updated" in resp.json["message"]
    assert get_job(app, run, 1) == before


def test_timestamp_is_stored_as_given(database_url, session_factory, run):
    app = tz_app(database_url, session_factory, "America/New_York")
    post_job(app, run, job_id=1, timestamp="2024-01-15_20:00:03")
    assert get_job(app, run, 1)["timestamp"] == "2024-01-15 20:00:03"
    put_job(app, run, 1, timestamp=None)
    assert get_job(app, run, 1)["timestamp"] is None


@pytest.mark.parametrize("value", ["2024-01-15", "bogus", "2024-13-15_20:00:03", 12, [1]])
def test_bad_timestamp_is_400(app, run, value):
    post_job(app, run, job_id=1)
    before = get_job(app, run, 1)
    resp = raw_put(app, run, 1, json.dumps({"timestamp": value, "status": "pass"}).encode())
    assert "timestamp" in resp.json["message"]
    assert get_job(app, run, 1) == before


def test_suite_branch_machine_type_are_copied_to_the_run(app):
    name = "teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana"
    post_run(app, name)
    post_job(app, name, job_id=1, suite="rados", branch="main", machine_type="smithi")
    summary = get_run(app, name)
    assert (summary["suite"], summary["branch"], summary["machine_type"]) == \
        ("rados", "main", "smithi")
    put_job(app, name, 1, suite=None, branch=None, machine_type=None)
    summary = get_run(app, name)
    assert (summary["suite"], summary["branch"], summary["machine_type"]) == (None, None, None)
    # keys absent from the body leave the run alone
    put_job(app, name, 1, branch="reef")
    summary = get_run(app, name)
    assert (summary["suite"], summary["branch"], summary["machine_type"]) == (None, "reef", None)


def node_names_of(session, run, job_id):
    session.rollback()  # end the snapshot: see what the app committed
    return sorted(session.scalars(
        select(Node.name).join(job_nodes, job_nodes.c.node_id == Node.id)
        .join(Job, Job.id == job_nodes.c.job_id).join(Run, Run.id == Job.run_id)
        .where(Run.name == run, Job.job_id == str(job_id))))


def test_targets_create_and_link_nodes(app, run, session):
    existing = "smithi002.front.sepia.ceph.com"
    session.add(Node(name=existing, machine_type="smithi", description="keep me"))
    session.commit()
    targets = {"ubuntu@smithi001.front.sepia.ceph.com": "ssh-ed25519 AAAA1",
               f"ubuntu@{existing}": "ssh-ed25519 AAAA2"}
    post_job(app, run, job_id=1, targets=targets, machine_type="smithi")
    assert node_names_of(session, run, 1) == ["smithi001.front.sepia.ceph.com", existing]
    created = session.scalar(select(Node).where(Node.name == "smithi001.front.sepia.ceph.com"))
    assert created.machine_type == "smithi"
    assert session.scalar(select(Node.description).where(Node.name == existing)) == "keep me"
    assert get_job(app, run, 1)["targets"] == targets


def test_targets_without_user_and_on_put(app, run, session):
    post_job(app, run, job_id=1, machine_type=None)
    put_job(app, run, 1, targets={"mira001": "key"})
    assert node_names_of(session, run, 1) == ["mira001"]
    assert session.scalar(select(Node.machine_type).where(Node.name == "mira001")) is None
    # more entries than links: the new host is linked, the old link stays
    put_job(app, run, 1, targets={"u@mira001": "key", "u@mira002": "key"})
    assert node_names_of(session, run, 1) == ["mira001", "mira002"]
    # fewer entries: links are never removed
    put_job(app, run, 1, targets={"u@mira003": "key"})
    assert node_names_of(session, run, 1) == ["mira001", "mira002"]
    put_job(app, run, 1, targets=None)
    assert node_names_of(session, run, 1) == ["mira001", "mira002"]


def test_a_target_without_a_host_creates_no_node(app, run, session):
    """`user@` names no host: it stays in the job's targets and links nothing, on POST as on
    PUT (it used to create a node with an empty name, which no URL can address)."""
    post_job(app, run, job_id=1, targets={"u@": "k", "u@mira010": "k"})
    assert node_names_of(session, run, 1) == ["mira010"]
    put_job(app, run, 1, targets={"u@": "k", "u@mira010": "k", "v@mira011": "k"})
    assert node_names_of(session, run, 1) == ["mira010", "mira011"]
    assert session.scalar(select(Node).where(Node.name == "")) is None
    assert [n["name"] for n in app.get("/nodes/").json] == ["mira010", "mira011"]
    assert get_job(app, run, 1)["targets"] == {"u@": "k", "u@mira010": "k", "v@mira011": "k"}


def test_same_node_in_two_jobs(app, run, session):
    post_job(app, run, job_id=1, targets={"u@smithi010": "k"})
    post_job(app, run, job_id=2, targets={"u@smithi010": "k"})
    assert node_names_of(session, run, 1) == node_names_of(session, run, 2) == ["smithi010"]
    assert session.scalar(select(func.count()).select_from(Node)) == 1


def test_unknown_and_dotted_keys_are_ignored(app, run):
    body = job_body(1, **{"mon.a-kernel": {"x": 1}, "first_in_suite": True, "id": 99,
                          "run": "other", "log_href": "x", "posted": "2000-01-01 00:00:00",
                          "started": "nope", "comment": "hi", "sleep_before_teardown": 3,
                          "repo": "r", "teuthology_sha1": "s", "issue_url": "u"})
    app.post(f"/runs/{run}/jobs/", json.dumps(body))
    job = get_job(app, run, 1)
    assert list(job) == JOB_KEYS
    assert job["log_href"].startswith("http://qa-proxy.ceph.com/")
    assert job["started"] is None
    assert not job["posted"].startswith("2000")


def test_dashes_in_keys_become_underscores(app, run):
    post_job(app, run, job_id=1, **{"failure-reason": "boom", "teuthology-branch": "dev",
                                    "os-type": "centos"})
    job = get_job(app, run, 1)
    assert (job["failure_reason"], job["teuthology_branch"], job["os_type"]) == \
        ("boom", "dev", "centos")


@pytest.mark.parametrize("body", [b"[]", b"[1]", b'"x"', b"1", b"null", b"nope", b"{"])
def test_put_non_object_body_is_400(app, run, body):
    post_job(app, run, job_id=1)
    assert raw_put(app, run, 1, body).json == BAD_JSON


@pytest.mark.parametrize("status", ["passed", None, 3, ""])
def test_put_bad_status_text(app, run, status):
    post_job(app, run, job_id=1, status="queued")
    resp = raw_put(app, run, 1, json.dumps({"status": status}).encode())
    assert resp.json == STATUS_MSG
    assert get_job(app, run, 1)["status"] == "queued"


@pytest.mark.parametrize("key,value", [
    ("duration", "x"), ("seed", 1.5e300), ("success", "yes"), ("verbose", "no"),
    ("priority", [1]), ("owner", {"a": "b"}), ("suite", False),
])
def test_put_wrong_scalar_types_are_400(app, run, key, value):
    post_job(app, run, job_id=1, status="queued")
    before = get_job(app, run, 1)
    resp = raw_put(app, run, 1, json.dumps({"status": "pass", key: value}).encode())
    assert key in resp.json["message"]
    assert get_job(app, run, 1) == before


def test_each_write_refreshes_updated_on_job_and_run(app, run):
    post_job(app, run, job_id=1)
    first_job, first_run = get_job(app, run, 1)["updated"], get_run(app, run)["updated"]
    assert first_job == first_run
    put_job(app, run, 1, status="running")
    job, summary = get_job(app, run, 1), get_run(app, run)
    assert job["updated"] == summary["updated"]
    assert when(job["updated"]) > when(first_job)


# ---- 4.1 GET /runs/NAME/jobs/ -----------------------------------------------------------------

def test_job_list_is_newest_first(app, run):
    for job_id in (3, 1, 2):
        post_job(app, run, job_id=job_id)
    body = app.get(f"/runs/{run}/jobs/").json
    assert [j["job_id"] for j in body] == ["2", "1", "3"]
    assert all(list(j) == JOB_KEYS for j in body)


def test_job_list_fields(app, run):
    post_job(app, run, job_id=1, status="pass")
    post_job(app, run, job_id=2, status="fail", failure_reason="boom")
    assert app.get(f"/runs/{run}/jobs/?fields=job_id").json == [{"job_id": "2"},
                                                                 {"job_id": "1"}]
    assert app.get(f"/runs/{run}/jobs/?fields=status,job_id").json == [
        {"status": "fail", "job_id": "2"}, {"status": "pass", "job_id": "1"}]
    body = app.get(f"/runs/{run}/jobs/",
                   {"fields": "job_id,description,status,log_href,failure_reason"}).json
    assert list(body[0]) == ["job_id", "description", "status", "log_href", "failure_reason"]
    assert body[0]["failure_reason"] == "boom"
    assert app.get(f"/runs/{run}/jobs/?fields=href,_x,").json == [
        {"href": [f"http://paddles.test/runs/{run}/jobs/2/"]},
        {"href": [f"http://paddles.test/runs/{run}/jobs/1/"]}]
    every = ",".join(JOB_KEYS + ["href"])
    assert len(app.get(f"/runs/{run}/jobs/", {"fields": every}).json[0]) == len(JOB_KEYS) + 1


@pytest.mark.parametrize("fields", ["bogus", "job_id,nope", "id", "run_id", "sort_key"])
def test_job_list_unknown_field(app, run, fields):
    post_job(app, run, job_id=1)
    resp = app.get(f"/runs/{run}/jobs/", {"fields": fields}, status=400)
    assert resp.json == {"message": "an invalid field was specified"}


def test_job_list_status_filter(app, run):
    post_job(app, run, job_id=1, status="pass")
    post_job(app, run, job_id=2, status="fail")
    post_job(app, run, job_id=3, status="pass")
    assert [j["job_id"] for j in app.get(f"/runs/{run}/jobs/?status=pass").json] == ["3", "1"]
    assert app.get(f"/runs/{run}/jobs/?status=queued").json == []
    assert app.get(f"/runs/{run}/jobs/?status=bogus").json == []
    assert app.get(f"/runs/{run}/jobs/?status=fail&fields=job_id").json == [{"job_id": "2"}]


def test_job_list_of_empty_and_missing_runs(app, run):
    post_run(app, run)
    assert app.get(f"/runs/{run}/jobs/").json == []
    resp = app.get("/runs/nope/jobs/", status=404)
    assert resp.json == {"message": "associated run was not found"}


# ---- 4.3-4.5 single job 404s and DELETE ----------------------------------------------------------

def test_single_job_404s(app, run):
    post_job(app, run, job_id=1)
    for path in (f"/runs/{run}/jobs/2/", "/runs/nope/jobs/1/", f"/runs/{run}/jobs/2"):
        assert app.get(path, status=404).json == {"message": "job not found"}
    for path in (f"/runs/{run}/jobs/2/", "/runs/nope/jobs/1/"):
        assert app.put(path, json.dumps({"status": "pass"}), status=404).json == \
            {"message": "attempted to update a non-existent job"}
        assert app.delete(path, status=404).json == \
            {"message": "attempted to delete a non-existent job"}
    app.head("/runs/nope/", status=404)  # the PUT did not create the run


def test_job_get_ignores_fields(app, run):
    post_job(app, run, job_id=1)
    assert list(app.get(f"/runs/{run}/jobs/1?fields=status").json) == JOB_KEYS


def test_job_under_the_wrong_run_is_not_found(app):
    first, second = run_name(), run_name()
    post_job(app, first, job_id=1)
    post_run(app, second)
    app.get(f"/runs/{second}/jobs/1/", status=404)


def test_delete_job_recomputes_the_run(app, run, session):
    post_job(app, run, job_id=1, status="pass", targets={"u@smithi001": "k"})
    post_job(app, run, job_id=2, status="running")
    assert get_run(app, run)["status"] == "running"
    assert app.delete(f"/runs/{run}/jobs/2/").json == {}
    summary = get_run(app, run)
    assert summary["status"] == "finished pass"
    assert (summary["results"]["running"], summary["results"]["pass"],
            summary["jobs_count"]) == (0, 1, 1)
    app.delete(f"/runs/{run}/jobs/1/")
    summary = get_run(app, run)
    assert summary["status"] == "empty"
    assert summary["jobs_count"] == 0
    assert summary["sha1"] == "none"
    assert app.get("/runs/status/empty/").json[0]["name"] == run
    # the node stays, its link is gone
    assert row_counts(session)[2:] == (1, 0)


# ---- 4.6 /jobs/ ------------------------------------------------------------------------------------

@pytest.fixture
def spread(app):
    """Jobs over two runs with distinct attributes."""
    first, second = run_name(), run_name()
    post_job(app, first, job_id=1, description="rados/thrash/{a.yaml} 100%", status="pass",
             sha1="a" * 40, branch="main", user="alice")
    post_job(app, first, job_id=2, description="rados/basic", status="fail",
             sha1="b" * 40, branch="main", user="bob")
    post_job(app, second, job_id=1, description="fs/thrash", status="pass",
             sha1="a" * 40, branch="reef", user="alice")
    return first, second


def ids(resp):
    return [(j["name"], j["job_id"]) for j in resp.json]


def test_recent_jobs_newest_first_default_count_10(app):
    name = run_name()
    for i in range(12):
        post_job(app, name, job_id=i, name=name)
    body = app.get("/jobs/").json
    assert [j["job_id"] for j in body] == [str(i) for i in range(11, 1, -1)]
    assert list(body[0]) == JOB_KEYS
    assert [j["job_id"] for j in app.get("/jobs/?page=2").json] == ["1", "0"]
    assert [j["job_id"] for j in app.get("/jobs/?count=3&page=2").json] == ["8", "7", "6"]
    assert app.get("/jobs/?count=0").json == []
    assert app.get("/jobs/?count=x", status=400).json == \
        {"message": "count and page must be integers"}


def test_recent_jobs_filters(app, spread):
    def job_ids(query):
        return [(j["description"]) for j in app.get("/jobs/", query).json]
    assert job_ids({"description": "thrash"}) == ["fs/thrash", "rados/thrash/{a.yaml} 100%"]
    assert job_ids({"description": "100%"}) == ["rados/thrash/{a.yaml} 100%"]
    assert job_ids({"description": "%"}) == ["rados/thrash/{a.yaml} 100%"]
    assert job_ids({"description": "_"}) == []
    assert job_ids({"status": "fail"}) == ["rados/basic"]
    assert job_ids({"status": "bogus"}) == []
    assert job_ids({"branch": "main"}) == ["rados/basic", "rados/thrash/{a.yaml} 100%"]
    # sha1 wins over branch
    assert job_ids({"sha1": "a" * 40, "branch": "main"}) == ["fs/thrash",
                                                            "rados/thrash/{a.yaml} 100%"]
    assert job_ids({"user": "alice"}) == ["fs/thrash", "rados/thrash/{a.yaml} 100%"]
    assert job_ids({"user": "alice", "status": "pass", "branch": "reef"}) == ["fs/thrash"]


def test_recent_jobs_posted_after_and_before(app, spread):
    assert len(app.get("/jobs/?posted_after=yesterday").json) == 3
    assert len(app.get("/jobs/?posted_after=today").json) == 3
    assert app.get("/jobs/?posted_before=today").json == []
    assert len(app.get("/jobs/?posted_before=2999-01-01").json) == 3
    assert app.get("/jobs/?posted_after=2999-01-01").json == []
    for bad in ("posted_after=2024-13-01", "posted_before=tomorrow"):
        assert app.get(f"/jobs/?{bad}", status=400).json == \
            {"message": "date format must match %Y-%m-%d"}


# ---- values the database would refuse: 400, never 500 (spec 12.6) -------------------------------

@pytest.mark.parametrize("key,value", [
    ("overrides", {"ceph": {"conf": "a\u0000b"}}),
    ("roles", [["mon.a\u0000"]]),
    ("targets", {"u@host\u0000": "key"}),
    ("tasks", [{"exec\u0000": None}]),
    ("kernel", "\u0000"),
    ("description", "nul\u0000"),
    ("name", "\u0000"),
])
def test_nul_characters_are_400(app, run, key, value):
    post_job(app, run, job_id=1, status="queued")
    before = get_job(app, run, 1)
    resp = raw_put(app, run, 1, json.dumps({key: value, "status": "running"}).encode())
    assert key in resp.json["message"]
    assert get_job(app, run, 1) == before


@pytest.mark.parametrize("text", ['{"job_id": 1, "overrides": {"a": NaN}}',
                                  '{"job_id": 1, "duration": Infinity}',
                                  '{"job_id": 1, "tasks": [-Infinity]}'])
def test_non_json_numbers_are_400(app, run, session, text):
    assert raw_post(app, run, text.encode()).json == BAD_JSON
    assert row_counts(session) == (0, 0, 0, 0)


def test_over_long_run_name_in_the_url_is_400(app, session):
    name = "x" * 513
    resp = app.post(f"/runs/{name}/jobs/", json.dumps({"job_id": 1}), status=400)
    assert "name" in resp.json["message"]
    assert row_counts(session) == (0, 0, 0, 0)
    longest = "y" * 512
    assert post_job(app, longest, job_id=1) == {"job_id": "1"}


def test_very_long_target_host_names(app, run, session):
    host = "h" * 300
    post_job(app, run, job_id=1, targets={f"u@{host}": "k"})
    post_job(app, run, job_id=2, targets={f"u@{host}": "k"})
    assert node_names_of(session, run, 1) == node_names_of(session, run, 2) == ["h" * 256]


@pytest.mark.parametrize("job_id,stored", [(10**40, None), (1.5, "1.5"), ("a b", "a b"),
                                           (True, None), ("%41", "%41")])
def test_odd_job_ids(app, run, job_id, stored):
    resp = app.post(f"/runs/{run}/jobs/", json.dumps({"job_id": job_id}),
                    status=400 if stored is None else 200)
    if stored is None:
        assert "job_id" in resp.json["message"]
        return
    assert resp.json == {"job_id": stored}
    from urllib.parse import quote
    assert app.get(f"/runs/{run}/jobs/{quote(stored)}/").json["job_id"] == stored


def test_assigned_id_after_a_huge_numeric_client_id(app, run):
    """Numeric ids past 20 digits sort as text; the next assigned id must still be free."""
    post_job(app, run, job_id="9" * 20)
    post_job(app, run, job_id="9" * 32)
    assigned = {post_job(app, run)["job_id"] for _ in range(3)}
    assert len(assigned) == 3
    assert not assigned & {"9" * 20, "9" * 32}
    assert all(len(job_id) <= 32 for job_id in assigned)
    assert get_run(app, run)["jobs_count"] == 5


@pytest.mark.parametrize("job_id", ["x%d", "a+b", "c;d&e=f", "100%"])
def test_duplicate_message_is_verbatim(app, run, job_id):
    post_job(app, run, job_id=job_id)
    resp = post_job(app, run, job_id=job_id, expect=400)
    assert resp == {"message": f"job with job_id {job_id} already exists"}


@pytest.mark.parametrize("value", ["distro", 10**40, {"a": [1, 2.5, None, True, "é"]}, [],
                                   None, 0, "null", "{\"x\": 1}"])
def test_json_fields_round_trip_exactly(app, run, backend, value):
    """JSON columns are served from their stored text, never re-interpreted."""
    post_job(app, run, job_id=1, kernel=value, overrides={"big": value})
    # SQLite gives JSON columns NUMERIC affinity: a bare beyond-64-bit integer becomes REAL
    bare_ok = not (backend == "sqlite" and value == 10**40)
    for job in (app.get(f"/runs/{run}/jobs/1/").json, app.get(f"/runs/{run}/").json["jobs"][0],
                app.get(f"/runs/{run}/jobs/").json[0]):
        if bare_ok:
            assert job["kernel"] == value
        assert job["overrides"] == {"big": value}
