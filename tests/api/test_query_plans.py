"""The hot routes' SQL can be answered from indexes (PostgreSQL EXPLAIN, seq scans disabled).

With `enable_seqscan = off` the planner still picks a sequential scan when no index can
serve the query, so a "Seq Scan" in the plan means a missing index. A prepared statement
(EXECUTE) is planned anew for its EXPLAIN (`plan_cache_mode = force_custom_plan`): the
generic plan a connection keeps for it was made with sequential scans on, on the tests' few
rows, where a sequential scan is the cheapest.
"""
from __future__ import annotations

import json

import pytest

from tests.factories import post_job, run_name

PLAN_FRESH = "SET enable_seqscan = off; SET plan_cache_mode = force_custom_plan"
HOT_ROUTES = [
    "/runs/", "/runs/?page=2&count=2", "/runs/RUN/", "/runs/RUN/jobs/", "/runs/RUN/jobs/1/",
    "/runs/branch/main/", "/runs/suite/rados/branch/main/", "/runs/status/running/",
    "/runs/machine_type/smithi/?since=2024-01-01", "/runs/sha1/4f1c0e2/",
    "/runs/flavors/default/", "/runs/date/2024-01-15/", "/runs/date/from/2024-01-01/to/2024-02-01/",
    "/runs/queued/", "/jobs/?count=10", "/nodes/?machine_type=smithi&up=1&locked=0&count=5",
    "/nodes/smithi001.front.sepia.ceph.com/", "/nodes/smithi001.front.sepia.ceph.com/jobs/",
]


# EXPLAIN plans are checked on PostgreSQL, the production database, only
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def lab(app):
    run = run_name()
    for j in range(1, 4):
        post_job(app, run, job_id=j, status="queued" if j == 3 else "running",
                 targets={"ubuntu@smithi001.front.sepia.ceph.com": "key"})
    app.post("/nodes/", json.dumps({"name": "smithi002.front.sepia.ceph.com",
                                    "machine_type": "smithi", "up": True}))
    return run


@pytest.mark.parametrize("route", HOT_ROUTES)
def test_hot_route_sql_uses_indexes(app, lab, queries, db_engine, route):
    queries.reset()
    app.get(route.replace("RUN", lab))
    assert queries.executed, "the route ran no SQL"
    with db_engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(PLAN_FRESH)
        for statement, params in queries.executed:
            cursor.execute("EXPLAIN " + statement, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, f"{route}:\n{statement}\n{plan}"
        conn.rollback()


def _plans(db_engine, executed) -> list[tuple[str, str]]:
    out = []
    with db_engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(PLAN_FRESH)
        for statement, params in executed:
            cursor.execute("EXPLAIN " + statement, params)
            out.append((statement, "\n".join(row[0] for row in cursor.fetchall())))
        conn.rollback()
    return out


@pytest.mark.parametrize("route", ["POST /runs/RUN/jobs/", "GET /runs/branch/main/sha1/"])
def test_first_job_and_run_sha1s_come_from_the_covering_index(app, lab, queries, db_engine,
                                                              route):
    """jobs(run_id, sort_key) INCLUDE (sha1, flavor, priority): a run's first job, read on
    on a job POST whose first-job values differ from the run's, and the sha1s of a branch's
    runs need no table rows."""
    method, path = route.split()
    queries.reset()
    if method == "POST":
        post_job(app, lab, job_id="10", status="queued", sha1="f" * 40)
        wanted = [s for s in queries.executed if "ORDER BY jobs.sort_key" in s[0]
                  and "LIMIT" in s[0]]
    else:
        app.get(path)
        wanted = [s for s in queries.executed if "jobs.sha1" in s[0]]
    assert wanted, queries.statements
    for statement, plan in _plans(db_engine, wanted):
        assert "Index Only Scan using ix_jobs_run_id_sort_key" in plan, f"{statement}\n{plan}"
