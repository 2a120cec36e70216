"""A job's row up to a page long is stored as it comes, not compressed (migration 0011):
on PostgreSQL, compressing a 2.5 KB teuthology job on every insert and decompressing it on
every read was 13% of the database's CPU per job create."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from paddles import migrations
from tests.factories import post_job, run_name
from tests.migrations.old_databases import app_on, database_at

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

# well over the 2 KB past which PostgreSQL compresses a row by default, well under a page
DESCRIPTION = "rados/thrash/{clusters/fixed-2 msgr-failures/osd-delay thrashers/mapgap} " * 40


def _compression(engine, run: str) -> str | None:
    """How the job's description is stored: None (as it came), or its compression."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT pg_column_compression(j.description) FROM jobs j "
            "JOIN runs r ON r.id = j.run_id WHERE r.name = :run"), {"run": run}).scalar_one()


def test_a_teuthology_sized_job_is_stored_uncompressed(app, db_engine):
    run = run_name()
    post_job(app, run, job_id=1, description=DESCRIPTION)
    assert _compression(db_engine, run) is None
    assert app.get(f"/runs/{run}/jobs/1/").json["description"] == DESCRIPTION


def test_0011_down_and_up(backend, tmp_path):
    with database_at("0010", backend, tmp_path) as url:
        before, after, again = run_name(), run_name(), run_name()
        for run in (before, after, again):
            if run == after:
                migrations.upgrade(url)
            elif run == again:
                command.downgrade(migrations.alembic_config(url), "0010")
            app, engine = app_on(url, tmp_path)
            try:
                post_job(app, run, job_id=1, description=DESCRIPTION)
                stored = _compression(engine, run)
                assert stored == (None if run == after else "pglz"), (run, stored)
                assert app.get(f"/runs/{before}/jobs/1/").json["description"] == DESCRIPTION
            finally:
                engine.dispose()
