"""Webhook subscriptions and the dispatch worker, delivering to a real local HTTP receiver:
signatures, criteria and verbosity, retries after 500s and timeouts, giving up, disabling,
and a worker SIGKILLed mid-backlog that loses nothing once restarted."""
from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from paddles.dispatch import Dispatcher
from paddles.models import Delivery, DeliveryStatus, Event, Subscription
from paddles.services import webhooks
from tests.events.conftest import SECRET, server_env, wait_until
from tests.factories import post_job, put_job, run_name

PADDLES = str(Path(sys.executable).parent / "paddles")


def _subscribe(app, url, **fields):
    body = {"url": url, "secret": SECRET, **fields}
    return app.post("/subscriptions/", json.dumps(body), status=201).json


def _message(app, i):
    return app.post("/events/", json.dumps({"message": i}), status=201).json["id"]


class Running:
    """A Dispatcher on a thread, stopped at the end of the with block."""

    def __init__(self, settings, **kw):
        self.dispatcher = Dispatcher(settings, **kw)
        self.thread = threading.Thread(target=self.dispatcher.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.dispatcher

    def __exit__(self, *exc):
        self.dispatcher.stop()
        self.thread.join(10)
        self.dispatcher.close()


# ---- the resource -------------------------------------------------------------------------

def test_subscription_crud(app):
    created = _subscribe(app, "https://ci.example.com/hooks/paddles", types=["run.*"],
                         criteria={"status": ["fail", "finished dead"], "suite": "rados",
                                   "run": "*-smithi"},
                         verbosity="verbose", compare=True, description="CI")
    sub_id = created["id"]
    assert created["secret"] == SECRET and created["enabled"] is True
    assert created["href"] == f"http://paddles.test/subscriptions/{sub_id}/"
    shown = app.get(f"/subscriptions/{sub_id}").json
    assert "secret" not in shown  # shown once, at creation
    assert shown["criteria"] == {"status": ["fail", "finished dead"], "suite": "rados",
                                 "run": "*-smithi"}
    assert [s["id"] for s in app.get("/subscriptions/").json] == [sub_id]

    changed = app.put(f"/subscriptions/{sub_id}/", json.dumps({"enabled": False,
                                                               "verbosity": "quiet"})).json
    assert changed["enabled"] is False and changed["disabled_reason"] == "disabled by request"
    assert changed["verbosity"] == "quiet" and changed["types"] == ["run.*"]
    changed = app.put(f"/subscriptions/{sub_id}/", json.dumps({"enabled": True})).json
    assert changed["enabled"] is True and changed["disabled_reason"] is None
    assert app.get(f"/subscriptions/{sub_id}/deliveries/").json == []

    assert app.delete(f"/subscriptions/{sub_id}/", status=204).body == b""
    app.get(f"/subscriptions/{sub_id}/", status=404)
    app.get(f"/subscriptions/{sub_id}/deliveries/", status=404)


def test_a_generated_secret_is_returned_once(app):
    created = app.post("/subscriptions/", json.dumps({"url": "http://x.test/"}), status=201)
    assert len(created.json["secret"]) == 64 and created.json["types"] == ["*"]
    assert created.json["verbosity"] == "status" and created.json["compare"] is False
    assert created.headers["Location"].endswith(f"/subscriptions/{created.json['id']}/")


@pytest.mark.parametrize("body, message", [
    ({}, "could not find required key: 'url'"),
    ({"url": "ftp://x/"}, "url must be an http:// or https:// URL"),
    ({"url": "http://x/", "types": []}, "types must be a non-empty list"),
    ({"url": "http://x/", "types": ["job.%"]}, "type must be an event type or a glob"),
    ({"url": "http://x/", "criteria": {"status": ["passed"]}}, "criteria.status values"),
    ({"url": "http://x/", "criteria": {"colour": "red"}}, "unknown criteria key: colour"),
    ({"url": "http://x/", "criteria": {"suite": 3}}, "criteria.suite must be a string"),
    ({"url": "http://x/", "verbosity": "loud"}, "verbosity must be one of"),
    ({"url": "http://x/", "compare": "yes"}, "compare must be a boolean"),
    ({"url": "http://x/", "secret": "short"}, "secret must be at least 16 characters"),
    ({"url": "http://x/", "recipients": []}, "unknown key: recipients"),
])
def test_bad_subscriptions_are_400(app, body, message):
    assert app.post("/subscriptions/", json.dumps(body), status=400).json["message"] \
        .startswith(message)


def test_bad_ids_and_queries(app):
    assert app.get("/subscriptions/abc/", status=404).json == {
        "message": "subscription not found"}
    sub = _subscribe(app, "http://x.test/")
    app.get(f"/subscriptions/{sub['id']}/deliveries/?status=lost", status=400)
    app.put(f"/subscriptions/{sub['id']}/", json.dumps({"url": "nope"}), status=400)
    app.post(f"/subscriptions/{sub['id']}/", "{}", status=405)


# ---- matching and payloads ----------------------------------------------------------------

def _event(type_, run="r-smithi", **data):
    return Event(id=1, uuid="u", type=type_, topic="t", subject="s", run_name=run, data=data)


@pytest.mark.parametrize("criteria, event, expected", [
    ({"status": ["fail"]}, _event("job.status", status="fail"), True),
    ({"status": ["fail"]}, _event("run.status", status="finished fail"), True),
    ({"status": ["finished fail"]}, _event("job.status", status="fail"), False),
    ({"status": "dead"}, _event("run.status", status="finished dead"), True),
    ({"status": ["pass"]}, _event("run.created", status="empty"), False),
    ({"status": ["pass"]}, _event("message"), False),
    ({"suite": ["rados", "fs"]}, _event("run.status", suite="fs"), True),
    ({"suite": "rados*"}, _event("run.status", suite="rados-wip"), True),
    ({"suite": "rados"}, _event("node.locked"), False),
    ({"run": "*-smithi"}, _event("job.created"), True),
    ({"run": "*-mira"}, _event("job.created"), False),
    ({"branch": "main", "machine_type": "smithi", "user": "teuthology"},
     _event("job.created", branch="main", machine_type="smithi", user="teuthology"), True),
])
def test_criteria(criteria, event, expected):
    sub = Subscription(types=["*"], criteria=criteria)
    assert webhooks.matches(sub, event) is expected


def test_types_are_globs():
    sub = Subscription(types=["job.*", "run.status"], criteria={})
    assert [webhooks.matches(sub, _event(t)) for t in
            ("job.created", "job.status", "run.status", "run.created", "message")] == [
        True, True, True, False, False]


def test_fan_out_applies_criteria_and_verbosity(app, settings, session_factory):
    quiet = _subscribe(app, "http://q.test/", types=["run.status"], verbosity="quiet",
                       criteria={"status": "fail", "suite": "rados"})
    verbose = _subscribe(app, "http://v.test/", types=["run.status", "job.status"],
                         verbosity="verbose", compare=True, criteria={"suite": "rados"})
    status = _subscribe(app, "http://s.test/", types=["job.*"], criteria={"suite": "fs"})
    rados_fail, rados_pass = run_name(suite="rados"), run_name(suite="rados")
    fs_fail = run_name(suite="fs")
    for run, suite, outcome in ((rados_fail, "rados", "fail"), (rados_pass, "rados", "pass"),
                                (fs_fail, "fs", "fail")):
        post_job(app, run, "1", status="running", description="d", suite=suite)
        put_job(app, run, "1", status=outcome)

    with session_factory.begin() as session:
        made = webhooks.fan_out(session, settings)
    with session_factory() as session:
        rows = session.execute(select(Delivery.subscription_id, Delivery.body)
                               .order_by(Delivery.id)).all()
    assert made == len(rows)
    bodies = {sid: [json.loads(b) for s, b in rows if s == sid]
              for sid in (quiet["id"], verbose["id"], status["id"])}

    [only] = bodies[quiet["id"]]  # the rados run that finished failing
    assert set(only) == {"subscription", "event"}
    assert only["event"]["type"] == "run.status" and only["event"]["run"] == rados_fail
    assert only["event"]["subject"] == f"runs/{rados_fail}"

    got = [(b["event"]["type"], b["event"]["run"], b["status"]) for b in bodies[verbose["id"]]]
    assert got == [("run.status", rados_fail, "running"), ("job.status", rados_fail, "fail"),
                   ("run.status", rados_fail, "finished fail"),
                   ("run.status", rados_pass, "running"), ("job.status", rados_pass, "pass"),
                   ("run.status", rados_pass, "finished pass")]
    finished = bodies[verbose["id"]][2]
    assert finished["old_status"] == "running" and finished["results"]["fail"] == 1
    assert finished["object"]["name"] == rados_fail and finished["data"]["suite"] == "rados"
    assert finished["compare"]["run"] == rados_fail  # compare: on finished runs only
    assert "compare" not in bodies[verbose["id"]][0]
    job = bodies[verbose["id"]][1]
    assert job["object"]["job_id"] == "1" and job["object"]["status"] == "fail"

    got = [(b["event"]["type"], b["status"]) for b in bodies[status["id"]]]
    assert got == [("job.created", "running"), ("job.status", "fail")]
    assert set(bodies[status["id"]][1]) == {"subscription", "event", "status", "old_status",
                                            "results"}

    with session_factory.begin() as session:  # the cursors moved: nothing twice
        assert webhooks.fan_out(session, settings) == 0


def test_a_new_subscription_sees_only_later_events(app, settings, session_factory):
    _message(app, "before")
    _subscribe(app, "http://x.test/")
    after = _message(app, "after")
    with session_factory.begin() as session:
        webhooks.fan_out(session, settings)
    with session_factory() as session:
        assert list(session.scalars(select(Delivery.event_id))) == [after]


# ---- delivery -----------------------------------------------------------------------------

def test_delivery_retries_after_500s_and_timeouts(app, settings, receiver):
    """Attempt 1 answers 500, attempt 2 does not answer in time, attempt 3 is a 200."""
    receiver.plan = lambda attempt, request: {1: 500, 2: "timeout"}.get(attempt, 200)
    sub = _subscribe(app, receiver.url, types=["message"])
    ids = [_message(app, i) for i in range(3)]
    with Running(settings):
        assert wait_until(lambda: len(receiver.requests) >= 9, timeout=20)
        assert wait_until(lambda: all(
            d["status"] == "delivered"
            for d in app.get(f"/subscriptions/{sub['id']}/deliveries/").json), timeout=10)
    assert all(r["signed"] for r in receiver.requests)
    by_delivery: dict[str, list] = {}
    for r in receiver.requests:
        by_delivery.setdefault(r["headers"]["X-Paddles-Delivery"], []).append(r)
    assert len(by_delivery) == 3
    for attempts in by_delivery.values():
        assert [r["headers"]["X-Paddles-Attempt"] for r in attempts] == ["1", "2", "3"]
        assert len({r["body"] for r in attempts}) == 1  # the same bytes every time
        assert attempts[0]["headers"]["X-Paddles-Event"] == "message"
        assert attempts[0]["headers"]["Content-Type"] == "application/json"
    assert sorted({r["json"]["event"]["id"] for r in receiver.requests}) == ids

    deliveries = app.get(f"/subscriptions/{sub['id']}/deliveries/").json
    assert [d["event_id"] for d in deliveries] == ids[::-1]  # newest first
    for d in deliveries:
        assert d["attempts"] == 3 and d["response_status"] == 200 and d["error"] is None
        assert [entry["status"] for entry in d["log"]] == [500, None, 200]
        assert d["log"][1]["error"] == "timed out after 0.5 s"
        assert d["next_attempt"] is None and d["delivered"] is not None
    shown = app.get(f"/subscriptions/{sub['id']}/").json
    assert shown["failures"] == 0 and shown["last_success"] is not None


def test_a_failing_subscription_is_disabled_and_says_why(app, settings, receiver):
    receiver.plan = lambda attempt, request: 500
    settings = dataclasses.replace(settings, webhook_disable_failures=3,
                                   webhook_disable_seconds=0)
    sub = _subscribe(app, receiver.url)
    first = _message(app, 1)
    with Running(settings):
        assert wait_until(lambda: not app.get(f"/subscriptions/{sub['id']}/").json["enabled"])
        seen = len(receiver.requests)
        second = _message(app, 2)  # not attempted while disabled
        assert not wait_until(lambda: len(receiver.requests) > seen, timeout=0.5)
    shown = app.get(f"/subscriptions/{sub['id']}/").json
    assert seen == 3 and shown["failures"] == 3
    assert "after 3 consecutive failed deliveries" in shown["disabled_reason"]
    assert shown["disabled_reason"].endswith("last: HTTP 500")

    receiver.plan = lambda attempt, request: 200
    app.put(f"/subscriptions/{sub['id']}/", json.dumps({"enabled": True}))
    with Running(settings):  # re-enabled: the pending one and the later one go out
        assert wait_until(lambda: {d["status"] for d in app.get(
            f"/subscriptions/{sub['id']}/deliveries/").json} == {"delivered"})
    deliveries = app.get(f"/subscriptions/{sub['id']}/deliveries/").json
    assert [d["event_id"] for d in deliveries] == [second, first]


def test_a_delivery_is_given_up_after_the_retry_window(app, settings, receiver):
    receiver.plan = lambda attempt, request: 503
    # long enough for a second attempt even when a loaded machine slows the first one
    settings = dataclasses.replace(settings, webhook_retry_seconds=1.5)
    sub = _subscribe(app, receiver.url)
    _message(app, 1)
    with Running(settings):
        assert wait_until(lambda: [d["status"] for d in app.get(
            f"/subscriptions/{sub['id']}/deliveries/").json] == ["failed"], timeout=10)
    [delivery] = app.get(f"/subscriptions/{sub['id']}/deliveries/?status=failed").json
    assert delivery["attempts"] >= 2 and delivery["next_attempt"] is None
    assert delivery["response_status"] == 503
    assert app.get(f"/subscriptions/{sub['id']}/deliveries/?status=pending").json == []


def test_killed_worker_restarted_mid_backlog_delivers_everything(app, database_url, tmp_path,
                                                                 receiver, session_factory):
    receiver.delay = 0.03
    _subscribe(app, receiver.url, types=["message"])
    ids = [_message(app, i) for i in range(30)]
    env = server_env(database_url, tmp_path, PADDLES_WEBHOOK_TIMEOUT=0.5,
                     PADDLES_WEBHOOK_BACKOFF_BASE=0.05, PADDLES_DISPATCH_POLL_INTERVAL=0.05)
    argv = [PADDLES, "dispatch", "--concurrency", "2"]
    worker = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(receiver.requests) >= 8, timeout=20)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        received = set(receiver.event_ids())
        assert received < set(ids)  # mid-backlog
        worker = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
        assert wait_until(lambda: set(receiver.event_ids()) == set(ids), timeout=30)
        assert wait_until(lambda: _statuses(session_factory) == {DeliveryStatus.DELIVERED},
                          timeout=10)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert worker.wait(10) == 0  # a clean stop on SIGTERM
        finally:
            worker.kill()
    assert sorted(set(receiver.event_ids())) == ids  # every event, at least once
    assert all(r["signed"] for r in receiver.requests)


def _statuses(session_factory) -> set:
    with session_factory() as session:
        return set(session.scalars(select(Delivery.status)))


def test_workers_claim_disjoint_deliveries(app, settings, session_factory, backend):
    """PostgreSQL: a second worker skips the rows the first has locked (SKIP LOCKED); on both
    backends a leased delivery is not due again until its lease ends."""
    from paddles.db import begin_write

    _subscribe(app, "http://x.test/")
    for i in range(6):
        _message(app, i)
    with session_factory.begin() as session:
        assert webhooks.fan_out(session, settings) == 6
    first = session_factory()
    begin_write(first)
    mine = {c.id for c in webhooks.claim_deliveries(first, limit=4, lease=30)}
    if backend == "postgresql":
        with session_factory.begin() as second:
            theirs = {c.id for c in webhooks.claim_deliveries(second, limit=10, lease=30)}
        assert len(mine) == 4 and len(theirs) == 2 and not mine & theirs
    first.commit()
    first.close()
    with session_factory.begin() as session:
        begin_write(session)
        left = webhooks.claim_deliveries(session, limit=10, lease=30)
    assert len(left) == (0 if backend == "postgresql" else 2)
