"""`paddles bench-seed` fills a database the API could have produced."""
from __future__ import annotations

from sqlalchemy import func, select, text

from paddles.models import Job, Run
from tests.commands.conftest import recomputed, stored


def test_bench_seed_creates_consistent_runs_and_jobs(cli, session, app):
    result = cli("bench-seed", "--jobs", "1250", "--jobs-per-run", "300", "--days", "3")
    assert "created 5 runs with 1250 jobs" in result.err
    assert "bench-seed: 1250/1250 (100%)" in result.err  # progress on long work
    assert session.scalar(select(func.count()).select_from(Job)) == 1250
    assert stored(session) == recomputed(session)
    # first-job values and the API agree with the rows
    listing = app.get("/runs/?count=10").json
    assert len(listing) == 5 and sum(r["jobs_count"] for r in listing) == 1250
    name = listing[0]["name"]
    detail = app.get(f"/runs/{name}/").json
    assert [j["job_id"] for j in detail["jobs"][:3]] == ["1", "2", "3"]
    assert detail["sha1"] == detail["jobs"][0]["sha1"]
    assert app.get(f"/runs/branch/{detail['branch']}/").json


def test_bench_seed_twice_adds_more(cli, session):
    cli("bench-seed", "--jobs", "10", "--seed", "1")
    cli("bench-seed", "--jobs", "10", "--seed", "2")
    assert session.scalar(select(func.count()).select_from(Run)) == 2


def test_bench_seed_leaves_fresh_planner_statistics(cli, session, db_engine):
    """The filter routes were planned on empty-table estimates right after a seed."""
    result = cli("bench-seed", "--jobs", "600")
    assert "planner statistics refreshed" in result.err
    session.rollback()
    if db_engine.dialect.name == "postgresql":
        rows = dict(session.execute(text(
            "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
            "FROM pg_stat_user_tables WHERE relname IN ('runs', 'jobs')")).all())
        assert rows == {"runs": True, "jobs": True}
        # the planner's row estimate for jobs is the real count, not a guess
        assert session.scalar(text(
            "SELECT reltuples FROM pg_class WHERE relname = 'jobs'")) == 600
    else:
        assert session.scalar(text(
            "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'jobs'")) > 0
