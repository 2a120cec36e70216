"""While PostgreSQL cannot be reached, every route that needs it answers a clear 503 with
Retry-After, whichever way it reaches the database: through the session, or on a pooled
connection of its own (pg.execute_alone: heartbeats, job reports and creates, cached run
documents), where a refused connection used to escape as psycopg2's own error, a 500."""
from __future__ import annotations

import dataclasses

import pytest
import webtest

from paddles.app import make_app
from paddles.db import make_engine, make_session_factory

# the engine is PostgreSQL whatever the session runs on
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
REQUESTS = {
    "heartbeat": ("PUT", f"/runs/{RUN}/jobs/1/", {"name": RUN, "job_id": "1"}),
    "job report": ("PUT", f"/runs/{RUN}/jobs/1/", {"status": "pass", "success": True}),
    "new job": ("POST", f"/runs/{RUN}/jobs/", {"job_id": "2", "status": "queued"}),
    "new run": ("POST", "/runs/", {"name": RUN}),
    "run": ("GET", f"/runs/{RUN}/", None),
    "runs": ("GET", "/runs/", None),
    "lock": ("PUT", "/nodes/smithi001/lock", {"locked": True, "locked_by": "me@host"}),
}


@pytest.fixture(scope="module")
def unreachable():
    """The app on a PostgreSQL URL nothing listens on."""
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/paddles",
                         pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_a_database_that_cannot_be_reached_is_503(settings, unreachable, request_name):
    app = webtest.TestApp(make_app(dataclasses.replace(settings, auth_enabled=False),
                                   session_factory=make_session_factory(unreachable)))
    method, path, body = REQUESTS[request_name]
    resp = app.request(path, method=method, status=503, expect_errors=True,
                       **({} if body is None else {"json": body}))
    assert resp.json == {"message": "database unavailable; please retry"}
    assert resp.headers["Retry-After"] == "5"
