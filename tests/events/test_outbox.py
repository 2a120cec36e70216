"""Every change writes exactly one event, in its own transaction; a change that fails writes
none; heartbeats and writes that change nothing write none."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from paddles.app import make_app
from paddles.db import begin_write
from paddles.errors import InvalidRequest
from paddles.models import Event, Run
from paddles.services import events as event_service
from paddles.services import jobs as job_service
from tests.events.conftest import latest, new_events, types_after
from tests.factories import post_job, put_job, run_name


def _node(app, name="smithi001.front.sepia.ceph.com", **fields):
    app.post("/nodes/", json.dumps({"name": name, "machine_type": "smithi", "up": True,
                                    **fields}))
    return name


def test_run_created_and_deleted(app):
    run = run_name()
    since = latest(app)
    app.post("/runs/", json.dumps({"name": run}))
    assert types_after(app, since) == ["run.created"]
    since = latest(app)
    app.delete(f"/runs/{run}/")
    events = new_events(app, since)
    assert [e["type"] for e in events] == ["run.deleted"]
    assert events[0]["subject"] == f"runs/{run}" and events[0]["run"] == run
    assert events[0]["username"] == "teuthology" and events[0]["data"]["suite"] == "rados"


def test_job_post_creates_the_run_then_the_job_then_moves_the_run_status(app):
    run = run_name()
    post_job(app, run, "1", status="queued")
    events = new_events(app)
    assert [e["type"] for e in events] == ["run.created", "job.created", "run.status"]
    created, job, status = events
    assert created["data"]["status"] == "empty"
    assert job["subject"] == f"runs/{run}/jobs/1" and job["job"] == "1"
    assert job["data"]["status"] == "queued" and job["data"]["results"]["queued"] == 1
    assert (status["data"]["old_status"], status["data"]["status"]) == ("empty", "queued")
    assert [e["topic"] for e in events] == ["org.paddles.run", "org.paddles.job",
                                           "org.paddles.run"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(e["uuid"] for e in events)) == 3


def test_job_updates(app):
    run = run_name()
    post_job(app, run, "1", status="running")
    post_job(app, run, "2", status="queued")

    since = latest(app)
    put_job(app, run, "1", description="rados/basic")
    assert types_after(app, since) == ["job.updated"]
    assert new_events(app, since)[0]["data"]["changed"] == ["description"]

    since = latest(app)
    put_job(app, run, "2", status="running")  # the run stays running: no run.status
    events = new_events(app, since)
    assert [e["type"] for e in events] == ["job.status"]
    assert (events[0]["data"]["old_status"], events[0]["data"]["status"]) == ("queued",
                                                                              "running")

    since = latest(app)
    put_job(app, run, "1", success=True)
    put_job(app, run, "2", status="fail")
    assert types_after(app, since) == ["job.status", "job.status", "run.status"]
    assert new_events(app, since)[-1]["data"]["status"] == "finished fail"

    since = latest(app)
    app.delete(f"/runs/{run}/jobs/2/")
    assert types_after(app, since) == ["job.deleted", "run.status"]


def test_heartbeats_and_writes_that_change_nothing_record_nothing(app):
    run = run_name()
    post_job(app, run, "1", status="running", description="d")
    since = latest(app)
    put_job(app, run, "1", name="teuthology-run")  # heartbeat: name only
    put_job(app, run, "1")  # an empty body is a heartbeat too
    put_job(app, run, "1", description="d", status="running")  # same values
    assert types_after(app, since) == []


def test_nodes(app):
    name = _node(app)
    other = _node(app, "smithi002.front.sepia.ceph.com")
    assert types_after(app, 0) == ["node.created", "node.created"]

    since = latest(app)
    app.put(f"/nodes/{name}/lock/", json.dumps({"locked": True, "locked_by": "me@host",
                                                "description": "testing"}))
    app.put(f"/nodes/{name}/", json.dumps({"up": False}))
    app.put(f"/nodes/{name}/", json.dumps({"up": False}))  # no change: no event
    app.put(f"/nodes/{name}/lock/", json.dumps({"locked": False, "locked_by": "me@host"}))
    events = new_events(app, since)
    assert [e["type"] for e in events] == ["node.locked", "node.updated", "node.unlocked"]
    assert events[0]["username"] == "me@host" and events[0]["subject"] == f"nodes/{name}"
    assert events[1]["data"]["changed"] == ["up"]
    assert events[2]["data"]["old_locked_by"] == "me@host"

    app.put(f"/nodes/{name}/", json.dumps({"up": True}))
    since = latest(app)
    app.post("/nodes/lock_many/", json.dumps({"count": 2, "locked_by": "me@host",
                                              "machine_type": "smithi", "description": "x"}))
    app.post("/nodes/unlock_many/", json.dumps({"names": [name, other],
                                                "locked_by": "me@host"}))
    app.delete(f"/nodes/{other}/")
    assert types_after(app, since) == ["node.locked"] * 2 + ["node.unlocked"] * 2 \
        + ["node.deleted"]


def test_job_targets_create_nodes(app):
    post_job(app, run_name(), "1", targets={"ubuntu@smithi042.front.sepia.ceph.com": "ssh-rsa"})
    assert "node.created" in types_after(app, 0)


def test_artifacts(app):
    run = run_name()
    post_job(app, run, "1")
    url = f"/runs/{run}/jobs/1/artifacts/logs/teuthology.log"
    since = latest(app)
    app.put(url, b"hello\n", status=201)
    app.put(url, b"hello\n")  # the same content: unchanged, no event
    app.put(url, b"hello again\n")
    app.put(f"/runs/{run}/artifacts/summary.txt", b"run level\n", status=201)
    app.delete(url, status=204)
    events = new_events(app, since)
    assert [e["type"] for e in events] == ["artifact.created", "artifact.updated",
                                           "artifact.created", "artifact.deleted"]
    assert events[0]["subject"] == f"runs/{run}/jobs/1/artifacts/logs/teuthology.log"
    assert events[0]["data"]["size"] == 6 and events[0]["data"]["kind"] == "log"
    assert events[2]["subject"] == f"runs/{run}/artifacts/summary.txt"
    assert events[2]["job"] is None


def test_message_events(app):
    run = run_name()
    resp = app.post("/events/", json.dumps({"message": {"step": "thrash", "ok": True},
                                            "topic": "osd.thrash", "run": run, "job": "7",
                                            "username": "tester", "data": {"n": 1}}),
                    status=201)
    event = resp.json
    assert event["type"] == "message" and event["id"] == latest(app)
    assert event["topic"] == "org.paddles.message.osd.thrash"
    assert event["subject"] == f"runs/{run}/jobs/7" and event["username"] == "tester"
    assert event["data"] == {"message": {"step": "thrash", "ok": True}, "run": run, "job": "7",
                             "n": 1}
    assert app.post("/events", json.dumps({"message": "plain"}), status=201).json[
        "subject"] == "events"


@pytest.mark.parametrize("body, message", [
    ({}, "could not find required key: 'message'"),
    ({"message": None}, "could not find required key: 'message'"),
    ({"message": "x", "topic": "a..b"}, "topic must be dot-separated words"),
    ({"message": "x", "job": "1"}, "job needs run"),
    ({"message": "x", "data": [1]}, "data must be an object"),
    ({"message": "x", "extra": 1}, "unknown key: extra"),
    ({"message": "x", "run": "r" * 513}, "run is longer than 512 characters"),
])
def test_bad_messages_are_400(app, body, message):
    resp = app.post("/events/", json.dumps(body), status=400)
    assert resp.json["message"].startswith(message)
    assert types_after(app, 0) == []


def test_topic_prefix_is_configurable(settings, session_factory):
    import webtest
    custom = webtest.TestApp(make_app(settings.__class__(**{
        **settings.__dict__, "event_topic_prefix": "org.example.paddles"}),
        session_factory=session_factory))
    post_job(custom, run_name(), "1")
    assert {e["topic"] for e in new_events(custom)} == {"org.example.paddles.run",
                                                        "org.example.paddles.job"}


def test_topic_prefix_from_the_environment(monkeypatch, database_url):
    from paddles.settings import load_settings
    monkeypatch.setenv("PADDLES_EVENT_TOPIC_PREFIX", "org.lab.paddles")
    assert load_settings(database_url=database_url).event_topic_prefix == "org.lab.paddles"


# ---- nothing without its change -------------------------------------------------------------

def test_a_request_failing_half_way_leaves_no_event(app, session_factory, monkeypatch):
    """The run and job are created (their events recorded) before the failure: all gone."""
    run = run_name()

    def fail(*args, **kwargs):
        raise InvalidRequest("refused half way")
    monkeypatch.setattr(job_service, "link_targets", fail)  # after the job's INSERT
    resp = app.post(f"/runs/{run}/jobs/", json.dumps({
        "job_id": "1", "targets": {"ubuntu@smithi001.front.sepia.ceph.com": "key"}}),
        status=400)
    assert resp.json == {"message": "refused half way"}
    assert new_events(app) == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_refused_changes_record_nothing(app):
    name = _node(app)
    app.put(f"/nodes/{name}/lock/", json.dumps({"locked": True, "locked_by": "a"}))
    since = latest(app)
    app.post("/nodes/unlock_many/", json.dumps({"names": [name], "locked_by": "b"}),
             status=403)
    app.post("/nodes/lock_many/", json.dumps({"count": 5, "locked_by": "a",
                                              "machine_type": "smithi", "description": None}),
             status=503)
    app.put(f"/nodes/{name}/", json.dumps({"locked": False, "locked_by": "a",
                                           "vm_host": "missing"}), status=400)
    assert types_after(app, since) == []


def test_rolled_back_sessions_forget_their_events(session_factory):
    with session_factory() as session:
        begin_write(session)
        event_service.record_event(session, "message", {"message": 1}, subject="events")
        session.rollback()
        assert event_service.pending_events(session) == []
        begin_write(session)
        event_service.record_event(session, "message", {"message": 2}, subject="events")
        session.commit()
    with session_factory() as session:
        assert [e.data["message"] for e in session.scalars(select(Event))] == [2]


def test_a_failed_commit_leaves_no_event(app, session_factory):
    """Events go in at commit, after the transaction's other rows: a commit that fails there
    (here a duplicate run name met at the final flush) takes the event back with it."""
    run = run_name()
    app.post("/runs/", json.dumps({"name": run}))
    since = latest(app)
    with session_factory() as session:
        begin_write(session)
        event_service.record_event(session, "message", {"message": 1}, subject="events")
        session.add(Run(name=run, scheduled=event_service.utcnow(), user="u"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
    assert new_events(app, since) == []


def test_admin_commands_record_their_changes(app, session_factory):
    import datetime as dt

    from sqlalchemy import update

    from paddles.models import Job
    from paddles.services import runs as run_service

    run = run_name()
    post_job(app, run, "1", status="running")
    with session_factory.begin() as session:
        session.execute(update(Job).values(updated=dt.datetime(2020, 1, 1,
                                                                tzinfo=dt.timezone.utc)))
    since = latest(app)
    with session_factory.begin() as session:
        begin_write(session)
        job_service.expire_stale_jobs(session)
    events = new_events(app, since)
    assert [(e["type"], e["data"].get("old_status"), e["data"]["status"]) for e in events] == [
        ("job.status", "running", "dead"), ("run.status", "running", "finished dead")]

    since = latest(app)
    with session_factory.begin() as session:
        begin_write(session)
        run_service.delete_run_and_jobs(session, run)
    assert types_after(app, since) == ["run.deleted"]
