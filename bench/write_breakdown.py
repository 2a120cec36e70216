"""Where a job write's time goes (issue 21): per request, on PostgreSQL.

Three measurements, each on a throwaway database of the local server:

1. In one process, one request at a time (webtest, no HTTP server), for each kind of write
   (a job create with the teuthology body and three targets, `running`, the final report,
   and a heartbeat for comparison): SQL statements, round trips to PostgreSQL (statements,
   plus the BEGIN psycopg2 sends before a transaction's first statement, plus COMMIT and
   ROLLBACK; counted on the psycopg2 connection itself, so the lone-statement fast path is
   counted too), CPU per request of this process (`time.process_time`) and of PostgreSQL's
   processes (from /proc; one client, so no lock waits), both noisy on a shared machine.
2. `--callgrind`: the same requests under valgrind's callgrind, which counts the
   instructions the process executes (Python, psycopg2, libpq; not PostgreSQL's), per
   request. Repeatable to a fraction of a percent where timings here move twofold.
3. `--waits`: paddles under gunicorn (gunicorn_config.py) with 8 clients, the job_create
   and job_status phases of bench/run.py, while a sampler reads pg_stat_activity every
   few milliseconds: what the database backends serving paddles were doing (running, or
   waiting: on a row lock (the run row), on the events' advisory lock, on the lock that
   orders NOTIFYing commits, on the WAL flush of a commit, on the client, ...), and how
   much of the time a transaction stood open while paddles' Python worked ("idle in
   transaction": locks held with nothing for PostgreSQL to do).

    .venv/bin/python bench/write_breakdown.py                 # 1 only (about 20 s)
    .venv/bin/python bench/write_breakdown.py --callgrind --waits
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import write_bodies  # noqa: E402

ADMIN_URL = os.environ.get("PADDLES_BENCH_POSTGRES_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RUN = "teuthology-2026-12-05_10:00:00-rados-main-distro-default-smithi"
KINDS = ("create", "running", "finish", "heartbeat")


# ---- the database ---------------------------------------------------------------------

def create_database() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"paddles_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    from paddles import migrations
    migrations.upgrade(url)
    return url


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


# ---- 1 and 2: in one process ------------------------------------------------------------

class Trips:
    """Round trips and statements, counted on psycopg2 connections (connection_factory)."""

    def __init__(self):
        self.statements = self.trips = 0

    def connection_class(self):
        import psycopg2.extensions as ext
        counter = self

        class Cursor(ext.cursor):
            def execute(self, sql, args=None):
                conn = self.connection
                if not conn.autocommit and \
                        conn.get_transaction_status() == ext.TRANSACTION_STATUS_IDLE:
                    counter.trips += 1  # the BEGIN psycopg2 sends first
                counter.trips += 1
                counter.statements += not str(sql).lstrip().upper().startswith("PREPARE")
                return super().execute(sql, args)

        class Connection(ext.connection):
            def cursor(self, *args, **kwargs):
                kwargs.setdefault("cursor_factory", Cursor)
                return super().cursor(*args, **kwargs)

            def commit(self):
                if self.get_transaction_status() != ext.TRANSACTION_STATUS_IDLE:
                    counter.trips += 1
                return super().commit()

            def rollback(self):
                if self.get_transaction_status() != ext.TRANSACTION_STATUS_IDLE:
                    counter.trips += 1
                return super().rollback()

        return Connection


def make_test_app(url: str, trips: Trips | None = None):
    import webtest

    from paddles.app import make_app
    from paddles.db import make_engine, make_session_factory
    from paddles.settings import load_settings
    settings = load_settings(environ={}, database_url=url)
    kw = {}
    if trips is not None:
        kw["connect_args"] = {"connection_factory": trips.connection_class()}
    engine = make_engine(url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, **kw)
    factory = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)
    return webtest.TestApp(make_app(settings, session_factory=factory))


def requests_of(app, kind: str, run: str):
    def send(i: int):
        job = i + 1
        if kind == "create":
            return app.post(f"/runs/{run}/jobs/",
                            json.dumps(write_bodies.create_body(run, job)))
        if kind == "running":
            return app.put(f"/runs/{run}/jobs/{job}/",
                           json.dumps(write_bodies.running_body(run, job)))
        if kind == "finish":
            return app.put(f"/runs/{run}/jobs/{job}/",
                           json.dumps(write_bodies.finish_body(run, job)))
        return app.put(f"/runs/{run}/jobs/{job}/", json.dumps({"name": run,
                                                               "job_id": str(job)}))
    return send


def ensure_nodes(app) -> None:
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi", "up": True}), status="*")


def counts(url: str, n: int) -> dict:
    trips = Trips()
    app = make_test_app(url, trips)
    ensure_nodes(app)
    warm = f"{RUN}-warm"
    for kind in KINDS:  # warm every path (imports, prepared statements, caches)
        send = requests_of(app, kind, warm)
        for i in range(10):
            send(i)
    out = {}
    run = f"{RUN}-counts"
    for kind in KINDS:
        send = requests_of(app, kind, run)
        trips.statements = trips.trips = 0
        start, pg_start = time.process_time(), postgres_cpu()
        for i in range(n):
            send(i)
        cpu = (time.process_time() - start) / n * 1000
        pg = (postgres_cpu() - pg_start) / n * 1000
        out[kind] = {"statements": round(trips.statements / n, 2),
                     "round_trips": round(trips.trips / n, 2), "cpu_ms": round(cpu, 3),
                     "pg_cpu_ms": round(pg, 3)}
    return out


def callgrind_inner(url: str, n: int) -> None:
    """Runs under callgrind: os.getppid() zeroes the counters, os.getpgrp() dumps them
    (--zero-before/--dump-before), around n requests of each kind in KINDS order."""
    app = make_test_app(url)
    ensure_nodes(app)
    warm = f"{RUN}-cgwarm"
    for kind in KINDS:
        send = requests_of(app, kind, warm)
        for i in range(10):
            send(i)
    run = f"{RUN}-cg"
    for kind in KINDS:
        send = requests_of(app, kind, run)
        os.getppid()
        for i in range(n):
            send(i)
        os.getpgrp()


def callgrind(url: str, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        "--zero-before=getppid", "--dump-before=getpgrp",
                        "--dump-instr=no", "--dump-line=no", sys.executable, __file__,
                        "--callgrind-inner", url, "-n", str(n)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parts = sorted((p for p in glob.glob(out + ".*") if re.search(r"\.\d+$", p)),
                       key=lambda p: int(p.rsplit(".", 1)[1]))
        totals = []
        for path in parts:
            text = Path(path).read_text(errors="replace")
            found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            totals.append(int(found.group(1)) if found else 0)
    if len(totals) < len(KINDS):
        raise RuntimeError(f"callgrind gave {len(totals)} dumps, wanted {len(KINDS)}")
    return {kind: round(total / n) for kind, total in zip(KINDS, totals[:len(KINDS)])}


# ---- 3: waits under load ----------------------------------------------------------------

WAIT_CLASSES = [
    ("row lock (run row)", lambda t, e: t == "Lock" and e in ("transactionid", "tuple")),
    ("events advisory lock", lambda t, e: t == "Lock" and e == "advisory"),
    # NOTIFY: PostgreSQL serialises the commits of notifying transactions on one lock
    ("notify queue lock", lambda t, e: t == "Lock" and e == "object"),
    ("other lock", lambda t, e: t == "Lock"),
    ("commit: WAL flush", lambda t, e: (t == "IO" and e in ("WALSync", "WALWrite"))
     or (t == "LWLock" and e in ("WALWrite", "WALInsert"))),
    ("other LWLock/IO", lambda t, e: t in ("LWLock", "IO")),
    ("running (CPU)", lambda t, e: t is None),
]


def classify(state: str, wait_type: str | None, wait_event: str | None) -> str:
    if state == "idle in transaction":
        return "idle in transaction (paddles' Python, locks held)"
    if state == "idle":
        return "idle"
    for label, test in WAIT_CLASSES:
        if test(wait_type, wait_event):
            return label
    return f"{wait_type}:{wait_event}"


class Sampler(threading.Thread):
    def __init__(self, dsn: str, dbname: str, interval: float = 0.002):
        super().__init__(daemon=True)
        import psycopg2
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True
        self.backend_pid = self.conn.get_backend_pid()  # not counted in CpuSplit
        self.dbname, self.interval = dbname, interval
        self.samples: collections.Counter = collections.Counter()
        self.stop = threading.Event()

    def run(self):
        self.tid = threading.get_native_id()
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid() "
                            "AND application_name LIKE 'paddles[%%'", (self.dbname,))
                for state, wtype, wevent in cur.fetchall():
                    self.samples[classify(state, wtype, wevent)] += 1
                time.sleep(self.interval)
        self.conn.close()

    def shares(self) -> dict[str, float]:
        busy = {k: v for k, v in self.samples.items() if k != "idle"}
        total = sum(busy.values()) or 1
        return {k: round(v / total, 3) for k, v in sorted(busy.items(), key=lambda kv: -kv[1])}


class CpuSplit:
    """CPU seconds (user + system, from /proc) of paddles' gunicorn (master and workers),
    of every PostgreSQL process (backends, WAL writer, ...) and of this process (the load
    generator's client threads), and the machine's idle time: read before and after a
    phase, the difference per request says who spent what."""

    def __init__(self, server_pid: int, sampler: Sampler):
        self.server_pid, self.sampler = server_pid, sampler
        while not hasattr(sampler, "tid"):  # its thread's CPU is left out
            time.sleep(0.001)

    def _children(self, pid: int) -> list[int]:
        try:
            tasks = Path(f"/proc/{pid}/task").iterdir()
            return [int(c) for t in tasks
                    for c in (t / "children").read_text().split()]
        except OSError:
            return []

    def read(self) -> dict[str, float]:
        paddles = [self.server_pid, *self._children(self.server_pid)]
        idle = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[4]) / TICK
        sampling = proc_cpu(f"{os.getpid()}/task/{self.sampler.tid}")
        return {"paddles": sum(map(proc_cpu, paddles)),
                "postgres": postgres_cpu(exclude=self.sampler.backend_pid),
                "load generator": proc_cpu(os.getpid()) - sampling, "idle": idle}

    @staticmethod
    def per_request(before: dict[str, float], after: dict[str, float],
                    requests: int) -> dict[str, float]:
        return {key: round((after[key] - before[key]) / requests * 1000, 3) for key in before}


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) of a process (or `PID/task/TID`), from /proc; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu(exclude: int | None = None) -> float:
    """CPU seconds of every PostgreSQL process on the machine (backends, WAL writer, ...),
    but `exclude`."""
    return sum(proc_cpu(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
               and _comm(p) == "postgres" and int(p.name) != exclude)


def _comm(path: Path) -> str:
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return ""


class WalAndHot:
    """WAL bytes written (the whole server's), and updates of the runs and jobs rows in
    all and in place (HOT: no new index entries), per request over a phase. A backend
    reports its table counts when idle, up to 10 s later on PostgreSQL 15: `read` waits."""

    SETTLE = 11.0

    def __init__(self, dsn: str):
        import psycopg2
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True

    def read(self, settle: bool = True) -> dict[str, Any]:
        if settle:
            time.sleep(self.SETTLE)
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname IN ('runs', 'jobs')")
            tables = {name: (upd, hot) for name, upd, hot in cur.fetchall()}
            cur.execute("SELECT pg_current_wal_lsn()::text")
            lsn = cur.fetchone()[0]
        return {"lsn": lsn, "tables": tables}

    def per_request(self, before: dict[str, Any], after: dict[str, Any],
                    requests: int) -> dict[str, float]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_wal_lsn_diff(%s, %s)", (after["lsn"], before["lsn"]))
            wal = float(cur.fetchone()[0])
        out = {"wal_bytes": round(wal / requests)}
        for name in ("runs", "jobs"):
            upd = after["tables"][name][0] - before["tables"][name][0]
            hot = after["tables"][name][1] - before["tables"][name][1]
            out[f"{name}_updates"] = round(upd / requests, 2)
            out[f"{name}_hot_share"] = round(hot / upd, 3) if upd else 0.0
        return out


def waits(url: str, threads: int, jobs: int) -> dict:
    import server
    from loadgen import run_phase
    from sqlalchemy.engine import make_url
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    dbname = make_url(url).database
    out = {}
    env = dict(os.environ, PADDLES_DATABASE_URL=url, PADDLES_LOG_LEVEL="warning")
    with server.gunicorn(env) as (proc, port):
        base = f"http://127.0.0.1:{port}"
        from loadgen import Client
        c = Client(base)
        for n in range(write_bodies.NODE_COUNT):
            c.request("POST", "/nodes/", {"name": write_bodies.node_name(n),
                                          "machine_type": "smithi", "up": True})
        runs = [f"{RUN}-w{t}" for t in range(threads)]
        owner = write_bodies.Slots()

        def run_of(slot: int, job: int) -> tuple[str, int]:
            return runs[slot % threads], job
        create = write_bodies.creates(run_of, owner)
        wal = WalAndHot(dsn)
        wal_was = wal.read()
        sampler = Sampler(dsn, dbname)
        sampler.start()
        cpu = CpuSplit(proc.pid, sampler)
        cpu_was = cpu.read()
        result = run_phase("create", base, create, threads=threads, requests=threads * jobs)
        cpu_ms = cpu.per_request(cpu_was, cpu.read(), result.requests)
        sampler.stop.set()
        sampler.join()
        wal_now = wal.read()
        out["create"] = {"rps": round(result.rps, 1), "p95_ms": round(result.pct(95), 1),
                         "statuses": dict(result.statuses), "backends": sampler.shares(),
                         "cpu_ms": cpu_ms,
                         "rows": wal.per_request(wal_was, wal_now, result.requests)}
        wal_was = wal_now
        all_jobs = write_bodies.posted(run_of, owner)
        sampler = Sampler(dsn, dbname)
        sampler.start()
        cpu = CpuSplit(proc.pid, sampler)
        t0, cpu_was = time.perf_counter(), cpu.read()
        first, second = (run_phase(name, base, write_bodies.reports(all_jobs, body),
                                   threads=threads, requests=len(all_jobs))
                         for name, body in (("running", write_bodies.running_body),
                                            ("finish", write_bodies.finish_body)))
        elapsed = time.perf_counter() - t0
        cpu_ms = cpu.per_request(cpu_was, cpu.read(), first.requests + second.requests)
        sampler.stop.set()
        sampler.join()
        rows = wal.per_request(wal_was, wal.read(), first.requests + second.requests)
        lat = sorted(first.latencies_ms + second.latencies_ms)
        out["status"] = {"rps": round((first.requests + second.requests) / elapsed, 1),
                         "p95_ms": round(lat[int(0.95 * len(lat))], 1),
                         "statuses": {**{f"running {k}": v for k, v in first.statuses.items()},
                                      **{f"finish {k}": v for k, v in second.statuses.items()}},
                         "backends": sampler.shares(), "cpu_ms": cpu_ms, "rows": rows}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="requests of each kind (default 100)")
    parser.add_argument("--callgrind", action="store_true",
                        help="also count instructions per request with valgrind's callgrind")
    parser.add_argument("--waits", action="store_true",
                        help="also sample what PostgreSQL's backends wait on under load")
    parser.add_argument("--threads", type=int, default=8, help="clients for --waits")
    parser.add_argument("--jobs", type=int, default=100,
                        help="jobs per client for --waits (default 100)")
    parser.add_argument("-o", "--output", help="also write the figures as JSON here")
    parser.add_argument("--callgrind-inner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind_inner:
        callgrind_inner(args.callgrind_inner, args.n)
        return 0
    url = create_database()
    report: dict = {"loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        report["per_request"] = counts(url, args.n)
        if args.callgrind:
            for kind, instr in callgrind(url, max(20, args.n // 2)).items():
                report["per_request"][kind]["instructions"] = instr
        if args.waits:
            report["waits"] = waits(url, args.threads, args.jobs)
    finally:
        drop_database(url)
    report["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{'request':<10} {'statements':>10} {'round trips':>12} {'CPU ms':>8} "
          f"{'PG CPU ms':>10} {'instructions':>13}")
    for kind, row in report["per_request"].items():
        print(f"{kind:<10} {row['statements']:>10} {row['round_trips']:>12} "
              f"{row['cpu_ms']:>8} {row['pg_cpu_ms']:>10} {row.get('instructions', '-'):>13}")
    for phase, row in report.get("waits", {}).items():
        print(f"\n{phase} under load: {row['rps']} req/s, p95 {row['p95_ms']} ms, "
              f"{row['statuses']}; paddles' PostgreSQL backends, share of busy samples:")
        for label, share in row["backends"].items():
            print(f"  {share:>6.1%}  {label}")
        print("  CPU ms per request: " + ", ".join(
            f"{key} {value:.3f}" for key, value in row["cpu_ms"].items())
            + " (idle: of both cores' time)")
        rows = row["rows"]
        print(f"  per request: {rows['wal_bytes']} bytes of WAL; runs rows updated "
              f"{rows['runs_updates']} ({rows['runs_hot_share']:.0%} in place), jobs rows "
              f"{rows['jobs_updates']} ({rows['jobs_hot_share']:.0%} in place)")
    print(f"\nload average {report['loadavg_at_start']} -> {report['loadavg_at_end']}")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
