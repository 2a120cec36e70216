"""How far a job write is from the floor, layer by layer (issue 21).

Three servers under gunicorn_config.py side by side, on one throwaway database, driven in
turn by the same 8 clients with the same teuthology bodies:

- floor: bench/floor_app.py, one synchronously committed UPDATE per request (the body read
  and dropped), the denominator of `make bench`'s shares;
- services: bench/services_app.py, the body parsed and the job written by paddles' own
  rules (schemas.runs.parse_job_body, services.jobs.create_job and update_job: the same
  SQL as paddles), with none of the web framework (no middleware, Pecan, hooks, renderer,
  cache, metrics);
- paddles: paddles.wsgi:application, as deployed.

Each round measures, for each of the three in turn: `create`, each client posting its own
run's jobs one after another (as bench/run.py's job_create phase does), then `status`,
every job just created reported `running` and then finished (config + summary), the jobs
of a run from all clients at once (bench/run.py's job_status). The floor gets the same
requests and bodies on its one-UPDATE path. A machine that speeds up or slows down moves
all three; the figures are the medians over rounds of req/s, of the share of the same
round's floor, and of CPU per request (user + system, from /proc) of the server's
processes, of PostgreSQL's and of this process (the clients). The gap between services
and paddles is what the framework costs under load; the gap between the floor and
services is what paddles' rules, SQLAlchemy, psycopg2 and PostgreSQL's work cost.

    .venv/bin/python bench/write_layers.py    # 3 rounds, 8 clients x 150 jobs (about 1 min)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import server  # noqa: E402
import write_bodies  # noqa: E402
from floor_app import prepare_update_floor  # noqa: E402
from loadgen import Client, run_phase  # noqa: E402
from write_bodies import Slots  # noqa: E402
from write_breakdown import (RUN, create_database, drop_database, postgres_cpu,  # noqa: E402
                             proc_cpu)

LAYERS = ("floor", "services", "paddles")
KINDS = ("create", "status")
CPU_KEYS = ("server", "postgres", "clients")
APPS = {"floor": ("floor_app:application", BENCH),
        "services": ("services_app:application", BENCH),
        "paddles": ("paddles.wsgi:application", REPO)}


def _cpu_now(master: int) -> dict[str, float]:
    return {"server": sum(map(proc_cpu, [master, *server.worker_pids(master)])),
            "postgres": postgres_cpu(), "clients": proc_cpu(os.getpid())}


def _floor_route(run: str, job: int) -> tuple[str, str]:
    return "PUT", "/update/0"  # the floor app's one UPDATE, whatever the job


def _run_of(tag: str, threads: int):
    """Each client's creates go to a run of its own."""
    return lambda slot, job: (f"{RUN}-{tag}-c{slot % threads}", job)


def _creates(layer: str, tag: str, threads: int, made: Slots):
    """The request each client sends next: a create in its own run (the floor: the same
    body to its one-UPDATE path)."""
    return write_bodies.creates(_run_of(tag, threads), made,
                                _floor_route if layer == "floor" else write_bodies.jobs_route)


def _posted(tag: str, threads: int, made: Slots) -> list[tuple[str, int]]:
    return write_bodies.posted(_run_of(tag, threads), made)


def _reports(layer: str, jobs: list[tuple[str, int]], body):
    """A report (`body(run, job_id)`) of each job in turn (the floor: to its one UPDATE)."""
    return write_bodies.reports(jobs, body,
                                _floor_route if layer == "floor" else write_bodies.job_route)


class _Meter:
    """CPU per request (ms) of a server's processes, PostgreSQL's and this process's, and
    req/s, p95 and errors, over one or more load phases run back to back."""

    def __init__(self, master: int):
        self.master, self.results = master, []
        self.before, self.start = _cpu_now(master), time.perf_counter()

    def run(self, *args, **kwargs):
        self.results.append(run_phase(*args, **kwargs))

    def figures(self) -> dict[str, float]:
        elapsed, after = time.perf_counter() - self.start, _cpu_now(self.master)
        n = sum(r.requests for r in self.results)
        latencies = sorted(ms for r in self.results for ms in r.latencies_ms)
        return {"rps": n / elapsed, "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
                "errors": sum(v for r in self.results for k, v in r.statuses.items()
                              if k != 200),
                **{f"{k}_cpu_ms": (after[k] - self.before[k]) / n * 1000 for k in after}}


