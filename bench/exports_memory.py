"""Memory and speed of a paddles gunicorn worker streaming big exports.

Creates a throwaway PostgreSQL database (admin URL: PADDLES_TEST_POSTGRES_URL, default the
local server as user postgres; dropped at the end), migrates it, and loads one run with
--jobs jobs plus --runs small runs of one job each: SQLAlchemy Core INSERTs given many rows
at once (SQLAlchemy sends them as multi-row VALUES statements, 1000 rows a statement), run
counters and statuses computed from the jobs as the job service keeps them. Starts paddles
under gunicorn (gunicorn_config.py, one worker process), warms it up with small exports, then
downloads the big run's jobs as CSV, JSON Lines and JSON and every run as CSV, streaming
(the client keeps nothing). Reports the worker's peak RSS (VmHWM from /proc/PID/status)
before and after each export, and rows per second.

    .venv/bin/python bench/exports_memory.py                # 200,000 jobs, 20,000 runs
    .venv/bin/python bench/exports_memory.py --jobs 20000 --runs 2000 --json
    PADDLES_BENCH_DATABASE_URL=postgresql+psycopg2://.../EMPTY_DB  (use that database)
    --compare-api also GETs /runs/NAME/ (the JSON API, built in memory) for contrast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import server  # noqa: E402

BIG_RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
ROWS_PER_STATEMENT = 1000
CHUNK = 1 << 20


# ---- database ---------------------------------------------------------------------------

def throwaway_database():
    """(url, drop) of a fresh PostgreSQL database, as tests/conftest.py makes them."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get("PADDLES_TEST_POSTGRES_URL",
                               "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"paddles_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def load(url: str, n_jobs: int, n_runs: int, seed: int = 1) -> dict:
    """One run of `n_jobs` jobs and `n_runs` runs of one job each, many rows per INSERT."""
    from sqlalchemy import insert

    from paddles.db import make_engine
    from paddles.models import Job, Run
    from paddles.models.base import sortable_job_id
    from paddles.models.statuses import COUNT_KEYS, run_status

    rnd = random.Random(seed)
    engine = make_engine(url)
    t0 = dt.datetime(2024, 1, 15, 20, 0, 3, tzinfo=dt.UTC)
    sha1 = "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
    started = time.monotonic()

    def pick_status() -> str:
        return rnd.choices(("pass", "fail", "dead"), (80, 15, 5))[0]

    def job_row(run_id: int, i: int, when: dt.datetime, status: str) -> dict:
        hosts = {f"ubuntu@smithi{rnd.randrange(1000):03d}.front.sepia.ceph.com":
                 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + uuid.UUID(int=rnd.getrandbits(128)).hex
                 for _ in range(2)}
        return {
            "run_id": run_id, "job_id": str(i), "sort_key": sortable_job_id(str(i)),
            "description": "rados/thrash/{0-size-min-size-overrides/3-size-2-min-size "
                           f"clusters/{{fixed-2 openstack}} msgr/async-v{i % 3} "
                           "objectstore/bluestore-bitmap thrashers/careful workloads/cache}",
            "status": status, "success": status == "pass",
            "failure_reason": None if status == "pass" else
            f'Command failed on smithi{i % 1000:03d} with status 1: "sudo ceph osd pool ..."',
            "duration": rnd.randrange(600, 7200), "machine_type": "smithi",
            "os_type": "ubuntu", "os_version": "22.04", "targets": hosts, "sha1": sha1,
            "suite": "rados", "branch": "main", "flavor": "default", "priority": 70,
            "name": BIG_RUN, "owner": "scheduled_teuthology@teuthology", "posted": when,
            "started": when, "updated": when + dt.timedelta(seconds=3600)}

    def counters(statuses: list[str]) -> dict:
        counts = {key: statuses.count(key) for key in COUNT_KEYS}
        counts["total"] = len(statuses)
        values = {f"count_{k}": v for k, v in counts.items()}
        values["status"] = run_status(counts).value
        return values

    with engine.begin() as conn:
        statuses = [pick_status() for _ in range(n_jobs)]  # counters known up front
        run_id = conn.execute(insert(Run).values(
            name=BIG_RUN, user="teuthology", posted=t0, scheduled=t0, started=t0,
            updated=t0 + dt.timedelta(hours=5), suite="rados", branch="main",
            machine_type="smithi", sha1=sha1, flavor="default", priority=70,
            **counters(statuses)).returning(Run.id)).scalar_one()
        for first in range(0, n_jobs, ROWS_PER_STATEMENT):
            conn.execute(insert(Job), [
                job_row(run_id, i + 1, t0 + dt.timedelta(seconds=i), statuses[i])
                for i in range(first, min(first + ROWS_PER_STATEMENT, n_jobs))])
        for first in range(0, n_runs, ROWS_PER_STATEMENT):
            batch = range(first, min(first + ROWS_PER_STATEMENT, n_runs))
            small = [(f"user{i % 50}-2024-0{1 + i % 9}-1{i % 10}_10:00:00-fs-main-distro-"
                      f"default-mira-{i}", pick_status()) for i in batch]
            ids = conn.execute(insert(Run).returning(Run.id, sort_by_parameter_order=True), [
                {"name": name, "user": name.split("-", 1)[0], "posted": t0,
                 "scheduled": t0 - dt.timedelta(minutes=i), "started": t0,
                 "updated": t0 + dt.timedelta(minutes=30), "suite": "fs", "branch": "main",
                 "machine_type": "mira", "sha1": sha1, "flavor": "default", "priority": 70,
                 **counters([status])}
                for i, (name, status) in zip(batch, small)]).scalars().all()
            conn.execute(insert(Job), [job_row(rid, 1, t0, status)
                                       for rid, (_, status) in zip(ids, small)])
    engine.dispose()
    return {"load_seconds": time.monotonic() - started, "jobs": n_jobs + n_runs,
            "runs": n_runs + 1}


