"""A/B benchmark: two versions of paddles on the same machine, in the same run, interleaved.

A is a git revision (default `main`), exported with `git archive` to a temporary directory;
B is this working tree. Each gets its own throwaway PostgreSQL database, migrated and
filled by its own code (the same runs and jobs, over HTTP), and its own gunicorn started
with this tree's gunicorn_config.py; both servers stay up for the whole comparison. The
timed phases then alternate between the two sides, round after round (A B, then B A, ...),
so that whatever else loads the machine falls on both about equally. The write phases
(job_create, job_status: issue 21's, with teuthology's bodies, bench/write_bodies.py) write
new runs each round on each side. The report gives each
side's median over the rounds and the ratio B/A (req/s: above 1 is faster; p95: below 1 is
faster). Writes bench/results/ab.json.

    .venv/bin/python bench/ab.py                       # main vs the working tree
    .venv/bin/python bench/ab.py --rounds 5 --seconds 5 --a-ref 5f958cb
    .venv/bin/python bench/ab.py --a-ref HEAD --b-env PADDLES_THREADS=4   # a setting
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server
from loadgen import IDENTITY, Client, PhaseResult, run_phase
from run import ADMIN_URL, job_body
from write_bodies import Slots
import write_bodies

REPO = Path(__file__).resolve().parents[1]
FILTERS = ["/runs/branch/main/", "/runs/suite/rados/branch/main/", "/runs/status/running/",
           "/runs/machine_type/smithi/?since=yesterday", "/runs/sha1/4f1c0e2/",
           "/runs/date/from/yesterday/to/today", "/runs/queued/"]
INDEXES = ["/runs/branch/", "/runs/suite/", "/runs/machine_type/", "/runs/branch/main/sha1/"]


def export_revision(ref: str, into: Path) -> None:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


class Side:
    def __init__(self, label: str, tree: Path, admin, stack: contextlib.ExitStack,
                 extra_env: dict[str, str] | None = None):
        self.label, self.tree = label, tree
        self.db = f"paddles_ab_{label.lower()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db}"'))
        stack.callback(self._drop, admin)
        url = make_url(ADMIN_URL).set(database=self.db).render_as_string(hide_password=False)
        # the side's own code comes first on the path (the installed paddles is B's)
        self.env = dict(os.environ, PADDLES_DATABASE_URL=url, PYTHONPATH=str(tree),
                        PADDLES_LOG_LEVEL="warning")
        self.own = dict(extra_env or {})  # --a-env/--b-env
        self.env.update(self.own)  # may set the log level too
        self.base = ""

    def _drop(self, admin) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))

    def paddles(self, *argv: str) -> None:
        subprocess.run([sys.executable, "-c", "from paddles.commands import main; "
                        "import sys; sys.exit(main(sys.argv[1:]))", *argv],
                       env=self.env, cwd=self.tree, check=True, stderr=subprocess.DEVNULL)

    def start(self, stack: contextlib.ExitStack, workers: str) -> None:
        env = server_env(self.env, self.own, workers)
        _proc, port = stack.enter_context(server.gunicorn(env, cwd=self.tree))
        self.base = f"http://127.0.0.1:{port}"


def server_env(env: dict[str, str], own: dict[str, str], workers: str) -> dict[str, str]:
    """A side's server environment: `env` with PADDLES_WORKERS from --workers, unless the
    side's own variables (`own`, from --a-env/--b-env) set it: the side's own wins."""
    if workers and "PADDLES_WORKERS" not in own:
        return dict(env, PADDLES_WORKERS=workers)
    return dict(env)


def phases(runs: list[str], jobs: list[tuple[str, int]]) -> dict:
    def heartbeat(c, i):
        run, job = jobs[i % len(jobs)]
        return c.request("PUT", f"/runs/{run}/jobs/{job}/", {"name": run, "job_id": str(job)})

    def mixed_for(seed, _side=None):
        rng = random.Random(seed)

        def mixed(c, i):
            r = rng.random()
            run, job = jobs[i % len(jobs)]
            if r < 0.6:
                return c.request("PUT", f"/runs/{run}/jobs/{job}/",
                                 {"name": run, "job_id": str(job)})
            if r < 0.8:
                return c.request("GET", f"/runs/{run}/")
            if r < 0.9:
                return c.request("GET", "/runs/?count=25")
            return c.request("GET", FILTERS[i % len(FILTERS)])
        return mixed

    return {
        "heartbeat_put": lambda _r, _s: heartbeat,
        "run_summary_get": lambda _r, _s: lambda c, i: c.request(
            "GET", f"/runs/{runs[i % len(runs)]}/"),
        "run_summary_get_plain": lambda _r, _s: lambda c, i: c.request(
            "GET", f"/runs/{runs[i % len(runs)]}/", headers=IDENTITY),
        "job_list_get": lambda _r, _s: lambda c, i: c.request(
            "GET", f"/runs/{runs[i % len(runs)]}/jobs/"),
        "runs_list_get": lambda _r, _s: lambda c, i: c.request("GET", "/runs/?count=25"),
        "filter_routes_get": lambda _r, _s: lambda c, i: c.request("GET",
                                                               FILTERS[i % len(FILTERS)]),
        "value_index_get": lambda _r, _s: lambda c, i: c.request("GET", INDEXES[i % len(INDEXES)]),
        "mixed": mixed_for,
        **write_phases(),
    }


def write_phases(threads: int = 8) -> dict:
    """job_create: each client posts the jobs of a run of its own, one after another;
    job_status: those jobs `running`, then their final reports, a run's jobs from all
    clients at once (bench/run.py's phases of the same names)."""
    made: dict[tuple[int, str], tuple[list[str], Slots]] = {}

    def job_create(rnd, side):
        runs = [f"teuthology-ab{rnd}-rados-main-distro-default-smithi-w{t}"
                for t in range(threads)]
        owner = made[(rnd, side)] = (runs, Slots())
        return write_bodies.creates(lambda slot, job: (runs[slot % threads], job), owner[1])

    def job_status(rnd, side):
        runs, owner = made[(rnd, side)]
        count = {runs[slot % threads]: n for slot, n in owner.counts().items()}
        jobs = [(r, j) for r in runs for j in range(1, count.get(r, 0) + 1)]

        def work(c, i):
            k = i % (2 * len(jobs))
            run, job = jobs[k % len(jobs)]
            body = (write_bodies.running_body if k < len(jobs) else
                    write_bodies.finish_body)(run, job)
            return c.request("PUT", f"/runs/{run}/jobs/{job}/", body)
        return work
    return {"job_create": job_create, "job_status": job_status}


def fill(side: Side, runs: list[str], jobs: list[tuple[str, int]], threads: int
         ) -> PhaseResult:
    """The same runs on each side: create every job, then mark them running (and the nodes
    the write phases' targets name)."""
    client = Client(side.base)
    for n in range(write_bodies.NODE_COUNT):
        client.request("POST", "/nodes/", {"name": write_bodies.node_name(n),
                                           "machine_type": "smithi", "up": True})
    created = run_phase(f"create_jobs[{side.label}]", side.base, lambda c, i: c.request(
        "POST", f"/runs/{jobs[i][0]}/jobs/", job_body(*jobs[i])), threads=threads,
        requests=len(jobs))
    run_phase(f"status_running[{side.label}]", side.base, lambda c, i: c.request(
        "PUT", f"/runs/{jobs[i][0]}/jobs/{jobs[i][1]}/", {"status": "running"}),
        threads=threads, requests=len(jobs))
    return created


def summarise(samples: dict[str, dict[str, list[PhaseResult]]]) -> list[dict]:
    rows = []
    for phase, by_side in samples.items():
        row: dict = {"phase": phase}
        for label, results in by_side.items():
            row[label] = {
                "rps": round(statistics.median(r.rps for r in results), 1),
                "p50_ms": round(statistics.median(r.pct(50) for r in results), 2),
                "p95_ms": round(statistics.median(r.pct(95) for r in results), 2),
                "errors_5xx": sum(r.errors_5xx for r in results),
                "rounds_rps": [round(r.rps, 1) for r in results],
            }
        a, b = row["A"], row["B"]
        row["rps_ratio_b_a"] = round(b["rps"] / a["rps"], 2) if a["rps"] else None
        row["p95_ratio_b_a"] = round(b["p95_ms"] / a["p95_ms"], 2) if a["p95_ms"] else None
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a-ref", default="main", help="git revision for side A (main)")
    parser.add_argument("--runs", type=int, default=4, help="runs per side (default 4)")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per run (default 300)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="length of each timed phase (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    parser.add_argument("--phases", default="", help="comma-separated subset of the phases")
    parser.add_argument("--seed-jobs", type=int, default=0,
                        help="first fill each database with this many jobs (bench-seed)")
    parser.add_argument("--workers", default=os.environ.get("PADDLES_WORKERS", ""),
                        help="gunicorn workers per side (default: gunicorn_config.py's; "
                             "a side's own --a-env/--b-env PADDLES_WORKERS wins)")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for side A's server and commands only "
                             "(repeatable): compare settings, e.g. --a-env PADDLES_THREADS=4")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                        help="the same for side B")
    parser.add_argument("-o", "--output", default=str(REPO / "bench/results/ab.json"))
    args = parser.parse_args(argv)
    side_env = {}
    for label, items in (("A", args.a_env), ("B", args.b_env)):
        if any("=" not in item for item in items):
            parser.error(f"--{label.lower()}-env takes NAME=VALUE")
        side_env[label] = dict(item.split("=", 1) for item in items)

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    stamp = time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime())
    runs = [f"bench-{stamp}-rados-main-distro-default-smithi-{i}" for i in range(args.runs)]
    jobs = [(r, j) for r in runs for j in range(1, args.jobs + 1)]
    table = phases(runs, jobs)
    chosen = [p for p in (args.phases.split(",") if args.phases else table) if p]
    samples: dict[str, dict[str, list[PhaseResult]]] = {
        p: {"A": [], "B": []} for p in ["create_jobs", *chosen]}

    with tempfile.TemporaryDirectory(prefix="paddles-ab-") as tmp, \
            contextlib.ExitStack() as stack:
        stack.callback(admin.dispose)
        tree_a = Path(tmp)
        export_revision(args.a_ref, tree_a)
        sides = {"A": Side("A", tree_a, admin, stack, side_env["A"]),
                 "B": Side("B", REPO, admin, stack, side_env["B"])}
        for side in sides.values():
            side.paddles("migrate")
            if args.seed_jobs:
                print(f"[{side.label}] seeding {args.seed_jobs} jobs", file=sys.stderr)
                side.paddles("bench-seed", "--jobs", str(args.seed_jobs))
            side.start(stack, args.workers)
        print(f"A = {args.a_ref}, B = working tree; {args.threads} client threads",
              file=sys.stderr)
        for label in ("A", "B"):
            samples["create_jobs"][label].append(
                fill(sides[label], runs, jobs, args.threads))
        for rnd in range(args.rounds):
            for phase in chosen:
                order = ("A", "B") if (rnd + chosen.index(phase)) % 2 == 0 else ("B", "A")
                for label in order:
                    result = run_phase(phase, sides[label].base, table[phase](rnd, label),
                                       threads=args.threads, seconds=args.seconds)
                    samples[phase][label].append(result)
                    print(f"  round {rnd + 1} {phase:<18} {label} {result.rps:>8.1f} req/s "
                          f"p95 {result.pct(95):>7.2f} ms  {result.statuses}",
                          file=sys.stderr, flush=True)

    rows = summarise(samples)
    print(f"\n{'phase':<18} {'A req/s':>9} {'B req/s':>9} {'B/A':>6}   {'A p95':>8} "
          f"{'B p95':>8} {'B/A':>6}   5xx A/B")
    for row in rows:
        a, b = row["A"], row["B"]
        print(f"{row['phase']:<18} {a['rps']:>9.1f} {b['rps']:>9.1f} "
              f"{row['rps_ratio_b_a']:>6} {a['p95_ms']:>8.2f} {b['p95_ms']:>8.2f} "
              f"{row['p95_ratio_b_a']:>6}   {a['errors_5xx']}/{b['errors_5xx']}")
    out = {"a_ref": args.a_ref, "settings": vars(args), "phases": rows,
           "load_average": os.getloadavg(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
