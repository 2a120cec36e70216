"""Per-request cost in-process, one client, A/B: a git revision (default main) against the
working tree, on PostgreSQL, rounds interleaved (A B, B A, ...).

No HTTP server and no concurrency: each round runs a fresh Python process that builds the
app of its side (webtest), and times N requests of each kind on a 300-job run. Prints the
median per request of each side over the rounds, and B/A.

    .venv/bin/python bench/inprocess.py --rounds 3 -n 200
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(url: str, n: int) -> dict:
    """Runs in the side's own tree (its paddles first on the path)."""
    import dataclasses

    import webtest

    from paddles.app import make_app
    from paddles.settings import Settings, load_settings
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import job_body

    settings = load_settings(environ={}, database_url=url)
    app = webtest.TestApp(make_app(settings))
    run = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"
    if app.get(f"/runs/{run}/", status="*").status_int == 404:
        for j in range(1, 301):
            app.post(f"/runs/{run}/jobs/", json.dumps(job_body(run, j)))
    kinds = {
        "GET /runs/NAME/": lambda i: app.get(f"/runs/{run}/"),
        "GET /runs/NAME/jobs/": lambda i: app.get(f"/runs/{run}/jobs/"),
        "PUT heartbeat": lambda i: app.put(f"/runs/{run}/jobs/{i % 300 + 1}/",
                                           json.dumps({"name": run, "job_id": str(i % 300 + 1)})),
        "GET /runs/": lambda i: app.get("/runs/?count=25"),
    }
    if any(f.name == "response_cache_size" for f in dataclasses.fields(Settings)):
        uncached = webtest.TestApp(make_app(dataclasses.replace(settings,
                                                                response_cache_size=0)))
        etag = app.get(f"/runs/{run}/").headers["ETag"]
        kinds["GET /runs/NAME/ uncached"] = lambda i: uncached.get(f"/runs/{run}/")
        kinds["GET /runs/NAME/ If-None-Match"] = lambda i: app.get(
            f"/runs/{run}/", headers={"If-None-Match": etag}, status=304)
    out = {}
    for kind, fn in kinds.items():
        if kind.startswith("GET /runs/NAME/ If"):  # the run's tag after the heartbeats
            etag = app.get(f"/runs/{run}/").headers["ETag"]
        for i in range(20):
            fn(i)
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        out[kind] = (time.perf_counter() - start) / n * 1000
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a-ref", default="main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=200, help="requests of each kind per round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n)))
        return 0

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ab import export_revision
    from run import ADMIN_URL

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    results: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    with tempfile.TemporaryDirectory(prefix="paddles-inproc-") as tmp, \
            contextlib.ExitStack() as stack:
        export_revision(args.a_ref, Path(tmp))
        trees, urls = {"A": Path(tmp), "B": REPO}, {}
        for label in trees:
            db = f"paddles_inproc_{label.lower()}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            stack.callback(lambda db=db: admin.connect().execute(
                text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')))
            urls[label] = make_url(ADMIN_URL).set(database=db).render_as_string(
                hide_password=False)
            subprocess.run([sys.executable, "-c", "from paddles import migrations; import sys; "
                            "migrations.upgrade(sys.argv[1])", urls[label]],
                           cwd=trees[label], env={"PYTHONPATH": str(trees[label])},
                           check=True, capture_output=True)
        for rnd in range(args.rounds):
            for label in (("A", "B") if rnd % 2 == 0 else ("B", "A")):
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--worker", urls[label],
                     "-n", str(args.n)], cwd=trees[label],
                    env={"PYTHONPATH": str(trees[label]), "PATH": "/usr/bin:/bin"},
                    check=True, capture_output=True, text=True)
                for kind, ms in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    results[label].setdefault(kind, []).append(ms)
                print(f"  round {rnd + 1} {label} done", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1), file=sys.stderr)
    print(f"\n{'request':<32} {'A ms':>8} {'B ms':>8} {'B/A':>6}")
    for kind in results["B"]:
        b = statistics.median(results["B"][kind])
        a_list = results["A"].get(kind) or results["A"].get(kind.split(" uncached")[0])
        a = statistics.median(a_list) if a_list and "If-None" not in kind else None
        print(f"{kind:<32} {a if a is None else round(a, 2)!s:>8} {b:>8.2f} "
              f"{'' if a is None else round(b / a, 2)!s:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