# ---- server -------------------------------------------------------------------------------

def _get(port: int, path: str) -> tuple[int, int, int, float]:
    """(status, bytes, lines, seconds) of a streamed GET; nothing kept."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    started = time.monotonic()
    conn.request("GET", path)
    resp = conn.getresponse()
    size = lines = 0
    while True:
        chunk = resp.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        lines += chunk.count(b"\n")
    conn.close()
    return resp.status, size, lines, time.monotonic() - started


def measure(url: str, exports: list[tuple[str, str, int]], compare_api: bool) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="paddles-exports-bench-") as tmp:
        env = dict(PADDLES_DATABASE_URL=url, PADDLES_DATA_DIR=f"{tmp}/data",
                   PADDLES_WORKERS="1", PADDLES_TIMEOUT="1800", PADDLES_LOG_LEVEL="warning")
        with server.gunicorn(env, timeout=30) as (proc, port):
            [worker] = server.worker_pids(proc.pid)
            small = "user0-2024-01-10_10:00:00-fs-main-distro-default-mira-0"
            for path in ("/exports/runs.csv?user=nobody", f"/exports/runs/{small}/jobs.csv",
                         f"/exports/runs/{small}/jobs.jsonl",
                         f"/exports/runs/{small}/jobs.json"):
                if _get(port, path)[0] != 200:  # imports, pools, first cursor
                    raise RuntimeError(f"warm-up {path} failed")
            results = []
            todo = list(exports)
            if compare_api:
                todo.append(("run detail API (in memory)", f"/runs/{BIG_RUN}/", 0))
            for label, path, rows in todo:
                before = server.status_kib(worker, "VmHWM")
                rss_before = server.status_kib(worker, "VmRSS")
                status, size, lines, seconds = _get(port, path)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                after = server.status_kib(worker, "VmHWM")
                results.append({"export": label, "path": path, "rows": rows, "bytes": size,
                                "lines": lines, "seconds": seconds,
                                "rows_per_s": rows / seconds if rows else None,
                                "mib_per_s": size / seconds / (1 << 20),
                                "rss_before_kib": rss_before, "hwm_before_kib": before,
                                "hwm_after_kib": after, "growth_kib": after - before})
            if server.worker_pids(proc.pid) != [worker]:
                raise RuntimeError("the worker was replaced during the run")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200_000, help="jobs in the big run")
    parser.add_argument("--runs", type=int, default=20_000, help="small runs (one job each)")
    parser.add_argument("--compare-api", action="store_true",
                        help="also GET the big run from the JSON API, for contrast")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    from paddles import migrations

    url = os.environ.get("PADDLES_BENCH_DATABASE_URL")
    drop = None
    if url is None:
        url, drop = throwaway_database()
    try:
        migrations.upgrade(url)
        loaded = load(url, args.jobs, args.runs)
        exports = [(f"{args.jobs} jobs, CSV", f"/exports/runs/{BIG_RUN}/jobs.csv", args.jobs),
                   (f"{args.jobs} jobs, JSON Lines", f"/exports/runs/{BIG_RUN}/jobs.jsonl",
                    args.jobs),
                   (f"{args.jobs} jobs, JSON", f"/exports/runs/{BIG_RUN}/jobs.json",
                    args.jobs),
                   (f"{args.runs + 1} runs, CSV", "/exports/runs.csv", args.runs + 1)]
        results = measure(url, exports, args.compare_api)
    finally:
        if drop is not None:
            drop()
    if args.json:
        print(json.dumps({"load": loaded, "exports": results}, indent=2))
        return 0
    print(f"loaded {loaded['jobs']} jobs in {loaded['runs']} runs in "
          f"{loaded['load_seconds']:.1f}s ({url.split(':', 1)[0]}); one gunicorn worker process")
    mib = 1024
    for r in results:
        rate = f"{r['rows_per_s']:,.0f} rows/s, " if r["rows_per_s"] else ""
        print(f"{r['export']}: {r['bytes'] / (1 << 20):.1f} MiB in {r['seconds']:.1f}s "
              f"({rate}{r['mib_per_s']:.1f} MiB/s); worker VmHWM "
              f"{r['hwm_before_kib'] / mib:.1f} -> {r['hwm_after_kib'] / mib:.1f} MiB "
              f"(growth {r['growth_kib'] / mib:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
