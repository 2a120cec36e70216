"""Migration 0008: a database written before it (JSON numbers stored as SQLite numbers,
targets that were not objects) reads back before and after the upgrade, and the rebuild of
its tables loses nothing: rows that reference jobs, AUTOINCREMENT counters, the schema."""
from __future__ import annotations

import logging

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from paddles import migrations
from paddles.commands import main
from paddles.models import Base
from tests.migrations.old_databases import app_on, database_at

RUN = "teuthology-2026-12-05_09:00:00-rados-main-distro-default-smithi"
KEYS = ("kernel", "roles", "overrides", "tasks", "targets")
# what the old code let in: JSON text, as SQLite's NUMERIC affinity kept it
LEGACY = {"1": "7", "2": "1.5", "3": "0.30000000000000004", "4": '"ubuntu@smithi001"',
          "5": '["ubuntu@smithi001"]', "6": "true"}
READ_BACK = {"1": 7, "2": 1.5, "3": 0.30000000000000004, "4": "ubuntu@smithi001",
             "5": ["ubuntu@smithi001"], "6": True}


@pytest.fixture
def old_database(backend, tmp_path):
    with database_at("0007", backend, tmp_path) as url:
        yield url


def _write_legacy(app, engine):
    for job_id, value in LEGACY.items():
        app.post_json(f"/runs/{RUN}/jobs/", {"job_id": job_id, "status": "queued",
                                              "targets": {f"u@smithi{job_id}": "k"}})
        app.put(f"/runs/{RUN}/jobs/{job_id}/artifacts/teuthology.log", b"log " + job_id.encode(),
                status=201)
        sets = ", ".join(f"{key} = " + ("CAST(:v AS JSONB)" if engine.dialect.name ==
                                        "postgresql" else ":v") for key in KEYS)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE jobs SET {sets} WHERE job_id = :j"),
                         {"v": value, "j": job_id})
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            kinds = dict(conn.execute(text("SELECT job_id, typeof(kernel) FROM jobs")).all())
        assert kinds["1"] == "integer" and kinds["3"] == "real"  # the bug's state


def _check_reads(app, *, migrated=True):
    """Every route answers and serves the values. Before 0008, SQLite's CAST of a stored real
    to text (the job routes' read) keeps 15 significant digits: equal within that."""
    expect = {k: v if migrated or not isinstance(v, float) else pytest.approx(v, rel=1e-14)
              for k, v in READ_BACK.items()}
    for job_id, value in expect.items():
        job = app.get(f"/runs/{RUN}/jobs/{job_id}/").json
        assert all(job[key] == value for key in KEYS), (job_id, job)
        assert app.get(f"/runs/{RUN}/jobs/{job_id}/artifacts/").json[0]["name"] == \
            "teuthology.log"
        app.get(f"/runs/{RUN}/jobs/{job_id}/tests/")
    jobs = {j["job_id"]: j for j in app.get(f"/runs/{RUN}/").json["jobs"]}
    assert {k: jobs[k]["kernel"] for k in READ_BACK} == expect
    exported = {r["job_id"]: r["targets"] for r in app.get(f"/exports/runs/{RUN}/jobs.json").json}
    assert exported == expect
    app.get(f"/exports/runs/{RUN}/jobs.csv")
    app.get(f"/events/?since=0&run={RUN}")


def _set_targets(url, monkeypatch, capsys) -> str:
    monkeypatch.setenv("PADDLES_DATABASE_URL", url)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        capsys.readouterr()
        assert main(["set-targets", "--dry-run"]) == 0
    finally:
        root.handlers[:], root.level = handlers, level
    return capsys.readouterr().err


def test_legacy_json_values_read_back_before_and_after_0008(old_database, tmp_path, backend,
                                                            monkeypatch, capsys):
    app, engine = app_on(old_database, tmp_path)
    try:
        _write_legacy(app, engine)
        with engine.connect() as conn:
            links = conn.execute(text("SELECT count(*) FROM job_nodes")).scalar()
            seq = None
            if backend == "sqlite":
                conn.execute(text("DELETE FROM events WHERE id > 3"))  # purged: ids not reused
                conn.commit()
                seq = conn.execute(text("SELECT seq FROM sqlite_sequence "
                                        "WHERE name = 'events'")).scalar()
        assert links == len(LEGACY)
        _check_reads(app, migrated=False)  # before the upgrade: the tolerant reader
        assert "would link 0 job(s)" in _set_targets(old_database, monkeypatch, capsys)

        engine.dispose()
        migrations.upgrade(old_database)
        app, engine = app_on(old_database, tmp_path)  # a new process: an empty response cache
        _check_reads(app)
        assert "would link 0 job(s)" in _set_targets(old_database, monkeypatch, capsys)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM job_nodes")).scalar() == links
            assert conn.execute(text("SELECT count(*) FROM artifacts")).scalar() == len(LEGACY)
            diff = compare_metadata(MigrationContext.configure(
                conn, opts={"compare_type": True}), Base.metadata)
            assert diff == []
            if backend == "sqlite":
                kinds = set(conn.execute(text(
                    "SELECT typeof(kernel) || typeof(roles) || typeof(overrides) || "
                    "typeof(tasks) || typeof(targets) FROM jobs")).scalars())
                assert kinds == {"text" * 5}
                assert conn.execute(text("SELECT seq FROM sqlite_sequence "
                                         "WHERE name = 'events'")).scalar() == seq
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        # the repair that was a 500: and a new event id is past every id handed out
        app.put_json(f"/runs/{RUN}/jobs/1", {"targets": {"u@smithi1": "k2"}, "kernel": {}})
        assert app.get(f"/runs/{RUN}/jobs/1/").json["targets"] == {"u@smithi1": "k2"}
        app.delete(f"/runs/{RUN}/jobs/2/")
        if seq is not None:
            assert min(e["id"] for e in app.get("/events/?since=3").json["events"]) > seq
    finally:
        engine.dispose()


def test_0008_downgrades_and_upgrades_again(old_database, tmp_path):
    app, engine = app_on(old_database, tmp_path)
    try:
        _write_legacy(app, engine)
        engine.dispose()
        migrations.upgrade(old_database)
        command.downgrade(migrations.alembic_config(old_database), "0007")
        app, engine = app_on(old_database, tmp_path)
        _check_reads(app, migrated=False)
        engine.dispose()
        migrations.upgrade(old_database)
        app, engine = app_on(old_database, tmp_path)
        _check_reads(app)
        assert migrations.current_revision(engine) == migrations.head_revision(old_database)
    finally:
        engine.dispose()
