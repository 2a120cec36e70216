"""Job writes under variants of the server's settings or schema, side by side (issue 21).

Each variant is paddles as deployed (gunicorn_config.py) with some environment variables
set (`--env LABEL:NAME=VALUE`) and some SQL run after `paddles migrate` (`--sql
LABEL:STATEMENT`, e.g. an index dropped). The first variant is the reference. Each round
gives every variant a fresh database, with the SQL applied, and a fresh gunicorn. The
variants take turns, round after round, so whatever else loads the machine falls on all
of them. Each round then runs, after a warm-up of creates:

- `create`: 8 clients, each posting its run's jobs one after another (bench/run.py's
  job_create);
- `status`: each of those jobs reported `running`, then finished (config + summary), a
  run's jobs from all clients at once (job_status).

The figures are medians over the rounds:
- req/s and p95;
- CPU per request (user + system, from /proc) of the server's processes, of PostgreSQL's
  and of the clients (this process);
- req/s as a ratio to the reference.

Identical rounds move about ±4% here, so 2 or 3 rounds show a change of 8% or more. Below
that, use `make bench-ab` or callgrind (bench/write_breakdown.py).

    .venv/bin/python bench/write_variants.py base threads1 --env threads1:PADDLES_THREADS=1
    .venv/bin/python bench/write_variants.py base nostatus \\
        --sql "nostatus:DROP INDEX ix_jobs_status; DROP INDEX ix_jobs_queue_status_priority"
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import server  # noqa: E402
import write_bodies  # noqa: E402
from loadgen import Client, run_phase  # noqa: E402
from write_bodies import Slots  # noqa: E402
from write_breakdown import create_database, drop_database  # noqa: E402
from write_layers import (CPU_KEYS, KINDS, _creates, _Meter, _posted,  # noqa: E402
                          _reports, load_options, print_table)


def _settings(items: list[str], variants: list[str], what: str) -> dict[str, list[str]]:
    """LABEL:VALUE items, by label (each label one of the variants)."""
    out: dict[str, list[str]] = {label: [] for label in variants}
    for item in items:
        label, sep, value = item.partition(":")
        if not sep or label not in out:
            raise SystemExit(f"{what} {item!r}: LABEL:VALUE with LABEL one of {variants}")
        out[label].append(value)
    return out


def one_round(label: str, env_items: list[str], sql: list[str], rnd: int, threads: int,
              jobs: int, warm: int) -> dict[str, dict[str, float]]:
    """A fresh database and server for the variant; its create and status figures."""
    from sqlalchemy import create_engine, text
    url = create_database()
    env = dict(os.environ, PADDLES_DATABASE_URL=url, PADDLES_LOG_LEVEL="warning")
    for item in env_items:
        name, _, value = item.partition("=")
        env[name] = value
    try:
        subprocess.run([str(Path(sys.executable).parent / "paddles"), "migrate"], env=env,
                       check=True, stderr=subprocess.DEVNULL)
        if sql:
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for statement in sql:
                    conn.execute(text(statement))
            engine.dispose()
        with server.gunicorn(env) as (proc, port):
            base = f"http://127.0.0.1:{port}"
            c = Client(base)
            for n in range(write_bodies.NODE_COUNT):  # the nodes the targets name
                c.request("POST", "/nodes/", {"name": write_bodies.node_name(n),
                                              "machine_type": "smithi", "up": True})
            run_phase("warm", base, _creates(label, f"{label}-warm", threads, Slots()),
                      threads=threads, requests=threads * warm)
            tag, made = f"{label}-r{rnd}", Slots()
            meter = _Meter(proc.pid)
            meter.run("create", base, _creates(label, tag, threads, made), threads=threads,
                      requests=threads * jobs)
            figures = {"create": meter.figures()}
            done = _posted(tag, threads, made)
            meter = _Meter(proc.pid)
            for body in (write_bodies.running_body, write_bodies.finish_body):
                meter.run("status", base, _reports(label, done, body), threads=threads,
                          requests=len(done))
            figures["status"] = meter.figures()
    finally:
        drop_database(url)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", metavar="LABEL",
                        help="the variants, the reference first")
    parser.add_argument("--env", action="append", default=[], metavar="LABEL:NAME=VALUE",
                        help="an environment variable of a variant's server (repeatable)")
    parser.add_argument("--sql", action="append", default=[], metavar="LABEL:STATEMENT",
                        help="SQL run on a variant's database after migrating (repeatable; "
                             "one statement each)")
    load_options(parser, rounds=2, jobs=500, warm=50, per="per variant")
    args = parser.parse_args(argv)
    if len(set(args.variants)) != len(args.variants) or any(
            label in ("floor", "") for label in args.variants):
        raise SystemExit("variants: distinct labels, none of them 'floor'")
    envs = _settings(args.env, args.variants, "--env")
    sqls = _settings(args.sql, args.variants, "--sql")
    rounds: dict[str, list[dict]] = {label: [] for label in args.variants}
    for rnd in range(args.rounds):
        order = args.variants if rnd % 2 == 0 else args.variants[::-1]
        for label in order:
            got = one_round(label, envs[label], sqls[label], rnd, args.threads, args.jobs,
                            args.warm)
            rounds[label].append(got)
            print(f"  round {rnd + 1} {label:<12} " + "   ".join(
                f"{kind} {got[kind]['rps']:7.1f} req/s "
                + " ".join(f"{k} {got[kind][k + '_cpu_ms']:.3f}" for k in CPU_KEYS)
                for kind in KINDS), file=sys.stderr, flush=True)
    reference = args.variants[0]
    table = {label: {kind: {key: round(statistics.median(r[kind][key] for r in runs), 3)
                            for key in runs[0][kind]}
                     for kind in KINDS} for label, runs in rounds.items()}
    for kind in KINDS:
        print_table(kind, "ratio", {label: (row[kind], row[kind]["rps"]
                                            / table[reference][kind]["rps"])
                                    for label, row in table.items()}, args.rounds)
    if args.output:
        Path(args.output).write_text(json.dumps({"rounds": rounds, "summary": table},
                                                indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
