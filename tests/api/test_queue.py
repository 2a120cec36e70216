"""Spec section 11 (and 6.4): /queue/, pausing, pop_queue, stats and queued_jobs."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

import paddles.controllers.queue  # noqa: F401  (registers the /queue/ OpenAPI paths)
from paddles import openapi
from paddles.models import Job
from paddles.serializers import wire_time
from tests.factories import post_job, run_name

QUEUE_KEYS = ["queue", "paused", "paused_by", "paused_since", "paused_until"]
READS = ("pop_queue", "stats", "queued_jobs")


def call(app, method, path, body=None, *, raw=None, content_type=None):
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    headers = {"Content-Type": content_type} if content_type else {}
    return app.request(path, method=method, body=data, headers=headers, expect_errors=True)


def ok(resp):
    assert resp.status_int == 200, resp.body
    assert resp.content_type == "application/json"
    return resp.json


def error(resp, status, message):
    assert (resp.status_int, resp.json) == (status, {"message": message})


def make_queue(app, name="smithi", **fields):
    return ok(call(app, "POST", "/queue/", {"queue": name, **fields}))


def put_queue(app, name="smithi", **fields):
    return call(app, "PUT", "/queue/", {"queue": name, **fields})


def queues(app, query=""):
    return ok(call(app, "GET", f"/queue/?{query}"))


def the_queue(app, name="smithi"):
    [queue] = [q for q in queues(app) if q["queue"] == name]
    return queue


def queued(app, run, job_id, queue="smithi", **fields):
    post_job(app, run, job_id=job_id, status="queued", queue=queue, **fields)


def parse(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


# ---- GET, POST, PUT /queue/ ---------------------------------------------------------------------

def test_create_and_list(app):
    assert make_queue(app, "smithi") == {}
    make_queue(app, "multi")
    listed = queues(app)
    assert [q["queue"] for q in listed] == ["multi", "smithi"]
    assert listed[1] == {"queue": "smithi", "paused": False, "paused_by": None,
                         "paused_since": None, "paused_until": None}
    assert all(list(q) == QUEUE_KEYS for q in listed)


def test_list_by_machine_type_and_paused_by(app):
    for name in ("smithi", "mira", "multi"):
        make_queue(app, name)
    ok(put_queue(app, "mira", paused_by="alice", pause_duration=60))
    assert [q["queue"] for q in queues(app, "machine_type=smithi")] == ["smithi"]
    assert [q["queue"] for q in queues(app, "machine_type=smithi|mira")] == ["multi"]
    assert [q["queue"] for q in queues(app, "machine_type=nope")] == []
    assert [q["queue"] for q in queues(app, "paused_by=alice")] == ["mira"]
    assert [q["queue"] for q in queues(app, "paused_by=bob")] == []


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("raw,message", [
    (b"", "could not decode JSON body"),
    (b"{oops", "could not decode JSON body"),
    (b"[]", "could not decode JSON body"),
    (b"{}", "could not find required key: 'queue'"),
    (b'{"queue": ""}', "could not find required key: 'queue'"),
    (b'{"queue": null, "paused_by": "a"}', "could not find required key: 'queue'"),
    (b'{"queue": "' + b"q" * 33 + b'"}', "queue is longer than 32 characters"),
    (b'{"queue": "smithi", "pause_duration": "abc", "paused_by": "a"}',
     "pause_duration must be a number"),
    (b'{"queue": "smithi", "pause_duration": true, "paused_by": "a"}',
     "pause_duration must be a number"),
    (b'{"queue": "smithi", "paused_until": "soon"}',
     "paused_until must be formatted as %Y-%m-%d %H:%M:%S"),
])
def test_body_errors(app, method, raw, message):
    if method == "PUT":
        make_queue(app, "smithi")
    error(call(app, method, "/queue/", raw=raw), 400, message)


def test_create_existing_is_400(app):
    make_queue(app, "smithi")
    error(call(app, "POST", "/queue/", {"queue": "smithi"}), 400, "Queue smithi already exists")


def test_create_with_pause_duration_pauses_at_once(app):
    make_queue(app, "smithi", paused_by="alice", pause_duration=600, colour="blue")
    queue = the_queue(app)
    assert queue["paused"] is True and queue["paused_by"] == "alice"
    assert parse(queue["paused_until"]) - parse(queue["paused_since"]) == dt.timedelta(
        seconds=600)


def test_create_with_pause_duration_needs_paused_by(app):
    error(call(app, "POST", "/queue/", {"queue": "smithi", "pause_duration": 60}), 400,
          "Cannot pause without specifying paused_by")
    assert queues(app) == []


def test_update_unknown_queue_is_400(app):
    error(put_queue(app, "nope", paused_by="a", pause_duration=5), 400,
          "specified queue does not exist")


def test_pause_then_pause_again_is_403(app):
    make_queue(app)
    assert ok(put_queue(app, paused_by="alice", pause_duration=3600)) == {}
    queue = the_queue(app)
    assert queue["paused"] is True
    now = dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(seconds=3590) < parse(queue["paused_until"]) - now \
        <= dt.timedelta(seconds=3600)
    error(put_queue(app, paused_by="bob", pause_duration=60), 403,
          "Cannot pause an already-paused queue")
    assert the_queue(app)["paused_by"] == "alice"


def test_pause_needs_paused_by(app):
    make_queue(app)
    for body in ({"pause_duration": 60}, {"pause_duration": 60, "paused_by": ""}):
        error(put_queue(app, **body), 400, "Cannot pause without specifying paused_by")
    assert the_queue(app)["paused"] is False


@pytest.mark.parametrize("duration", [0, -5, None, 0.0])
def test_zero_negative_or_null_duration_unpauses_keeping_paused_by(app, duration):
    make_queue(app)
    ok(put_queue(app, paused_by="alice", pause_duration=3600))
    assert ok(put_queue(app, pause_duration=duration)) == {}
    queue = the_queue(app)
    assert (queue["paused"], queue["paused_until"], queue["paused_by"]) == (
        False, None, "alice")
    ok(put_queue(app, paused_by="bob", pause_duration=1.5))  # can pause again
    assert the_queue(app)["paused_by"] == "bob"


def test_unpausing_a_running_queue_is_fine(app):
    make_queue(app)
    assert ok(put_queue(app, pause_duration=0)) == {}


def test_raw_pause_fields_are_parsed_and_paused_is_derived(app):
    make_queue(app)
    past = "2024-01-15 20:00:03"
    ok(put_queue(app, paused_by="alice", paused_since="2024-01-15T19:00:00",
                 paused_until=past))
    queue = the_queue(app)
    assert (queue["paused"], queue["paused_since"], queue["paused_until"]) == (
        False, "2024-01-15 19:00:00", past)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    ok(put_queue(app, paused_until=future.isoformat()))
    assert the_queue(app)["paused"] is True
    assert the_queue(app)["paused_until"] == wire_time(future)


@pytest.mark.parametrize("method,path", [("DELETE", "/queue/"), ("PATCH", "/queue"),
                                         ("PUT", "/queue/pop_queue/"),
                                         ("DELETE", "/queue/stats"),
                                         ("PUT", "/queue/queued_jobs/")])
def test_other_methods_are_405(app, method, path):
    resp = call(app, method, path, {"queue": "smithi"})
    error(resp, 405, "method not allowed")
    assert resp.headers["Allow"]


# ---- pop_queue ----------------------------------------------------------------------------------

@pytest.fixture
def backlog(app):
    """smithi: jobs with priorities 50, null, 10, 50 (posted in that order), one running job
    and one queued job of another queue."""
    make_queue(app, "smithi")
    make_queue(app, "mira")
    run = run_name()
    queued(app, run, 1, priority=50)
    queued(app, run, 2, priority=None)
    queued(app, run, 3, priority=10, user="bob")
    queued(app, run, 4, priority=50, user="bob")
    post_job(app, run, job_id=5, status="running", queue="smithi", priority=1)
    queued(app, run, 6, queue="mira", priority=1)
    return run


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pop_returns_the_best_queued_job_and_does_not_claim_it(app, backlog, method):
    job = ok(call(app, method, "/queue/pop_queue/?queue=smithi"))
    assert (job["job_id"], job["priority"], job["status"]) == ("3", 10, "queued")
    assert job == ok(call(app, "GET", f"/runs/{backlog}/jobs/3/"))
    assert ok(call(app, method, "/queue/pop_queue?queue=smithi"))["job_id"] == "3"


def test_pop_order_priority_then_posted_nulls_last(app, backlog, session):
    popped = []
    for _ in range(4):
        job = ok(call(app, "GET", "/queue/pop_queue/?queue=smithi"))
        popped.append(job["job_id"])
        ok(call(app, "PUT", f"/runs/{backlog}/jobs/{job['job_id']}/", {"status": "running"}))
    assert popped == ["3", "1", "4", "2"]
    assert call(app, "GET", "/queue/pop_queue/?queue=smithi").body == b"null"


def test_pop_ties_on_priority_go_to_the_oldest(app, backlog, session):
    session.rollback()
    newer = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    session.execute(update(Job).where(Job.job_id == "3").values(posted=newer, priority=50))
    session.commit()
    assert ok(call(app, "GET", "/queue/pop_queue/?queue=smithi"))["job_id"] == "1"


@pytest.mark.parametrize("query", ["queue=nope", "queue=mira&x=1"])
def test_pop_unknown_or_empty_queue_is_literal_null(app, query):
    make_queue(app, "mira")
    resp = call(app, "GET", f"/queue/pop_queue/?{query}")
    assert resp.status_int == 200
    assert resp.body == b"null"
    assert resp.content_type == "application/json"


def test_pop_paused_queue_is_503(app, backlog):
    ok(put_queue(app, "smithi", paused_by="alice", pause_duration=60))
    error(call(app, "GET", "/queue/pop_queue/?queue=smithi"), 503,
          "queue is paused, cannot retrieve job")
    ok(put_queue(app, "smithi", pause_duration=0))
    assert ok(call(app, "GET", "/queue/pop_queue/?queue=smithi"))["job_id"] == "3"


# ---- parameters: query string and JSON body -----------------------------------------------------

@pytest.mark.parametrize("content_type", [None, "application/json",
                                          "application/x-www-form-urlencoded", "text/plain"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_body_parameters_whatever_the_content_type(app, backlog, method, content_type):
    resp = call(app, method, "/queue/pop_queue/", {"queue": "smithi"},
                content_type=content_type)
    assert ok(resp)["job_id"] == "3"
    resp = call(app, method, "/queue/stats/", {"queue": "smithi"}, content_type=content_type)
    assert ok(resp)["queued_jobs"] == 4


def test_query_string_wins_over_the_body(app, backlog):
    resp = call(app, "GET", "/queue/pop_queue/?queue=mira", {"queue": "smithi"})
    assert ok(resp)["job_id"] == "6"


@pytest.mark.parametrize("route", READS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_missing_queue_parameter_is_400(app, route, method):
    for body in (None, {}, {"queue": ""}, {"user": "bob"}):
        error(call(app, method, f"/queue/{route}/", body), 400,
              "could not find required key: 'queue'")


@pytest.mark.parametrize("route", READS)
@pytest.mark.parametrize("raw", [b"{oops", b"[1]", b'"smithi"'])
def test_bad_json_body_is_400(app, route, raw):
    error(call(app, "GET", f"/queue/{route}/?queue=smithi", raw=raw), 400,
          "could not decode JSON body")


# ---- stats --------------------------------------------------------------------------------------

def test_stats_running_queue(app, backlog):
    stats = ok(call(app, "GET", "/queue/stats/?queue=smithi"))
    assert stats == {"queue": "smithi", "queued_jobs": 4, "paused": False}
    assert list(stats) == ["queue", "queued_jobs", "paused"]
    assert ok(call(app, "GET", "/queue/stats?queue=mira"))["queued_jobs"] == 1


def test_stats_paused_queue_is_the_queue_plus_count(app, backlog):
    ok(put_queue(app, "smithi", paused_by="alice", pause_duration=60))
    stats = ok(call(app, "POST", "/queue/stats/", {"queue": "smithi"}))
    assert stats == {**the_queue(app), "queued_jobs": 4}
    assert stats["paused"] is True and stats["paused_by"] == "alice"


def test_stats_unknown_queue_is_400(app):
    error(call(app, "GET", "/queue/stats/?queue=nope"), 400, "specified queue does not exist")


def test_stats_counts_in_the_database(app, backlog, queries):
    queries.reset()
    ok(call(app, "GET", "/queue/stats/?queue=smithi"))
    assert queries.count == 2  # the queue, then one COUNT
    assert any("count(" in s.lower() for s in queries.statements)


# ---- queued_jobs --------------------------------------------------------------------------------

def queued_ids(app, query="", body=None, method="GET"):
    return [j["job_id"] for j in ok(call(app, method, f"/queue/queued_jobs/?{query}", body))]


def test_queued_jobs_of_the_queue_best_first(app, backlog):
    assert queued_ids(app, body={"queue": "smithi"}) == ["3", "1", "4", "2"]
    assert queued_ids(app, body={"queue": "smithi"}, method="POST") == ["3", "1", "4", "2"]
    assert queued_ids(app, "queue=mira") == ["6"]
    jobs = ok(call(app, "GET", "/queue/queued_jobs/", {"queue": "smithi"}))
    assert jobs[0] == ok(call(app, "GET", f"/runs/{backlog}/jobs/3/"))


def test_queued_jobs_by_user(app, backlog):
    assert queued_ids(app, "user=bob", {"queue": "smithi"}) == ["3", "4"]
    assert queued_ids(app, body={"queue": "smithi", "user": "bob"}) == ["3", "4"]
    assert queued_ids(app, "user=carol", {"queue": "smithi"}) == []


def test_queued_jobs_by_run_stay_within_the_queue(app, backlog):
    other = run_name()
    queued(app, other, 1, priority=5)
    assert queued_ids(app, f"run_name={backlog}", {"queue": "smithi"}) == ["3", "1", "4", "2"]
    assert queued_ids(app, f"run_name={other}&user=bob", {"queue": "smithi"}) == ["1"]
    assert queued_ids(app, f"run_name={backlog}", {"queue": "mira"}) == ["6"]
    assert queued_ids(app, "run_name=nope", {"queue": "smithi"}) == []


def test_queued_jobs_unknown_queue_is_400(app):
    error(call(app, "GET", "/queue/queued_jobs/", {"queue": "nope"}), 400,
          "specified queue does not exist")


def test_reads_do_not_change_jobs(app, backlog, session):
    for route in READS:
        ok(call(app, "POST", f"/queue/{route}/", {"queue": "smithi"}))
    session.rollback()
    statuses = session.scalars(select(Job.status).where(Job.queue == "smithi")).all()
    assert sorted(s.value for s in statuses) == ["queued"] * 4 + ["running"]


# ---- every documented /queue/ route is routed --------------------------------------------------

def _documented():
    for path, ops in openapi.document()["paths"].items():
        if path.startswith("/queue/"):
            for method in ops:
                yield method.upper(), path


def test_queue_paths_are_documented():
    assert len(set(_documented())) == 9


@pytest.mark.parametrize("method,path", sorted(_documented()))
def test_every_documented_queue_route_is_routed(app, method, path):
    make_queue(app, "smithi")
    resp = call(app, method, path, {"queue": "smithi"})
    assert resp.status_int not in (404, 405, 500), resp.body
