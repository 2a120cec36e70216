"""The runs table's indexes leave job writes alone (migration 0010), and the queue reads
through has_queued before and after the upgrade.

A job write changes a run's counters, `updated` and `version`. While an index names one of
them (in its columns or its WHERE), PostgreSQL cannot update the run's row in place (a HOT
update) and writes a new entry into every index of the table instead, on every job write.
"""
from __future__ import annotations

import re

import pytest
from alembic import command
from sqlalchemy import text

from paddles import migrations
from tests.factories import post_job, put_job, run_name
from tests.migrations.old_databases import app_on, database_at

WRITTEN_BY_JOB_WRITES = re.compile(r"\b(count_\w+|updated|version)\b")


def _index_definitions(conn) -> dict[str, str]:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                 "WHERE tablename = 'runs'"))
    else:
        rows = conn.execute(text("SELECT name, coalesce(sql, '') FROM sqlite_master "
                                 "WHERE type = 'index' AND tbl_name = 'runs'"))
    return dict(rows.all())


def test_no_index_of_runs_names_a_column_job_writes_change(db_engine):
    with db_engine.connect() as conn:
        definitions = _index_definitions(conn)
    assert "ix_runs_has_queued_scheduled" in definitions
    assert {name: sql for name, sql in definitions.items()
            if WRITTEN_BY_JOB_WRITES.search(sql)} == {}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_run_counter_update_is_in_place_on_postgresql(app, db_engine):
    run = run_name()
    for job_id in (1, 2):
        post_job(app, run, job_id=job_id, status="queued")
    # this backend's counts not yet reported (earlier transactions' too): a difference
    counts = text("SELECT n_tup_hot_upd, n_tup_upd FROM pg_stat_xact_user_tables "
                  "WHERE relname = 'runs'")
    with db_engine.connect() as conn:
        before = conn.execute(counts).one()
        conn.execute(text(  # what a job going from queued to running does to its run
            "UPDATE runs SET count_queued = count_queued - 1, count_running = count_running + 1,"
            " version = version + 1, updated = now() WHERE name = :name"), {"name": run})
        after = conn.execute(counts).one()
        conn.rollback()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)  # (in place, in all)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_queued_runs_use_the_has_queued_index_on_postgresql(app, db_engine, queries):
    post_job(app, run_name(), job_id=1, status="queued")
    queries.reset()
    app.get("/runs/queued/")
    (statement, params), = [q for q in queries.executed if "FROM runs" in q[0]]
    with db_engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        conn.rollback()
    assert "ix_runs_has_queued_scheduled" in plan, plan


@pytest.fixture
def database_at_0009(backend, tmp_path):
    with database_at("0009", backend, tmp_path) as url:
        yield url


def _queued(app) -> list[str]:
    return [r["name"] for r in app.get("/runs/queued/").json]


def test_0010_keeps_the_queue_up_and_down(database_at_0009, tmp_path):
    url = database_at_0009
    waiting, busy, done = (run_name(when=f"2026-12-0{day}_09:00:00") for day in (1, 2, 3))
    app, engine = app_on(url, tmp_path)  # runs written before the upgrade
    try:
        post_job(app, waiting, job_id=1, status="queued")
        post_job(app, waiting, job_id=2, status="running")
        post_job(app, busy, job_id=1, status="running")
        post_job(app, done, job_id=1, status="queued")
        put_job(app, done, 1, status="pass")
    finally:
        engine.dispose()
    migrations.upgrade(url)
    app, engine = app_on(url, tmp_path)
    try:
        assert _queued(app) == [waiting]
        post_job(app, busy, job_id=2, status="queued")
        assert _queued(app) == [waiting, busy]
        put_job(app, waiting, 1, status="running")
        assert _queued(app) == [busy]
        with engine.connect() as conn:
            flags = dict(conn.execute(text("SELECT name, has_queued FROM runs")).all())
        assert {name: bool(flag) for name, flag in flags.items()} == \
            {waiting: False, busy: True, done: False}
    finally:
        engine.dispose()
    command.downgrade(migrations.alembic_config(url), "0009")
    migrations.upgrade(url)
    app, engine = app_on(url, tmp_path)
    try:
        assert _queued(app) == [busy]
        assert migrations.current_revision(engine) == migrations.head_revision(url)
    finally:
        engine.dispose()
