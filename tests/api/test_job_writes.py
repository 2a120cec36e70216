"""The job write path of issue 21: fewer statements per create and status change, with the
run's counters, first-job values, node links and events exactly as before."""
from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

from sqlalchemy import func, select

from paddles.models import Event
from paddles.services import planned_jobs
from tests.factories import checked_out, run_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import write_bodies


def post(app, run, job_id, expect=200, **fields):
    return app.post(f"/runs/{run}/jobs/", json.dumps({"job_id": str(job_id), **fields}),
                    status=expect)


def put(app, run, job_id, expect=200, **fields):
    return app.put(f"/runs/{run}/jobs/{job_id}/", json.dumps(fields), status=expect)


def first_values(app, run):
    detail = app.get(f"/runs/{run}/").json
    return detail["sha1"], detail["flavor"], detail["priority"]


def test_first_job_values_follow_the_first_job_in_id_order(app):
    run = run_name()
    post(app, run, 5, sha1="5" * 40, flavor="default", priority=50)
    assert first_values(app, run) == ("5" * 40, "default", 50)
    post(app, run, 9, sha1="9" * 40, flavor="notcmalloc", priority=90)  # not first
    assert first_values(app, run) == ("5" * 40, "default", 50)
    post(app, run, 3, sha1="3" * 40, flavor="default", priority=50)  # first now
    assert first_values(app, run) == ("3" * 40, "default", 50)
    post(app, run, 4, sha1="3" * 40, flavor="default", priority=50)  # same values
    assert first_values(app, run) == ("3" * 40, "default", 50)
    put(app, run, 3, sha1="d" * 40)  # the first job's value changes
    assert first_values(app, run) == ("d" * 40, "default", 50)
    put(app, run, 9, sha1="e" * 40, priority=10)  # another job's: nothing moves
    assert first_values(app, run) == ("d" * 40, "default", 50)
    put(app, run, 3, sha1="d" * 40, status="running")  # unchanged value, status change
    assert first_values(app, run) == ("d" * 40, "default", 50)
    app.delete(f"/runs/{run}/jobs/3/")
    assert first_values(app, run) == ("3" * 40, "default", 50)  # job 4


def test_duplicate_job_id_is_400_and_changes_nothing(app, session):
    run = run_name()
    post(app, run, 1, status="queued")
    before = app.get(f"/runs/{run}/").json
    events = session.scalar(select(func.count()).select_from(Event))
    resp = post(app, run, 1, expect=400, status="running")
    assert resp.json == {"message": "job with job_id 1 already exists"}
    after = app.get(f"/runs/{run}/").json
    assert after["results"] == before["results"] and after["status"] == before["status"]
    assert session.scalar(select(func.count()).select_from(Event)) == events


def test_targets_link_known_and_new_nodes(app):
    run = run_name()
    hosts = [f"smithi00{n}.front.sepia.ceph.com" for n in (1, 2, 3)]
    app.post("/nodes/", json.dumps({"name": hosts[0], "machine_type": "smithi"}))

    def linked():
        return {h for h in hosts
                if any(j["name"] == run for j in
                       app.get(f"/nodes/{h}/jobs/", status="*").json or []
                       if isinstance(j, dict))}
    targets = {f"ubuntu@{h}": "k" for h in hosts[:2]}
    post(app, run, 1, targets=targets, machine_type="smithi", name=run)
    assert linked() == set(hosts[:2])  # one node known, one created
    more = {**targets, f"ubuntu@{hosts[2]}": "k"}
    put(app, run, 1, targets=more)  # one more on an update
    assert linked() == set(hosts)
    put(app, run, 1, targets=more, status="pass")  # the same again: nothing new
    assert linked() == set(hosts)


def test_job_writes_cost_few_statements(app, queries, db_engine):
    """A create in an existing run whose targets name existing nodes, and the two status
    reports of a job, counted as statements (not BEGIN/COMMIT), besides the events' (the
    advisory lock on PostgreSQL, one INSERT per event on SQLite)."""
    run = "teuthology-2026-12-05_10:00:00-rados-main-distro-default-smithi"
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi", "up": True}))
    app.post(f"/runs/{run}/jobs/", json.dumps(write_bodies.create_body(run, 1)))
    def counted():  # the events' advisory lock and INSERT(s) aside
        return [s[:60] for s in queries.statements
                if not s.startswith(("INSERT INTO events", "SELECT pg_advisory"))]
    queries.reset()
    app.post(f"/runs/{run}/jobs/", json.dumps(write_bodies.create_body(run, 2)))
    postgres = db_engine.dialect.name == "postgresql"
    # PostgreSQL: one statement finds and locks the run (with a node for every target),
    # inserts job, links and events and moves the counters; SQLite: run FOR UPDATE, job
    # INSERT, links INSERT ... SELECT, run UPDATE (then the events)
    assert len(counted()) == (1 if postgres else 4), counted()
    app.post(f"/runs/{run}/jobs/", json.dumps(write_bodies.create_body(run, 3)))
    app.put(f"/runs/{run}/jobs/3/", json.dumps(write_bodies.running_body(run, 3)))
    queries.reset()
    app.put(f"/runs/{run}/jobs/2/", json.dumps(write_bodies.running_body(run, 2)))
    # PostgreSQL: run and job read, then one statement locks the run and writes job, run
    # and events; SQLite: run and job FOR UPDATE, job UPDATE, run UPDATE (then the events)
    assert len(counted()) == (2 if postgres else 3), counted()
    queries.reset()
    app.put(f"/runs/{run}/jobs/2/", json.dumps(write_bodies.finish_body(run, 2)))
    assert len(counted()) == (2 if postgres else 3), counted()
    queries.reset()
    app.put(f"/runs/{run}/jobs/3/", json.dumps(write_bodies.finish_body(run, 3)))
    # the run's status moves (running -> queued): on PostgreSQL the same write statement
    # moves it and inserts its event; SQLite the same three
    assert len(counted()) == (2 if postgres else 3), counted()
    detail = app.get(f"/runs/{run}/").json
    assert detail["results"]["pass"] == 2 and detail["results"]["queued"] == 1
    assert detail["status"] == "queued"