def measure(url: str, rounds: int, threads: int, jobs: int, warm: int) -> dict:
    from sqlalchemy.engine import make_url
    env = dict(os.environ, PADDLES_DATABASE_URL=url, PADDLES_LOG_LEVEL="warning")
    prepare_update_floor(make_url(url).set(drivername="postgresql")
                         .render_as_string(hide_password=False))
    figures: dict[str, dict[str, list[dict]]] = {kind: {layer: [] for layer in LAYERS}
                                                 for kind in KINDS}
    with contextlib.ExitStack() as stack:
        bases, masters = {}, {}
        for layer in LAYERS:
            app, cwd = APPS[layer]
            proc, port = stack.enter_context(server.gunicorn(env, app, cwd=cwd))
            bases[layer], masters[layer] = f"http://127.0.0.1:{port}", proc.pid
        c = Client(bases["paddles"])
        for n in range(write_bodies.NODE_COUNT):  # the nodes the targets name
            c.request("POST", "/nodes/", {"name": write_bodies.node_name(n),
                                          "machine_type": "smithi", "up": True})
        for layer in LAYERS:
            run_phase("warm", bases[layer], _creates(layer, f"{layer}-warm", threads, Slots()),
                      threads=threads, requests=threads * warm)
        for r in range(rounds):
            for layer in LAYERS:
                tag, made = f"{layer}-r{r}", Slots()
                meter = _Meter(masters[layer])
                meter.run(layer, bases[layer], _creates(layer, tag, threads, made),
                          threads=threads, requests=threads * jobs)
                figures["create"][layer].append(meter.figures())
                done = _posted(tag, threads, made)
                meter = _Meter(masters[layer])
                for body in (write_bodies.running_body, write_bodies.finish_body):
                    meter.run(layer, bases[layer], _reports(layer, done, body),
                              threads=threads, requests=len(done))
                figures["status"][layer].append(meter.figures())
                for kind in KINDS:
                    row = figures[kind][layer][-1]
                    print(f"  round {r + 1} {kind:<6} {layer:<9} {row['rps']:7.1f} req/s  "
                          + "  ".join(f"{k} {row[k + '_cpu_ms']:.3f}" for k in CPU_KEYS)
                          + " ms CPU/request", file=sys.stderr)
    return figures


def summary(figures: dict[str, list[dict]]) -> dict[str, dict]:
    floors = [row["rps"] for row in figures["floor"]]
    out = {}
    for layer, rows in figures.items():
        out[layer] = {key: round(statistics.median(row[key] for row in rows), 3)
                      for key in rows[0]}
        out[layer]["share"] = round(statistics.median(
            row["rps"] / floor for row, floor in zip(rows, floors)), 3)
    return out


def load_options(parser: argparse.ArgumentParser, *, rounds: int, jobs: int, warm: int,
                 per: str) -> None:
    """The options of the write load: rounds, clients, creates, warm-up, JSON output."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds (default {rounds})")
    parser.add_argument("--threads", type=int, default=8, help="clients (default 8)")
    parser.add_argument("--jobs", type=int, default=jobs,
                        help=f"creates per client {per} per round (default {jobs})")
    parser.add_argument("--warm", type=int, default=warm,
                        help=f"creates per client {per} before the timed ones (default {warm})")
    parser.add_argument("-o", "--output", help="also write the figures as JSON here")


def print_table(kind: str, measure: str, rows: dict[str, tuple[dict, float]],
                rounds: int) -> None:
    """One phase's medians: each row's figures and its `measure` (share, ratio)."""
    print(f"\n{kind:<14} {'req/s':>8} {measure:>6} {'p95 ms':>7} {'server':>7} "
          f"{'postgres':>9} {'clients':>8}   (medians of {rounds} rounds; CPU ms per request)")
    for label, (row, value) in rows.items():
        print(f"  {label:<12} {row['rps']:>8.1f} {value:>6.3f} {row['p95_ms']:>7.1f} "
              f"{row['server_cpu_ms']:>7.3f} {row['postgres_cpu_ms']:>9.3f} "
              f"{row['clients_cpu_ms']:>8.3f}"
              + (f"  ({row['errors']:.0f} errors)" if row["errors"] else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    load_options(parser, rounds=3, jobs=150, warm=20, per="per layer")
    args = parser.parse_args(argv)
    url = create_database()
    try:
        figures = measure(url, args.rounds, args.threads, args.jobs, args.warm)
    finally:
        drop_database(url)
    tables = {kind: summary(figures[kind]) for kind in KINDS}
    for kind, table in tables.items():
        print_table(kind, "share", {layer: (row, row["share"]) for layer, row in table.items()},
                    args.rounds)
    if args.output:
        Path(args.output).write_text(json.dumps({"rounds": figures, "summary": tables},
                                                indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
