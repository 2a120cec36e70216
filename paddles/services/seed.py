"""Synthetic lab history for benchmarks: teuthology-shaped runs and jobs, inserted in bulk.

Counters, status and first-job values on each run are set consistently with its jobs, so
the database is one the API could have produced. PostgreSQL takes the jobs by COPY.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from ..models import Job, Run
from ..models.base import sortable_job_id
from ..models.statuses import COUNT_KEYS, run_status

if TYPE_CHECKING:
    from ..pg import PgConnection

SUITES = ("rados", "rbd", "fs", "rgw", "krbd", "upgrade:reef-x", "smoke", "orch")
BRANCHES = ("main", "squid", "reef", "quincy", "wip-jdoe-fix-osd", "wip-asmith-testing")
USERS = ("teuthology", "jdoe", "asmith", "yuriw")
# (status, success, weight): a lab's history is finished runs; only the newest runs still
# have running and queued jobs
FINISHED = (("pass", True, 80), ("fail", False, 12), ("dead", None, 5))
ACTIVE = (("pass", True, 30), ("fail", False, 5), ("running", None, 15), ("queued", None, 50))
ACTIVE_RUNS = 20
JOB_COLUMNS = ("run_id", "job_id", "sort_key", "name", "description", "status", "success",
               "machine_type", "os_type", "os_version", "sha1", "flavor", "suite", "branch",
               "priority", "posted", "started", "updated", "overrides")


def seed_jobs(session: Session, jobs: int, *, jobs_per_run: int = 300, days: int = 365,
              seed: int = 1, progress: Callable[[int, int], None] | None = None) -> int:
    """Insert about `jobs` jobs in runs of `jobs_per_run`; returns the number of runs."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    nruns = max(1, -(-jobs // jobs_per_run))
    finished = [s for s, _, w in FINISHED for _ in range(w)]
    active = [s for s, _, w in ACTIVE for _ in range(w)]
    success_of = {s: ok for s, ok, _ in FINISHED + ACTIVE}
    done = 0
    for start in range(0, nruns, 200):
        batch = range(start, min(nruns, start + 200))
        plans, run_rows = [], []
        for i in batch:
            when = now - dt.timedelta(seconds=int((nruns - i) * days * 86400 / nruns))
            suite, branch = rng.choice(SUITES), rng.choice(BRANCHES)
            name = (f"{rng.choice(USERS)}-{when:%Y-%m-%d_%H:%M:%S}-{suite}-{branch}"
                    f"-distro-default-smithi-{seed}.{i}")
            n = min(jobs_per_run, jobs - i * jobs_per_run)
            pool = active if i >= nruns - ACTIVE_RUNS else finished
            job_statuses = [rng.choice(pool) for _ in range(n)]
            counts = {k: job_statuses.count(k) for k in COUNT_KEYS}
            counts["total"] = n
            sha1 = f"{rng.getrandbits(160):040x}"
            run_rows.append({
                "name": name, "user": name.split("-")[0], "status": run_status(counts),
                "posted": when, "scheduled": when, "started": when, "updated": when,
                "branch": branch, "suite": suite, "machine_type": "smithi", "sha1": sha1,
                "flavor": "default", "priority": 100,
                **{f"count_{k}": v for k, v in counts.items()}})
            plans.append((name, suite, branch, sha1, when, job_statuses))
        ids = session.scalars(insert(Run).returning(Run.id, sort_by_parameter_order=True),
                              run_rows).all()
        rows = []
        for run_id, (name, suite, branch, sha1, when, job_statuses) in zip(ids, plans):
            for j, status in enumerate(job_statuses, start=1):
                job_id = str(j)
                rows.append((run_id, job_id, sortable_job_id(job_id), name,
                             f"{suite}/basic/{{clusters/fixed-2 tasks/t{j % 37}}}", status,
                             success_of[status], "smithi", "ubuntu", "22.04", sha1, "default",
                             suite, branch, 100, when, when, when,
                             json.dumps({"ceph": {"conf": {"osd": {"debug osd": 20}}}})))
        _insert_jobs(session, rows)
        done += len(rows)
        if progress:
            progress(done, jobs)
    return nruns


def _insert_jobs(session: Session, rows: list[tuple[Any, ...]]) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in rows:
            writer.writerow(["\\N" if v is None else v for v in row])
        buf.seek(0)
        dbapi = cast("PgConnection", conn.connection.dbapi_connection)  # the COPY path
        with dbapi.cursor() as cur:
            cur.copy_expert(f"COPY jobs ({', '.join(JOB_COLUMNS)}) FROM STDIN "
                            "WITH (FORMAT csv, NULL '\\N')", buf)
        return
    table = Job.metadata.tables[Job.__tablename__]
    session.execute(insert(table), [dict(zip(JOB_COLUMNS, r[:-1] + (json.loads(r[-1]),)))
                                    for r in rows])


def refresh_planner_statistics(engine: Engine) -> None:
    """After a bulk load: fresh planner statistics (and, on PostgreSQL, the visibility map
    that index-only scans need). Autovacuum gets there eventually, but a benchmark started
    right after seeding was planned against the empty tables' estimates (the filter routes'
    p95 rose ninefold at 1M jobs). VACUUM cannot run in a transaction: its own connection."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("runs", "jobs"):
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
