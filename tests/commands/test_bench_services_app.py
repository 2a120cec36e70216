"""bench/services_app.py, the ceiling bench/write_layers.py measures paddles against, makes
the job the API makes: same row, same counters, same links, same events."""
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


def _job_as_read(app, run, job_id):
    job = app.get(f"/runs/{run}/jobs/{job_id}/").json
    return {k: v for k, v in job.items() if k not in ("posted", "updated", "name", "id")}


def test_the_services_app_creates_what_the_api_creates(app, services_app, session):
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi", "up": True}))
    other = RUN + "-api"
    for job_id in (1, 2, 3):
        assert services_app.post(f"/runs/{RUN}/jobs/", json.dumps(
            write_bodies.create_body(RUN, job_id))).json == {"job_id": str(job_id)}
        app.post(f"/runs/{other}/jobs/", json.dumps(write_bodies.create_body(other, job_id)))
    for job_id in (1, 2, 3):
        theirs = json.dumps(_job_as_read(app, other, job_id)).replace(other, RUN)
        assert _job_as_read(app, RUN, job_id) == json.loads(theirs)
    summary, expected = app.get(f"/runs/{RUN}/").json, app.get(f"/runs/{other}/").json
    assert summary["results"] == expected["results"] and summary["status"] == "queued"
    links = session.scalar(select(func.count()).select_from(job_nodes).join(
        Job, Job.id == job_nodes.c.job_id).where(Job.job_id.in_(["1", "2", "3"])))
    assert links == 18
    types = sorted(session.scalars(select(Event.type).where(Event.run_name == RUN)))
    assert types == sorted(session.scalars(select(Event.type).where(Event.run_name == other)))
    assert services_app.get("/runs/", status=404).json == {}
