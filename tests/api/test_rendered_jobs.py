"""A run's jobs rendered once per row version (paddles/rendered_jobs.py).

On PostgreSQL a run document or a whole job list re-renders only the jobs whose row changed
since the process last rendered them; the answer is the same bytes an app without a cache
gives. On SQLite every job is rendered, as before (the same tests hold there).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, event, text

from tests.factories import post_job, put_job, run_name


@pytest.fixture
def postgres(db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row versions (xmin) are PostgreSQL's")


DOCS = ("/runs/{run}/", "/runs/{run}/jobs/", "/runs/{run}/jobs/?status=running",
        "/runs/{run}/jobs/?status=queued")


def make_run(app, jobs=4):
    run = run_name()
    for j in range(1, jobs + 1):
        post_job(app, run, job_id=str(j), status="queued", name=run)
    return run


def assert_same(app, fresh, run):
    for path in DOCS:
        url = path.format(run=run)
        got, want = app.get(url), fresh.get(url)
        assert got.body == want.body, url


def heartbeat(app, run, job):
    app.put(f"/runs/{run}/jobs/{job}/", json.dumps({"name": run, "job_id": job}))


def reads_rows_by_id(params) -> bool:
    """A read of full rows by id (services.jobs.job_rows_by_id: one array of ids)."""
    return isinstance(params, dict) and "ids" in params


def rendered_ids(queries) -> list[list[int]]:
    """The job ids of each full-row read of kept-rendering misses in `queries`."""
    return [sorted(params["ids"]) for _, params in queries.executed if reads_rows_by_id(params)]


def test_changes_of_every_kind_read_back_as_without_a_cache(app, fresh):
    run = make_run(app)
    assert_same(app, fresh, run)
    steps = [
        lambda: heartbeat(app, run, "2"),
        lambda: put_job(app, run, "1", status="running"),
        lambda: put_job(app, run, "3", status="pass", success=True,
                        summary={"success": True}),
        lambda: put_job(app, run, "4", description="changed", roles=[["mon.a"]]),
        lambda: post_job(app, run, job_id="5", status="queued", name=run),
        lambda: app.delete(f"/runs/{run}/jobs/2/"),
        lambda: put_job(app, run, "1", status="dead"),
    ]
    for step in steps:
        step()
        assert_same(app, fresh, run)


def test_only_the_changed_job_is_rendered_again(app, queries, postgres):
    run = make_run(app, jobs=5)
    queries.reset()
    app.get(f"/runs/{run}/")
    assert [len(ids) for ids in rendered_ids(queries)] == [5]  # the first read: every job
    heartbeat(app, run, "3")
    queries.reset()
    doc = app.get(f"/runs/{run}/").json
    assert len(rendered_ids(queries)) == 1 and len(rendered_ids(queries)[0]) == 1
    assert [job["job_id"] for job in doc["jobs"]] == ["1", "2", "3", "4", "5"]
    queries.reset()
    app.get(f"/runs/{run}/jobs/")  # another document of the run: the same renderings
    assert rendered_ids(queries) == []


def test_a_job_changed_behind_the_apps_back_is_rendered_again(app, fresh, database_url,
                                                               postgres):
    """Whoever writes the row (here plain SQL on another connection, as an admin command or
    another host would), its new version is a new rendering; the run's version moves with
    it, as every writer moves it."""
    run = make_run(app, jobs=3)
    assert app.get(f"/runs/{run}/").json["jobs"][1]["description"] != "by hand"
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET description = 'by hand' WHERE job_id = '2' AND "
                              "run_id = (SELECT id FROM runs WHERE name = :n)"), {"n": run})
            conn.execute(text("UPDATE runs SET version = version + 1 WHERE name = :n"),
                         {"n": run})
    finally:
        engine.dispose()
    assert app.get(f"/runs/{run}/").json["jobs"][1]["description"] == "by hand"
    assert_same(app, fresh, run)


def test_a_job_deleted_between_the_two_reads_is_left_out(app, fresh, db_engine, database_url,
                                                         postgres):
    """The ids and versions are read first, the missing rows after: a job deleted in between
    falls back to rendering every row that is still there."""
    run = make_run(app, jobs=3)
    put_job(app, run, "1", status="running")
    other = create_engine(database_url)

    deleted = []

    def delete_first(conn, cursor, statement, parameters, *args):
        if reads_rows_by_id(parameters) and not deleted:
            deleted.append(True)
            with other.begin() as c:
                c.execute(text("DELETE FROM jobs WHERE job_id = '2' AND run_id = "
                               "(SELECT id FROM runs WHERE name = :n)"), {"n": run})
    event.listen(db_engine, "before_cursor_execute", delete_first)
    try:
        jobs = app.get(f"/runs/{run}/").json["jobs"]
    finally:
        event.remove(db_engine, "before_cursor_execute", delete_first)
        other.dispose()
    assert deleted and [job["job_id"] for job in jobs] == ["1", "3"]
    assert jobs == json.loads(fresh.get(f"/runs/{run}/").body)["jobs"]


def test_with_the_cache_off_every_job_is_rendered(fresh, queries):
    run = make_run(fresh, jobs=3)
    queries.reset()
    fresh.get(f"/runs/{run}/")
    fresh.get(f"/runs/{run}/")
    assert rendered_ids(queries) == []  # no kept renderings: the full rows, each time
    assert [j["job_id"] for j in fresh.get(f"/runs/{run}/").json["jobs"]] == ["1", "2", "3"]


@pytest.mark.parametrize("prepared", [True, False])
def test_the_reads_by_run_and_by_ids_agree(app, db_engine, postgres, prepared):
    """The jobs' versions and their rows by ids read the same, prepared or plain (an engine
    with prepared statements off, as behind a pooler that does not keep them), alone or
    inside a transaction, for no id, one, or all of them."""
    from sqlalchemy.orm import Session

    from paddles.db import make_engine
    from paddles.services import jobs as job_service
    from paddles.services.runs import run_state
    run = make_run(app, jobs=3)
    put_job(app, run, "2", status="running")
    engine = make_engine(db_engine.url, pool_size=1, max_overflow=0,
                         prepared_statements=prepared)
    try:
        for in_transaction in (False, True):
            with Session(engine) as session:
                if in_transaction:
                    session.execute(text("SELECT 1"))
                run_id = run_state(session, run)[0]
                versions = job_service.job_versions(session, run_id)
                newest = job_service.job_versions(session, run_id, newest_first=True)
                assert [v[0] for v in newest] == [v[0] for v in versions][::-1]
                ids = [job_id for job_id, _ in versions]
                rows = {row.id: row for row in job_service.job_rows_by_id(session, ids)}
                assert [(rows[i].job_id, rows[i].row_version) for i in ids] == [
                    (str(n), version) for n, (_, version) in zip((1, 2, 3), versions)]
                assert rows[ids[1]].status == "running" and rows[ids[0]].run_name == run
                assert [r.id for r in job_service.job_rows_by_id(session, ids[2:])] == ids[2:]
                assert job_service.job_rows_by_id(session, []) == []
    finally:
        engine.dispose()