def test_a_report_keeps_the_columns_it_does_not_name(app, queries, db_engine):
    """On PostgreSQL a report's plan reads the job's columns its rules read and those it
    names, no other (planned_jobs._plan_read): the others are left exactly as they were, a
    `running` report reads none of the config, and the event names what changed."""
    run = run_name()
    body = write_bodies.create_body(run, 1)
    body.update(failure_reason="none yet", pcp_grafana_url="https://grafana/d/1")
    app.post(f"/runs/{run}/jobs/", json.dumps(body))
    app.post(f"/runs/{run}/jobs/", json.dumps({**body, "job_id": "2"}))
    before = app.get(f"/runs/{run}/jobs/2/").json
    assert all(before[k] for k in ("description", "failure_reason", "kernel", "overrides",
                                   "pcp_grafana_url", "roles", "targets", "tasks", "os_type"))
    queries.reset()
    put(app, run, 2, status="running")
    if db_engine.dialect.name == "postgresql":
        read = queries.statements[0]
        assert read.startswith("EXECUTE paddles_plan_report_"), queries.statements
        sql = planned_jobs._plan_read(False, frozenset({"status"})).prepared.plain_sql
        assert "jobs.status" in sql
        assert not {"jobs.description", "jobs.os_type", "jobs.tasks", "runs.sha1"} & set(
            re.findall(r"\w+\.\w+", sql)), sql
    # named: two values that change and one that does not
    put(app, run, 2, description="rados/thrash changed", roles=[["mon.a"]], os_type="centos",
        owner=before["owner"])
    after = app.get(f"/runs/{run}/jobs/2/").json
    assert after["status"] == "running" and after["started"] is not None
    assert (after["description"], after["roles"], after["os_type"]) == (
        "rados/thrash changed", [["mon.a"]], "centos")
    changed = ("description", "roles", "os_type", "status", "started", "updated")
    assert {k: v for k, v in after.items() if k not in changed} == \
        {k: v for k, v in before.items() if k not in changed}
    events = [e for e in app.get(f"/events/?since=0&run={run}").json["events"]
              if e["job"] == "2"]
    assert [e["type"] for e in events[-2:]] == ["job.status", "job.updated"]
    assert sorted(events[-1]["data"]["changed"]) == ["description", "os_type", "roles"]


def test_a_report_checks_out_one_connection_for_its_read_and_its_write(app, db_engine):
    """On PostgreSQL a report's plan read and its write run alone on one pooled connection
    (pg.one_connection), checked out once and given back, also when the job is missing."""
    from sqlalchemy import event
    run = run_name()
    post(app, run, 1)
    checkouts = []

    def on_checkout(*_):  # by the request (not the thread that sends the NOTIFY after it)
        if threading.get_ident() == me:
            checkouts.append(1)
    me = threading.get_ident()
    event.listen(db_engine, "checkout", on_checkout)
    try:
        put(app, run, 1, status="running")
        put(app, run, 1, status="pass", success=True)
        put(app, run, 404, expect=404, status="pass")
    finally:
        event.remove(db_engine, "checkout", on_checkout)
    if db_engine.dialect.name == "postgresql":
        assert len(checkouts) == 3  # one per request
    assert checked_out(db_engine) == 0
    assert app.get(f"/runs/{run}/").json["results"]["pass"] == 1


def test_reports_that_change_the_same_columns_share_one_write_statement(app, queries,
                                                                        db_engine):
    """The plan's changed columns go in the table's order, whatever the body's order: two
    reports that change the same columns run the same prepared write statement."""
    run = run_name()
    post(app, run, 1)
    writes = []
    for body in ({"os_type": "centos", "owner": "a@b"}, {"owner": "c@d", "os_type": "rhel"}):
        queries.reset()
        app.put(f"/runs/{run}/jobs/1/", json.dumps(body))
        writes += [s for s in queries.statements if "paddles_report_" in s]
    job = app.get(f"/runs/{run}/jobs/1/").json
    assert (job["os_type"], job["owner"]) == ("rhel", "c@d")
    if db_engine.dialect.name == "postgresql":
        names = {re.search(r"paddles_report_\w+", s).group(0) for s in writes}
        assert len(writes) == 2 and len(names) == 1, writes
