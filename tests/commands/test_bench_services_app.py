"""bench/services_app.py, the ceiling bench/write_layers.py measures paddles against, writes
jobs as the API does: same rows, same counters, same links, same events, for a create and
for the reports after it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import webtest
from sqlalchemy import func, select

from paddles.models import Event, Job, job_nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import write_bodies

RUN = "teuthology-2026-12-07_10:00:00-rados-main-distro-default-smithi"


@pytest.fixture
def services_app(settings, monkeypatch):
    monkeypatch.setenv("PADDLES_DATABASE_URL", settings.database_url)
    import services_app as module
    wsgi = module.make_application(settings)
    yield webtest.TestApp(wsgi)
    wsgi.engine.dispose()


_TIMES_AND_IDS = ("posted", "updated", "started", "name", "id")


def _job_as_read(app, run, job_id):
    job = app.get(f"/runs/{run}/jobs/{job_id}/").json
    return {k: v for k, v in job.items() if k not in _TIMES_AND_IDS}


def _same_jobs(app, run, other):
    for job_id in (1, 2, 7):
        theirs = json.dumps(_job_as_read(app, other, job_id)).replace(other, RUN)
        assert _job_as_read(app, run, job_id) == json.loads(theirs)
    summary, expected = app.get(f"/runs/{run}/").json, app.get(f"/runs/{other}/").json
    assert summary["results"] == expected["results"]
    assert summary["status"] == expected["status"]


def test_the_services_app_writes_what_the_api_writes(app, services_app, session):
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi", "up": True}))
    other = RUN + "-api"
    for job_id in (1, 2, 7):
        assert services_app.post(f"/runs/{RUN}/jobs/", json.dumps(
            write_bodies.create_body(RUN, job_id))).json == {"job_id": str(job_id)}
        app.post(f"/runs/{other}/jobs/", json.dumps(write_bodies.create_body(other, job_id)))
    _same_jobs(app, RUN, other)
    assert app.get(f"/runs/{RUN}/").json["status"] == "queued"
    links = session.scalar(select(func.count()).select_from(job_nodes).join(
        Job, Job.id == job_nodes.c.job_id).where(Job.job_id.in_(["1", "2", "7"])))
    assert links == 18
    for body in (write_bodies.running_body, write_bodies.finish_body):
        for job_id in (1, 2, 7):
            assert services_app.put(f"/runs/{RUN}/jobs/{job_id}/",
                                    json.dumps(body(RUN, job_id))).json == {}
            app.put(f"/runs/{other}/jobs/{job_id}/", json.dumps(body(other, job_id)))
    _same_jobs(app, RUN, other)
    assert app.get(f"/runs/{RUN}/").json["results"]["fail"] == 1
    session.rollback()  # what the apps committed since this session's first read
    types = sorted(session.scalars(select(Event.type).where(Event.run_name == RUN)))
    assert types == sorted(session.scalars(select(Event.type).where(Event.run_name == other)))
    assert "job.status" in types
    assert services_app.get("/runs/", status=404).json == {}
    assert services_app.put(f"/runs/{RUN}/jobs/", "{}", status=404).json == {}
