"""`make bench`: paddles under gunicorn on PostgreSQL, a teuthology-shaped workload over HTTP.

Prints req/s and p50/p95/p99 per phase, and the same for the floor measured in the same run
(a trivial WSGI app under the same gunicorn settings, and the SQL of the hot paths run
directly through psycopg2), with our figures as ratios to it: to the mean of the floor app's
figures right before and after each phase (it is served beside paddles all along), and to
the floor measured at the end.
Writes bench/results/latest.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import psycopg2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server
import write_bodies
from floor_app import prepare_update_floor
from loadgen import IDENTITY, Client, PhaseResult, run_phase
from write_bodies import Slots, creates

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("PADDLES_BENCH_POSTGRES_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
DESCRIPTION = write_bodies.DESCRIPTION  # the same teuthology description in every phase


def job_body(run: str, job_id: int) -> dict:
    """A realistic ~2 KB teuthology job report."""
    return {
        "name": run, "job_id": str(job_id), "status": "queued", "description": DESCRIPTION,
        "machine_type": "smithi", "os_type": "ubuntu", "os_version": "22.04",
        "owner": "scheduled_teuthology@teuthology", "suite": "rados", "branch": "main",
        "sha1": "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", "flavor": "default",
        "suite_branch": "main", "suite_sha1": "0123456789abcdef0123456789abcdef01234567",
        "suite_repo": "https://github.com/ceph/ceph-ci.git", "teuthology_branch": "main",
        "priority": 70, "user": "teuthology", "queue": "smithi", "seed": 4242,
        "archive_path": f"/archive/{run}/{job_id}", "last_in_suite": False,
        "overrides": {"ceph": {"conf": {"osd": {"debug osd": 20, "osd shutdown pgref assert":
                                                  True}, "mon": {"debug mon": 20}},
                               "log-ignorelist": ["\\(MDS_ALL_DOWN\\)", "\\(MDS_UP_LESS\\)",
                                                  "overall HEALTH_", "\\(OSD_DOWN\\)"],
                               "sha1": "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"},
                      "install": {"ceph": {"flavor": "default",
                                           "sha1": "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"}}},
        "roles": [["mon.a", "mgr.y", "osd.0", "osd.1", "osd.2", "client.0"],
                  ["mon.b", "mgr.x", "osd.3", "osd.4", "osd.5", "client.1"]],
        "tasks": [{"install": None}, {"ceph": {"log-ignorelist": ["but it is still running"]}},
                  {"thrashosds": {"timeout": 1200, "chance_pgnum_grow": 1}},
                  {"rados": {"clients": ["client.0"], "ops": 4000, "objects": 50}}],
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.results: list[PhaseResult] = []
        self.runs: list[str] = []
        self.summary_bytes = 0  # length of a run summary (the size-matched floor)
        self.floor_base: str | None = None  # the floor app, served beside paddles
        # phase -> the floors of its kind measured just before and just after it
        self.adjacent: dict[str, list[PhaseResult]] = {}
        self._last_floor: dict[str, PhaseResult] = {}
        self.mixed = None  # the mixed phase's work (paddles_phases)
        self.scale_out: dict = {}  # one instance against two behind nginx (scale_out_phases)
        self.loadavg_at_start = [round(x, 2) for x in os.getloadavg()]

    def floor_between_phases(self) -> None:
        """Both floors (GET and PUT), now: the machine's speed drifts over a run (other
        tenants, PostgreSQL's background work after a write phase), so each phase's ratio
        is taken against the mean of the floors measured right before and right after it
        rather than against one measured minutes later."""
        if self.floor_base is not None:
            for kind in ("get", "put"):
                self._last_floor[kind] = self.floor_phase(kind, f"  (floor {kind})")

    def record(self, result: PhaseResult, floors: list[PhaseResult] | None = None
               ) -> PhaseResult:
        self.results.append(result)
        self._print(result)
        if floors is not None:  # a write phase: its own floor, measured around it
            self.adjacent[result.name] = floors
        elif self.floor_base is not None and not result.name.startswith("floor"):
            kind = FLOOR_OF.get(result.name, "get")
            before = self._last_floor.get(kind)
            self.floor_between_phases()
            self.adjacent[result.name] = [f for f in (before, self._last_floor[kind]) if f]
        return result

    @staticmethod
    def _print(result: PhaseResult, label: str | None = None) -> None:
        d = result.as_dict()
        print(f"  {label or d['phase']:<22} {d['rps']:>8.1f} req/s  p50 {d['p50_ms']:>7.2f}  "
              f"p95 {d['p95_ms']:>7.2f}  p99 {d['p99_ms']:>7.2f} ms  {d['statuses']}",
              file=sys.stderr, flush=True)

    def floor_phase(self, kind: str, label: str) -> PhaseResult:
        result = run_phase(f"floor_wsgi_{kind}", self.floor_base, FLOOR_WORK[kind],
                           threads=floor_threads(kind, self.args.threads),
                           seconds=self.args.floor_seconds)
        self._print(result, label)
        return result

    def around(self, kind: str, phase) -> PhaseResult:
        """Run `phase()` between two measurements of the floor of `kind` (when the floor app
        is served beside paddles) and record it with them."""
        floors = []
        if self.floor_base is not None:
            floors.append(self.floor_phase(kind, f"  (floor {kind})"))
        result = phase()
        self._print(result)
        self.results.append(result)
        if self.floor_base is not None:
            floors.append(self.floor_phase(kind, f"  (floor {kind})"))
        self.adjacent[result.name] = floors
        return result

    def write_phases(self, base: str) -> None:
        """Teuthology's writes (issue 21), each against the one-UPDATE floor (`update`) or,
        for the mix, the same floor from as many clients (`update16`):

        - job_create: each client posts its runs' jobs one after another, as
          teuthology-schedule does (write_bodies.create_body: ~2.5 KB, three targets),
          --write-jobs to a run, then the next of its --write-runs runs; after an untimed
          warm-up of --write-warmup creates in runs of their own (a server that has just
          started prepares its statements on each pooled connection first);
        - job_status: every job `running`, then its final report (config + summary), the
          jobs of a run written from all clients at once, as a run's jobs finish in a lab;
        - mix16: 16 clients, half heartbeats, then reads, creates, lock polls, reports."""
        a, T = self.args, self.args.threads
        self.ensure_nodes(base)
        stamp = time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime())
        n = a.write_jobs

        def run_of(tag: str, slot: int, number: int) -> tuple[str, int]:
            """The run and job_id of a client's `number`th create (from 1): n to a run."""
            return (f"teuthology-{stamp}-rados-main-distro-default-smithi-{tag}{slot % T}"
                    f"-{(number - 1) // n}", (number - 1) % n + 1)

        if a.write_warmup:
            run_phase("warm-up", base, creates(partial(run_of, "u"), Slots()), threads=T,
                      requests=a.write_warmup)
        owner = Slots()
        self.around("update", lambda: run_phase(
            "job_create", base, creates(partial(run_of, "w"), owner), threads=T,
            requests=T * a.write_runs * n))
        # a run's jobs together, in order: all clients on one run at a time
        jobs = write_bodies.posted(partial(run_of, "w"), owner)

        def status():
            return _combined("job_status", *(
                run_phase("job_status", base, write_bodies.reports(jobs, body), threads=T,
                          requests=len(jobs))
                for body in (write_bodies.running_body, write_bodies.finish_body)))
        self.around("update", status)

        rng = random.Random(21)
        mix_runs = [f"teuthology-{stamp}-rados-main-distro-default-smithi-m{t}"
                    for t in range(16)]
        mix_owner = Slots()

        def mix(c, i):
            r = rng.random()
            run, job = jobs[i % len(jobs)]
            if r < 0.5:
                return c.request("PUT", f"/runs/{run}/jobs/{job}/",
                                 {"name": run, "job_id": str(job)})
            if r < 0.6:
                return c.request("GET", f"/runs/{run}/")
            if r < 0.7:
                return c.request("GET", "/runs/?count=25")
            if r < 0.8:
                slot, new = mix_owner.next()
                mine = mix_runs[slot % len(mix_runs)]
                return c.request("POST", f"/runs/{mine}/jobs/",
                                 write_bodies.create_body(mine, new))
            if r < 0.9:
                return c.request("GET", "/nodes/?machine_type=smithi|mira&up=1&locked=0"
                                        "&count=5")
            return c.request("PUT", f"/runs/{run}/jobs/{job}/",
                             write_bodies.finish_body(run, job))
        self.around("update16", lambda: run_phase("mix16", base, mix, threads=16,
                                                seconds=a.seconds))

    def ensure_nodes(self, base: str) -> None:
        """The nodes the bodies' targets name, as a lab has them before jobs run."""
        c = Client(base)
        for n in range(write_bodies.NODE_COUNT):
            c.request("POST", "/nodes/", {"name": write_bodies.node_name(n),
                                          "machine_type": "smithi", "up": True})

    def paddles_phases(self, base: str) -> None:
        a, T = self.args, self.args.threads
        stamp = time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime())
        self.runs = [f"bench-{stamp}-rados-main-distro-default-smithi-{i}"
                     for i in range(a.runs)]
        jobs = [(r, j) for r in self.runs for j in range(1, a.jobs + 1)]
        self.record(run_phase("create_jobs", base, lambda c, i: c.request(
            "POST", f"/runs/{jobs[i][0]}/jobs/", job_body(*jobs[i])), threads=T,
            requests=len(jobs)))
        self.record(run_phase("status_running", base, lambda c, i: c.request(
            "PUT", f"/runs/{jobs[i][0]}/jobs/{jobs[i][1]}/", {"status": "running"}),
            threads=T, requests=len(jobs)))
        self.record(run_phase("heartbeat_put", base, lambda c, i: c.request(
            "PUT", f"/runs/{jobs[i % len(jobs)][0]}/jobs/{jobs[i % len(jobs)][1]}/",
            {"name": jobs[i % len(jobs)][0], "job_id": str(jobs[i % len(jobs)][1])}),
            threads=T, seconds=a.seconds))
        self.summary_bytes = self.check_summary(base)
        self.record(run_phase("run_summary_get", base, lambda c, i: c.request(
            "GET", f"/runs/{self.runs[i % len(self.runs)]}/"), threads=T, seconds=a.seconds))
        # the same from a client that does not take gzip (curl, urllib): every byte sent
        self.record(run_phase("run_summary_get_plain", base, lambda c, i: c.request(
            "GET", f"/runs/{self.runs[i % len(self.runs)]}/", headers=IDENTITY),
            threads=T, seconds=a.seconds))
        self.record(run_phase("runs_list_get", base, lambda c, i: c.request(
            "GET", "/runs/?count=25"), threads=T, seconds=a.seconds))
        filters = ["/runs/branch/main/", "/runs/suite/rados/branch/main/",
                   "/runs/status/running/", "/runs/machine_type/smithi/?since=yesterday",
                   "/runs/sha1/4f1c0e2/", "/runs/date/from/yesterday/to/today",
                   "/runs/queued/"]
        self.record(run_phase("filter_routes_get", base, lambda c, i: c.request(
            "GET", filters[i % len(filters)]), threads=T, seconds=a.seconds))
        indexes = ["/runs/branch/", "/runs/suite/", "/runs/machine_type/",
                   "/runs/branch/main/sha1/"]
        self.record(run_phase("value_index_get", base, lambda c, i: c.request(
            "GET", indexes[i % len(indexes)]), threads=T, seconds=a.seconds))
        self.record(run_phase("status_finish", base, lambda c, i: c.request(
            "PUT", f"/runs/{jobs[i][0]}/jobs/{jobs[i][1]}/",
            {"status": "pass" if i % 7 else "fail", "success": bool(i % 7)}),
            threads=T, requests=len(jobs)))
        if self.nodes_available(base):
            self.lock_phases(base)
        rng = random.Random(7)

        def mixed(c, i):
            r = rng.random()
            run, job = jobs[i % len(jobs)]
            if r < 0.6:
                return c.request("PUT", f"/runs/{run}/jobs/{job}/", {"name": run,
                                                                       "job_id": str(job)})
            if r < 0.8:
                return c.request("GET", f"/runs/{run}/")
            if r < 0.9:
                return c.request("GET", "/runs/?count=25")
            return c.request("GET", filters[i % len(filters)])
        self.mixed = mixed  # again in scale_out_phases
        self.record(run_phase("mixed", base, mixed, threads=T, seconds=a.seconds))

    def scale_out_phases(self, env: dict) -> None:
        """The mixed workload again, through nginx (nginx_paddles.conf, as tests/scaleout
        runs it) to one paddles instance and to two, and to the first instance directly,
        all in one run: in rounds, each phase a slice of every round, so that drift in the
        machine's speed falls on all three alike. Both instances are up throughout, each as
        `make bench` runs paddles (gunicorn_config.py's workers), on the same database."""
        sys.path.insert(0, str(REPO))
        from tests.scaleout.nginx import balancer, nginx_binary

        a = self.args
        if nginx_binary() is None:
            print("  (nginx not installed: scale-out phases skipped)", file=sys.stderr)
            return
        names = ("direct_1_instance_mixed", "nginx_1_instance_mixed",
                 "nginx_2_instances_mixed")
        parts: dict[str, list[PhaseResult]] = {name: [] for name in names}
        quiet = dict(env, PADDLES_LOG_LEVEL="warning")
        with tempfile.TemporaryDirectory(prefix="paddles-bench-nginx-") as tmp, \
                server.gunicorn(quiet) as (_a, port_a), server.gunicorn(quiet) as (_b, port_b):
            backends = [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"]
            with balancer(backends[:1], Path(tmp) / "one") as one, \
                    balancer(backends, Path(tmp) / "two") as two:
                bases = dict(zip(names, (f"http://{backends[0]}", one, two)))
                for _ in range(a.scale_rounds):
                    for name in names:
                        part = run_phase(name, bases[name], self.mixed, threads=a.threads,
                                         seconds=a.seconds)
                        self._print(part, f"  ({name[:-6]} round)")
                        parts[name].append(part)
        merged = {name: self.record(merge(name, found)) for name, found in parts.items()}
        one, two = merged["nginx_1_instance_mixed"], merged["nginx_2_instances_mixed"]
        if one.rps:
            self.scale_out = {"instances_1_rps": round(one.rps, 1),
                              "instances_2_rps": round(two.rps, 1),
                              "ratio_2_to_1": round(two.rps / one.rps, 2),
                              "nginx_cost_ratio": round(
                                  merged["direct_1_instance_mixed"].rps / one.rps, 2)}

    def check_summary(self, base: str) -> int:
        """The length of a run summary as sent plain (the size-matched floor answers as many
        bytes); checks once that the gzip answer is the same document."""
        c = Client(base)
        url = f"/runs/{self.runs[0]}/"
        plain, packed = c.request("GET", url, headers=IDENTITY)[1], c.request("GET", url)[1]
        if packed != plain:  # a server that does not gzip sends the same bytes
            assert gzip.decompress(packed) == plain, "the gzip summary is another document"
        print(f"  (run summary: {len(plain)} bytes, {len(packed)} as sent gzipped)",
              file=sys.stderr)
        return len(plain)

    def nodes_available(self, base: str) -> bool:
        c = Client(base)
        for n in range(50):
            status, _ = c.request("POST", "/nodes/", {
                "name": f"smithi{n:03d}.front.sepia.ceph.com", "machine_type": "smithi",
                "up": True, "ssh_pub_key": "ssh-ed25519 AAAA bench"})
            if status in (404, 405):
                print("  (no /nodes/ routes: lock phases skipped)", file=sys.stderr)
                return False
        return True

    def lock_phases(self, base: str) -> None:
        def lock_cycle(c, i):
            owner = f"bench{i % 1000}@teuthology"
            status, body = c.request("POST", "/nodes/lock_many/", {
                "count": 2, "locked_by": owner, "machine_type": "smithi",
                "description": "bench"})
            if status != 200:
                return status, body
            names = [n["name"] for n in json.loads(body)]
            return c.request("POST", "/nodes/unlock_many/", {"names": names,
                                                             "locked_by": owner})
        self.record(run_phase("lock_unlock_many", base, lock_cycle,
                              threads=self.args.threads, seconds=self.args.seconds))
        self.record(run_phase("lock_poll_get", base, lambda c, i: c.request(
            "GET", "/nodes/?machine_type=smithi|mira&up=1&locked=0&count=5"),
            threads=self.args.threads, seconds=self.args.seconds))

    def floor_phases(self, env: dict) -> dict[str, PhaseResult]:
        with floor_server(env) as (_proc, port):
            base = f"http://127.0.0.1:{port}"
            floors = {kind: self.record(run_phase(
                f"floor_wsgi_{kind}", base, work,
                threads=floor_threads(kind, self.args.threads),
                seconds=self.args.seconds)) for kind, work in FLOOR_WORK.items()}
            if self.summary_bytes:
                # the trivial app answering as many bytes as a run summary: what moving the
                # document alone costs the client, gunicorn and the kernel (not a target)
                floors["doc"] = self.record(run_phase(
                    "floor_wsgi_get_doc", base, lambda c, i: c.request(
                        "GET", f"/runs/?bytes={self.summary_bytes}"),
                    threads=self.args.threads, seconds=self.args.seconds))
        return floors

    def sql_floor(self, dsn: str) -> None:
        """The hot paths' SQL straight through psycopg2, one connection per thread."""
        import threading
        run = self.runs[0]

        def phase(name, statements):
            local = threading.local()

            def work(_c, i):
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = psycopg2.connect(dsn)
                with conn.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql, {"run": run, "job": str(i % self.args.jobs + 1)})
                        if cur.description:
                            cur.fetchall()
                conn.commit()
                return 200, b""
            self.record(run_phase(name, "http://127.0.0.1:1", work,
                                  threads=self.args.threads, seconds=self.args.seconds))
        # the heartbeat's own statement (services/jobs.py): one UPDATE, asynchronous commit
        phase("floor_sql_heartbeat", [
            "WITH touched_run AS (UPDATE runs SET updated = now(), version = version + 1 "
            "WHERE name = %(run)s AND set_config('synchronous_commit', 'off', true) IS NOT "
            "NULL RETURNING id) UPDATE jobs SET updated = now(), name = %(run)s WHERE "
            "run_id = (SELECT id FROM touched_run) AND job_id = %(job)s"])
        phase("floor_sql_run_summary", [
            "SELECT * FROM runs WHERE name = %(run)s",
            "SELECT * FROM jobs WHERE run_id = (SELECT id FROM runs WHERE name = %(run)s) "
            "ORDER BY sort_key"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="runs to create (default 4)")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per run (default 300)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="length of each timed phase (default 8)")
    parser.add_argument("--workers", default=os.environ.get("PADDLES_WORKERS", ""),
                        help="gunicorn workers (default: gunicorn_config.py's)")
    parser.add_argument("--seed-jobs", type=int, default=0,
                        help="first fill the database with this many jobs (paddles bench-seed)")
    parser.add_argument("--floor-seconds", type=float, default=3.0,
                        help="length of the GET and PUT floor phases measured between "
                             "phases; a phase's ratio is to the mean of the floors right "
                             "before and after it (0: none; the ratio is then to the floor "
                             "measured at the end; default 3)")
    parser.add_argument("--scale-rounds", type=int, default=2,
                        help="rounds of the scale-out phases (the mixed workload directly to "
                             "one instance, through nginx to one and to two), each phase "
                             "--seconds per round (0: none; default 2)")
    parser.add_argument("--phases", choices=("all", "reads", "writes"), default="all",
                        help="reads: the phases before issue 21 (create_jobs to mixed); "
                             "writes: job_create, job_status and mix16 only (about a "
                             "minute); all: both (default)")
    parser.add_argument("--write-jobs", type=int, default=150,
                        help="jobs to a run in job_create (default 150)")
    parser.add_argument("--write-runs", type=int, default=4,
                        help="runs each client posts in job_create (default 4)")
    parser.add_argument("--write-warmup", type=int, default=400,
                        help="creates before job_create, untimed, in runs of their own "
                             "(default 400)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument("-o", "--output", default=str(REPO / "bench/results/latest.json"))
    args = parser.parse_args(argv)

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    dbname = f"paddles_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    url = make_url(ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)
    env = dict(os.environ, PADDLES_DATABASE_URL=url)
    if args.workers:
        env["PADDLES_WORKERS"] = str(args.workers)
    paddles_bin = str(Path(sys.executable).parent / "paddles")
    bench = Bench(args)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        subprocess.run([paddles_bin, "migrate"], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        prepare_update_floor(dsn)
        if args.seed_jobs:
            print(f"seeding {args.seed_jobs} jobs ...", file=sys.stderr)
            subprocess.run([paddles_bin, "bench-seed", "--jobs", str(args.seed_jobs)],
                           env=env, check=True)
        print(f"paddles on PostgreSQL ({dbname}), {args.threads} client threads",
              file=sys.stderr)
        with floor_server(env) as (_floor, floor_port), \
                server.gunicorn(dict(env, PADDLES_LOG_LEVEL="warning")) as (_proc, port):
            if args.floor_seconds > 0:
                bench.floor_base = f"http://127.0.0.1:{floor_port}"
                bench.floor_between_phases()
            if args.phases in ("all", "reads"):
                bench.paddles_phases(f"http://127.0.0.1:{port}")
            if args.phases in ("all", "writes"):
                bench.write_phases(f"http://127.0.0.1:{port}")
            bench.floor_base = None
        if args.scale_rounds > 0 and bench.mixed is not None:  # it replays the mixed phase
            print("scale-out: one instance against two, behind nginx", file=sys.stderr)
            bench.scale_out_phases(env)
        print("floor", file=sys.stderr)
        floor = bench.floor_phases(env)
        if args.phases != "writes":
            bench.sql_floor(dsn)
    finally:
        if not args.keep_db:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()
    report(bench, floor, args)
    return 0


def merge(name: str, parts: list[PhaseResult]) -> PhaseResult:
    """One phase made of several timed slices: their requests over their summed time."""
    statuses: dict[int, int] = {}
    for part in parts:
        for code, n in part.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return PhaseResult(name, sum(p.requests for p in parts), sum(p.seconds for p in parts),
                       [ms for p in parts for ms in p.latencies_ms], statuses)


def floor_server(env: dict):
    """The floor app (bench/floor_app.py) under gunicorn_config.py, as paddles is."""
    return server.gunicorn(dict(env, PADDLES_LOG_LEVEL="warning"), "floor_app:application",
                           cwd=REPO / "bench")


# the floor app's requests: a GET, a heartbeat-shaped PUT, a job-sized PUT answered after
# one synchronously committed UPDATE (the floor of a durable write), and the same from 16
# clients (the mix16 phase's floor: at 8 or 16 clients a fixed reply is 5-8 times faster
# than any write on this machine, and the issue's 579/s for the mix is this floor)
_FLOOR_BODY = write_bodies.create_body("teuthology-2026-12-05_00:00:00-rados-main-distro-"
                                       "default-smithi", 1)
FLOOR_WORK = {
    "get": lambda c, i: c.request("GET", "/runs/"),
    "put": lambda c, i: c.request("PUT", "/runs/x/jobs/1/", {"name": "x", "job_id": "1"}),
    # one row for every request, as every write of a run updates its run row
    "update": lambda c, i: c.request("PUT", "/update/0", _FLOOR_BODY),
    "update16": lambda c, i: c.request("PUT", "/update/0", _FLOOR_BODY),
}
FLOOR_OF = {"heartbeat_put": "put", "status_running": "put", "status_finish": "put",
            "create_jobs": "put", "job_create": "update", "job_status": "update",
            "mix16": "update16"}
# phases judged as a share of their floor (ours / floor, the issue-21 goal: >= 0.6)
SHARE_PHASES = ("job_create", "job_status", "mix16")


def floor_threads(kind: str, threads: int) -> int:
    return 16 if kind == "update16" else threads


def _combined(name: str, *parts: PhaseResult) -> PhaseResult:
    statuses: dict[int, int] = {}
    for part in parts:
        for code, n in part.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return PhaseResult(name, sum(p.requests for p in parts), sum(p.seconds for p in parts),
                       [x for p in parts for x in p.latencies_ms], statuses)


def report(bench: Bench, floor: dict[str, PhaseResult], args) -> None:
    rows = []
    shares: list[str] = []
    print(f"\n{'phase':<22} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'5xx':>5} {'floor near':>11} {'ratio':>7} {'end ratio':>10}")
    for r in bench.results:
        d = r.as_dict()
        next_rps = ratio = end_ratio = ""
        if not r.name.startswith("floor"):
            end = floor[FLOOR_OF.get(r.name, "get")]
            d["floor_ratio_end"] = round(end.rps / r.rps, 2) if r.rps else None
            end_ratio = f"{d['floor_ratio_end']}x"
            adjacent = bench.adjacent.get(r.name)
            floor_rps = end.rps
            if adjacent:
                floor_rps = sum(f.rps for f in adjacent) / len(adjacent)
                d["floor_next_rps"] = [round(f.rps, 1) for f in adjacent]
                next_rps = f"{floor_rps:.1f}"
            d["floor_ratio"] = round(floor_rps / r.rps, 2) if r.rps else None
            ratio = f"{d['floor_ratio']}x"
            if r.name in SHARE_PHASES and floor_rps:
                d["floor_share"] = round(r.rps / floor_rps, 3)
                d["floor_kind"] = FLOOR_OF[r.name]
                shares.append(f"{r.name}: {d['floor_share']} of the {FLOOR_OF[r.name]} "
                              f"floor ({r.rps:.1f} / {floor_rps:.1f} req/s), p95 "
                              f"{d['p95_ms']} ms")
            if r.name == "run_summary_get_plain" and "doc" in floor and r.rps:
                d["floor_ratio_same_size_end"] = round(floor["doc"].rps / r.rps, 2)
        rows.append(d)
        print(f"{d['phase']:<22} {d['rps']:>9.1f} {d['p50_ms']:>8.2f} {d['p95_ms']:>8.2f} "
              f"{d['p99_ms']:>8.2f} {d['errors_5xx']:>5} {next_rps:>11} {ratio:>7} "
              f"{end_ratio:>10}")
    if shares:
        print("\nwrites as a share of their floor (issue 21 asks >= 0.6; mix16 p95 < 100 ms):")
        for line in shares:
            print("  " + line)
    if "doc" in floor:
        summary = next((r for r in rows if r["phase"] == "run_summary_get_plain"), None)
        if summary and "floor_ratio_same_size_end" in summary:
            print(f"\nrun_summary_get_plain against the trivial app answering as many bytes "
                  f"({bench.summary_bytes}): {summary['floor_ratio_same_size_end']}x")
    if bench.scale_out:
        s = bench.scale_out
        print(f"\nthrough nginx, mixed: one instance {s['instances_1_rps']} req/s, two "
              f"{s['instances_2_rps']} req/s ({s['ratio_2_to_1']}x); one instance directly "
              f"is {s['nginx_cost_ratio']}x one through nginx")
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "python": platform.python_version(),
                       "loadavg_at_start": bench.loadavg_at_start,
                       "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
           "settings": vars(args), "phases": rows, "scale_out": bench.scale_out,
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"load average at start {bench.loadavg_at_start}, at end "
          f"{out['machine']['loadavg_at_end']}")
    print(f"\nwritten {args.output}")


if __name__ == "__main__":
    sys.exit(main())
