"""New jobs on PostgreSQL are worked out before the run is locked and written by one
statement (services/planned_jobs.py, plan_create and apply_planned), without reading the
run first: what it writes is what the general path writes, and a run that is not as the
plan assumes (missing, another first job, a host without a node, changed since the plan)
sends the job down the general path, having changed nothing."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from paddles.models import Event, Job, Node, Run, job_nodes
from paddles.services import jobs as job_service
from tests.concurrency.threads import run_together
from tests.factories import job_body, post_job, run_name
from tests.services.test_run_status import recompute, stored

WRITE = "EXECUTE paddles_create_"  # the write statement, prepared (planned_jobs.py)
HOSTS = ("smithi001.front.sepia.ceph.com", "smithi002.front.sepia.ceph.com")
TARGETS = {f"ubuntu@{host}": "ssh-rsa AAAA" for host in HOSTS}


@pytest.fixture
def pg_only(db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the general path (it has one writer at a time)")


@pytest.fixture
def nodes(app):
    for host in HOSTS:
        app.post("/nodes/", json.dumps({"name": host, "machine_type": "smithi"}), status="*")
    return HOSTS


def _linked(session, name, job_id) -> set[str]:
    return set(session.scalars(
        select(Node.name).join(job_nodes, job_nodes.c.node_id == Node.id)
        .join(Job, Job.id == job_nodes.c.job_id).join(Run, Run.id == Job.run_id)
        .where(Run.name == name, Job.job_id == job_id)))


def test_a_new_job_in_a_run_is_one_write_with_its_links_counters_and_events(
        pg_only, app, session, queries, nodes):
    name = run_name()
    post_job(app, name, 1, status="pass")
    queries.reset()
    post_job(app, name, 2, status="running", targets=TARGETS)
    assert [s[:len(WRITE)] for s in queries.statements] == [WRITE]  # no read before it
    session.rollback()
    assert stored(session) == recompute(session)
    assert stored(session)[name]["status"] == "running"
    assert _linked(session, name, "2") == set(HOSTS)
    rows = session.execute(select(Event.type, Event.username, Event.data)
                           .where(Event.run_name == name).order_by(Event.id)).all()
    assert [r.type for r in rows][-2:] == ["job.created", "run.status"]
    created, moved = rows[-2].data, rows[-1].data
    results = {"queued": 0, "pass": 1, "running": 1, "waiting": 0, "fail": 0, "dead": 0,
               "unknown": 0, "total": 2}
    assert created["results"] == moved["results"] == results
    assert (created["job_id"], created["status"], created["run"]) == ("2", "running", name)
    assert (moved["status"], moved["old_status"]) == ("running", "finished pass")
    assert rows[-2].username == rows[-1].username == "teuthology"
    detail = app.get(f"/runs/{name}/").json
    assert detail["started"] is not None and detail["results"]["running"] == 1
    assert [j["job_id"] for j in app.get(f"/runs/{name}/jobs/").json] == ["2", "1"]


def test_what_the_general_path_does_it_leaves_to_it(pg_only, app, session, nodes, db_engine):
    """A new run, no job_id, a host without a node, a first job with other values."""
    name = run_name()
    post_job(app, name, 5)  # the run is created
    post_job(app, name, None)  # next job_id drawn under the lock: 6
    post_job(app, name, 7, targets={"ubuntu@smithi099.front.sepia.ceph.com": "k"})
    post_job(app, name, 1, sha1="b" * 40)  # the run's first job now, with its values
    post_job(app, name, 8, sha1="b" * 40)  # the first job's values: planned
    session.rollback()
    assert stored(session) == recompute(session)
    assert app.get(f"/runs/{name}/").json["sha1"] == "b" * 40
    assert _linked(session, name, "7") == {"smithi099.front.sepia.ceph.com"}
    assert sorted(j["job_id"] for j in app.get(f"/runs/{name}/jobs/").json) == \
        ["1", "5", "6", "7", "8"]
    before = app.get(f"/runs/{name}/").json
    with Session(bind=db_engine) as s:
        assert job_service.plan_create(s, name, job_body(None)) is None  # nothing to plan
        for other, body in ((run_name(), job_body("1")),  # no run
                            (name, job_body("9", sha1="c" * 40)),  # not the first job's
                            (name, job_body("9", targets={"ubuntu@smithi098": "k"}))):
            plan = job_service.plan_create(s, other, body)
            assert plan is not None and not job_service.apply_planned(s, plan)
        s.rollback()
        assert app.get(f"/runs/{name}/").json == before  # nothing written
        plan = job_service.plan_create(s, name, job_body("9", sha1="b" * 40))
        assert plan is not None and job_service.apply_planned(s, plan)


def test_a_job_id_the_run_has_is_400_and_writes_nothing(app, session):
    """Both databases; on PostgreSQL the planned statement finds the job_id taken."""
    name = run_name()
    post_job(app, name, 1)
    post_job(app, name, 2)
    version = app.get(f"/runs/{name}/").json
    count = session.scalar(select(func.count()).select_from(Event))
    resp = app.post(f"/runs/{name}/jobs/", json.dumps(job_body("2", status="running")),
                    status=400)
    assert resp.json == {"message": "job with job_id 2 already exists"}
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Event)) == count
    assert app.get(f"/runs/{name}/").json == version


def test_the_first_job_moved_between_the_read_and_the_lock(pg_only, app, session_factory):
    name = run_name()
    post_job(app, name, 1)
    with session_factory() as s, session_factory() as other:
        plan = job_service.plan_create(s, name, job_body("2"))
        assert plan is not None
        s.rollback()
        # job 1 takes other values: the run's first job's values are no longer job 2's
        job_service.update_job(other, name, "1", {"sha1": "b" * 40})
        other.commit()
        assert not job_service.apply_planned(s, plan)  # nothing written
        s.rollback()
        assert s.scalar(select(func.count()).select_from(Job).join(Run)
                        .where(Run.name == name)) == 1
    post_job(app, name, 2)  # the general path takes it
    assert app.get(f"/runs/{name}/").json["sha1"] == "b" * 40


def test_a_node_deleted_between_the_plan_and_the_write(pg_only, app, session, monkeypatch,
                                                       nodes, db_engine):
    """The statement finds a host without a node and writes nothing: the general path
    creates the node again and links it."""
    name = run_name()
    post_job(app, name, 1)
    planned = job_service.plan_create

    def then_delete_a_node(*args, **kwargs):
        plan = planned(*args, **kwargs)
        with db_engine.begin() as conn:
            conn.execute(delete(Node).where(Node.name == HOSTS[0]))
        return plan
    monkeypatch.setattr(job_service, "plan_create", then_delete_a_node)
    post_job(app, name, 2, targets=TARGETS)
    session.rollback()
    assert stored(session) == recompute(session)
    assert _linked(session, name, "2") == set(HOSTS)
    assert session.scalar(select(func.count()).select_from(Event)
                          .where(Event.run_name == name, Event.type == "job.created")) == 2


def test_parallel_creates_in_one_run_lose_and_repeat_nothing(settings, session_factory,
                                                              app, session, nodes):
    """8 clients post 40 jobs into one run, every job_id twice (both databases)."""
    name = run_name()
    post_job(app, name, 0)

    def client(client_app, n):
        codes = []
        for i in range(10):
            job_id = str(1 + (n * 10 + i) % 40)
            resp = client_app.post(f"/runs/{name}/jobs/", json.dumps(
                job_body(job_id, status="queued", targets=TARGETS)), status="*")
            codes.append(resp.status_int)
        return codes
    codes = [c for batch in run_together(settings, session_factory, client) for c in batch]
    assert sorted(set(codes)) == [200, 400] and codes.count(200) == 40
    session.rollback()
    assert stored(session) == recompute(session)
    assert stored(session)[name]["counts"]["total"] == 41
    created = session.scalars(select(Event.job_id).where(
        Event.run_name == name, Event.type == "job.created")).all()
    assert sorted(created, key=int) == [str(n) for n in range(41)]
