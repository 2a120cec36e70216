"""database_read_url: pulpito's heavy reads go to the replica, everything else to the primary.

The "replica" here is a second, separately written database, so a read shows which one
answered it (a real streaming replica would hold the same rows, a little later).
"""
from __future__ import annotations

import pytest
import webtest
from prometheus_client import REGISTRY

from paddles import migrations
from paddles.app import make_app
from paddles.hooks import reads_from_replica
from paddles.settings import load_settings
from tests.conftest import _create_pg_database
from tests.deploy.conftest import free_port
from tests.factories import run_name


@pytest.fixture
def replica_url(tmp_path):
    url = "sqlite:///" + str(tmp_path / "replica.db")
    migrations.upgrade(url)
    return url


def _app(settings, session_factory, replica_url):
    replicated = load_settings(environ={}, database_url=settings.database_url,
                               database_read_url=replica_url, address=settings.address)
    return webtest.TestApp(make_app(replicated, session_factory=session_factory))


def test_listings_read_the_replica_and_teuthology_paths_the_primary(settings, session_factory,
                                                                   replica_url, tmp_path):
    only_replica = run_name()
    replica = webtest.TestApp(make_app(load_settings(environ={}, database_url=replica_url,
                                                     data_dir=str(tmp_path))))
    replica.post_json(f"/runs/{only_replica}/jobs/", {"job_id": "1", "status": "queued"})
    app = _app(settings, session_factory, replica_url)

    written = run_name()
    app.post_json(f"/runs/{written}/jobs/", {"job_id": "1", "status": "queued"})  # primary
    # teuthology reads what it just wrote: primary
    assert app.get(f"/runs/{written}/jobs/1/").json["status"] == "queued"
    assert [j["job_id"] for j in app.get(f"/runs/{written}/jobs/").json] == ["1"]
    app.get(f"/runs/{only_replica}/jobs/1/", status=404)
    # pulpito's listings and run pages: the replica
    assert [r["name"] for r in app.get("/runs/").json] == [only_replica]
    assert app.get(f"/runs/{only_replica}/").json["name"] == only_replica
    app.get(f"/runs/{written}/", status=404)
    assert [r["name"] for r in app.get("/runs/suite/rados/").json] == [only_replica]
    assert only_replica in app.get("/exports/runs.csv").text  # streamed from the replica too
    ready = app.get("/ready/").json
    assert ready["replica"] == "ok" and ready["migrations"] == "current"


def test_ready_fails_when_the_replica_is_behind(settings, session_factory, tmp_path):
    empty = "sqlite:///" + str(tmp_path / "empty.db")
    app = _app(settings, session_factory, empty)
    message = app.get("/ready/", status=503).json["message"]
    assert message.startswith("read replica schema is at revision none")


def test_only_reads_of_listed_routes_use_the_replica():
    assert reads_from_replica("GET", "/runs/x")
    assert reads_from_replica("HEAD", "/runs/suite/rados/branch/main")
    assert reads_from_replica("GET", "/exports/runs/x/jobs.csv")
    assert not reads_from_replica("POST", "/runs/x/jobs")
    assert not reads_from_replica("GET", "/runs/x/jobs/1")
    assert not reads_from_replica("GET", "/nodes/")
    assert not reads_from_replica("GET", "/events/stream")
    assert not reads_from_replica("GET", "/runs/x/jobs/1/artifacts/teuthology.log")
    assert not reads_from_replica("GET", "/ready")


def _replica_reads(served_by: str) -> float:
    return REGISTRY.get_sample_value("paddles_replica_reads_total",
                                     {"served_by": served_by}) or 0.0


def test_a_postgresql_replica_that_is_no_standby_is_not_read(backend, settings,
                                                             session_factory, tmp_path):
    """On PostgreSQL a replica read is served by the replica only once it has replayed the
    primary's WAL (paddles/replica.py). A database that is not in recovery has no replay
    position to compare, so however different its rows, the primary answers: here the
    "replica" holds a run the primary does not, and it is never seen."""
    if backend != "postgresql":
        pytest.skip("the replay check is PostgreSQL's (a SQLite replica is read as it is)")
    url, drop = _create_pg_database()
    try:
        migrations.upgrade(url)
        other = webtest.TestApp(make_app(load_settings(environ={}, database_url=url,
                                                       data_dir=str(tmp_path))))
        other.post_json(f"/runs/{run_name()}/jobs/", {"job_id": "1", "status": "queued"})
        app = _app(settings, session_factory, url)
        written = run_name()
        app.post_json(f"/runs/{written}/jobs/", {"job_id": "1", "status": "queued"})
        before = _replica_reads("primary"), _replica_reads("replica")
        assert [r["name"] for r in app.get("/runs/").json] == [written]
        assert app.get(f"/runs/{written}/").json["results"]["queued"] == 1
        assert (_replica_reads("primary"), _replica_reads("replica")) == \
            (before[0] + 2, before[1])
    finally:
        drop()


def test_reads_go_to_the_primary_while_a_postgresql_replica_is_unreachable(backend, settings,
                                                                          session_factory):
    """A replica that refuses connections no longer fails pulpito's reads (503): the check
    fails, the primary answers. /ready still says the replica is down."""
    if backend != "postgresql":
        pytest.skip("the replay check is PostgreSQL's")
    app = _app(settings, session_factory,
               f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/paddles")
    written = run_name()
    app.post_json(f"/runs/{written}/jobs/", {"job_id": "1", "status": "queued"})
    before = _replica_reads("primary")
    assert app.get(f"/runs/{written}/").json["name"] == written
    assert _replica_reads("primary") == before + 1
    assert app.get("/ready/", status=503).json["message"].startswith(
        "read replica unreachable")
