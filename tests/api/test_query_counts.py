"""Spec 12.14: no N+1. Reads cost the same number of statements at 2x2 as at 30x20."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from paddles.models import Job, Run, RunStatus, JobStatus
from paddles.models.base import sortable_job_id
from tests.factories import run_name

SHA1 = "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"


def populate(session, runs: int, jobs: int) -> list[str]:
    """Runs and jobs inserted in bulk, counters consistent (every job passed)."""
    base = dt.datetime(2024, 1, 15, 20, 0, 3, tzinfo=dt.timezone.utc)
    names = [run_name() for _ in range(runs)]
    session.execute(insert(Run), [
        {"name": name, "user": "teuthology", "status": RunStatus.FINISHED_PASS,
         "posted": base + dt.timedelta(minutes=i), "scheduled": base + dt.timedelta(minutes=i),
         "updated": base, "branch": "main", "suite": "rados", "machine_type": "smithi",
         "count_pass": jobs, "count_total": jobs, "sha1": SHA1, "flavor": "default",
         "priority": 70}
        for i, name in enumerate(names)])
    ids = dict(session.execute(select(Run.name, Run.id)).all())
    session.execute(insert(Job), [
        {"run_id": ids[name], "job_id": str(j), "sort_key": sortable_job_id(str(j)),
         "status": JobStatus.PASS, "success": True, "sha1": SHA1, "flavor": "default",
         "branch": "main", "suite": "rados", "machine_type": "smithi", "priority": 70,
         "description": "rados/thrash/{clusters/fixed-2.yaml}", "name": name,
         "targets": {f"ubuntu@smithi{j:03d}": "ssh-ed25519 AAAA"},
         "overrides": {"ceph": {"sha1": SHA1}}, "roles": [["mon.a"]], "tasks": [{"ceph": None}],
         "posted": base + dt.timedelta(seconds=j), "updated": base}
        for name in names for j in range(1, jobs + 1)])
    session.commit()
    return names


ROUTES = [
    "/runs/",
    "/runs/?count=100",
    "/runs/?fields=name,status,results",
    "/runs/{run}/",
    "/runs/{run}/jobs/",
    "/runs/{run}/jobs/?fields=job_id,status",
    "/runs/branch/main/",
    "/runs/branch/main/suite/rados/?count=100",
    "/runs/sha1/4f1c/flavor/default/",
    "/runs/branch/main/sha1/",
    "/runs/date/from/2024-01-01/to/2024-12-31/",
    "/runs/queued/",
    "/jobs/?count=100",
]


def statements_per_route(app, queries, names) -> dict[str, int]:
    out = {}
    for route in ROUTES:
        path = route.format(run=names[0])
        queries.reset()
        app.get(path)
        out[route] = queries.count
    return out


def test_statement_counts_do_not_grow_with_data(app, session, queries):
    small = statements_per_route(app, queries, populate(session, 2, 2))
    big = statements_per_route(app, queries, populate(session, 30, 20))
    assert big == small
    # and "the same" is a small number, not a constant large one: at most the run's state,
    # its row, its jobs' row versions and the rows of the jobs not rendered yet (a run
    # document's first read on PostgreSQL, paddles/rendered_jobs.py)
    assert max(small.values()) <= 4, small
    # a list of the run's jobs reads no run row: the run's state, then its jobs (on
    # PostgreSQL their row versions, the document just read having rendered them all)
    assert small["/runs/{run}/jobs/"] <= 2, small


def test_big_run_detail_has_every_job(app, session, queries):
    name = populate(session, 1, 20)[0]
    queries.reset()
    body = app.get(f"/runs/{name}/").json
    assert len(body["jobs"]) == 20
    assert body["results"]["pass"] == body["jobs_count"] == 20
    assert queries.count <= 4  # see above
    queries.reset()
    assert app.get(f"/runs/{name}/jobs/").json[0]["job_id"] == "20"
    assert queries.count <= 2  # the run's state and its jobs' row versions: the renderings
    # are kept (on PostgreSQL), and the list reads no run row


def test_node_list_reads_hosts_once_per_level_of_nesting(app, queries):
    """GET /nodes/: one statement for the nodes, one more per level of VM nesting whose hosts
    the list does not hold, whatever the number of nodes (a lock poll of bare machines:
    one)."""
    def nodes_statements(path: str, count: int) -> int:
        queries.reset()
        assert len(app.get(path).json) == count
        return queries.count
    for n in range(12):
        app.post_json("/nodes/", {"name": f"smithi{n:03d}.x", "machine_type": "smithi",
                                  "up": True})
        app.post_json("/nodes/", {"name": f"vpm{n:03d}.x", "machine_type": "vps",
                                  "is_vm": True, "vm_host": f"smithi{n:03d}.x"})
    assert nodes_statements("/nodes/?machine_type=smithi&up=1&locked=0&count=5", 5) == 1
    assert nodes_statements("/nodes/?machine_type=vps", 12) == 2
    assert nodes_statements("/nodes/", 24) == 1  # every host is in the list already


def test_a_run_document_read_anew_sends_only_prepared_statements(app, session, queries,
                                                                  db_engine):
    """On PostgreSQL every statement of a run document that misses the cache, and of its
    job list, is one prepared once per connection (EXECUTE): the run's state and row, its
    jobs' row versions, then the rows of the jobs not rendered yet, by one array of ids
    (services.jobs.job_versions, job_rows_by_id), however many there are."""
    if db_engine.dialect.name != "postgresql":
        return
    name = populate(session, 1, 20)[0]
    queries.reset()
    body = app.get(f"/runs/{name}/").json
    assert [job["job_id"] for job in body["jobs"]] == [str(j) for j in range(1, 21)]
    assert len(queries.statements) == 4, queries.statements
    assert all(s.startswith("EXECUTE paddles_") for s in queries.statements), queries.statements
    queries.reset()
    assert app.get(f"/runs/{name}/jobs/").json[0]["job_id"] == "20"
    assert all(s.startswith("EXECUTE paddles_") for s in queries.statements), queries.statements
