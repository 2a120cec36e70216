"""Instructions per request of each kind of request in the mix16 phase, in process, under
valgrind's callgrind (issue 21): a figure that repeats to about a percent on a machine
whose timings move by a third between identical runs.

The WSGI application is called directly (no HTTP server, no webtest), on a throwaway
PostgreSQL database, one request at a time. Each request is counted on its own (callgrind
zeroes its counters before it and dumps them after it) and each kind reports its median:

- create, running, finish: teuthology's job writes (bench/write_bodies.py), in a run of 60;
- heartbeat: a job PUT with only its name and job_id;
- run_document: `GET /runs/NAME/` of that run after 5 heartbeats to it (a run whose jobs
  run: its cached document is stale, 5 of its job renderings too), as mix16 reads it;
- run_list: `GET /runs/?count=25` after the same (31 runs);
- node_list: the lock poll `GET /nodes/?machine_type=smithi|mira&up=1&locked=0&count=5`.

Counts are of this process alone (Python, psycopg2, libpq), not of PostgreSQL's. Requests
ask for gzip, as teuthology's and pulpito's do.

    .venv/bin/python bench/mix_instructions.py                          # the working tree
    .venv/bin/python bench/mix_instructions.py --ref 747d2af --ref HEAD  # side by side

Each --ref is checked out into a temporary git worktree and imported from there; the
requests are this file's, whatever the revision. About 2 minutes per tree.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import write_bodies  # noqa: E402

# (kind, requests counted); in the order they run
KINDS = (("create", 60), ("running", 60), ("finish", 60), ("heartbeat", 60),
         ("run_document", 30), ("run_list", 30), ("node_list", 30))
ADMIN_URL = os.environ.get("PADDLES_BENCH_POSTGRES_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RUN = "teuthology-2026-12-07_00:00:00-rados-main-distro-default-smithi-m"
_ENV = {"SCRIPT_NAME": "", "SERVER_NAME": "bench", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "HTTP_ACCEPT_ENCODING": "gzip, deflate", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "CONTENT_TYPE": "application/json"}


def inner(url: str) -> None:
    """Runs under callgrind: os.getppid() zeroes the counters, os.getpgrp() dumps them
    (--zero-before/--dump-before), around each counted request."""
    from paddles.app import make_app
    from paddles.settings import load_settings
    app = make_app(load_settings(environ={}, database_url=url))

    def call(method: str, path: str, body: dict | None = None, query: str = "") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        environ = dict(_ENV, REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query,
                       CONTENT_LENGTH=str(len(data)), **{"wsgi.input": io.BytesIO(data)})
        status: list[str] = []
        b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        if status[0][:1] not in "23":
            raise SystemExit(f"{method} {path}: {status[0]}")

    def counted(method: str, path: str, body: dict | None = None, query: str = "") -> None:
        os.getppid()
        call(method, path, body, query)
        os.getpgrp()

    for n in range(write_bodies.NODE_COUNT):
        call("POST", "/nodes/", {"name": write_bodies.node_name(n), "machine_type": "smithi",
                                 "up": True, "locked": False})
    for r in range(30):  # other runs, for the run list (and every path warmed)
        other = f"{RUN}-{r}"
        for job in (1, 2):
            call("POST", f"/runs/{other}/jobs/", write_bodies.create_body(other, job))
            call("PUT", f"/runs/{other}/jobs/{job}/", write_bodies.running_body(other, job))
            call("PUT", f"/runs/{other}/jobs/{job}/", write_bodies.finish_body(other, job))
            call("PUT", f"/runs/{other}/jobs/{job}/", {"name": other, "job_id": str(job)})
    jobs = range(1, 61)
    for job in jobs:
        counted("POST", f"/runs/{RUN}/jobs/", write_bodies.create_body(RUN, job))
    for job in jobs:
        counted("PUT", f"/runs/{RUN}/jobs/{job}/", write_bodies.running_body(RUN, job))
    for job in jobs:
        counted("PUT", f"/runs/{RUN}/jobs/{job}/", write_bodies.finish_body(RUN, job))
    for job in jobs:
        counted("PUT", f"/runs/{RUN}/jobs/{job}/", {"name": RUN, "job_id": str(job)})
    beats = iter(range(10**6))
    reads = (("/runs/" + RUN + "/", ""), ("/runs/", "count=25"),
             ("/nodes/", "machine_type=smithi|mira&up=1&locked=0&count=5"))
    for path, query in reads:
        for _ in range(30):
            for _ in range(5):
                job = next(beats) % len(jobs) + 1
                call("PUT", f"/runs/{RUN}/jobs/{job}/", {"name": RUN, "job_id": str(job)})
            counted("GET", path, query=query)

def measure(tree: Path) -> dict[str, int]:
    """Median instructions per request of each kind, with paddles imported from `tree`."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"paddles_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    env = dict(os.environ, PADDLES_DATABASE_URL=url, PYTHONPATH=str(tree))
    try:  # migrated by the tree's own `paddles migrate`
        subprocess.run([sys.executable, "-c", "from paddles.commands import main; main()",
                        "migrate"], env=env, check=True, stderr=subprocess.DEVNULL)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cg.out")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            "--zero-before=getppid", "--dump-before=getpgrp",
                            "--dump-instr=no", "--dump-line=no", sys.executable, __file__,
                            "--inner", url], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            totals = _dump_totals(out)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    want = sum(n for _, n in KINDS)
    if len(totals) < want:
        raise RuntimeError(f"callgrind gave {len(totals)} dumps, wanted {want}")
    out_: dict[str, int] = {}
    for kind, n in KINDS:
        out_[kind], totals = round(statistics.median(totals[:n])), totals[n:]
    return out_


def _dump_totals(out: str) -> list[int]:
    parts = sorted((p for p in glob.glob(out + ".*") if re.search(r"\.\d+$", p)),
                   key=lambda p: int(p.rsplit(".", 1)[1]))
    totals = []
    for path in parts:
        found = re.search(r"^(?:summary|totals): (\d+)", Path(path).read_text(errors="replace"),
                          re.M)
        totals.append(int(found.group(1)) if found else 0)
    return totals


@contextlib.contextmanager
def checked_out(ref: str | None) -> Iterator[Path]:
    """The tree of `ref` in a temporary worktree (None: this working tree)."""
    if ref is None:
        yield REPO
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree),
                        ref], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tree)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", action="append", default=[],
                        help="a git revision to count (repeatable; default: the working tree)")
    parser.add_argument("-o", "--output", help="also write the counts as JSON here")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        inner(args.inner)
        return 0
    refs: list[str | None] = list(args.ref) or [None]
    results: dict[str, dict[str, int]] = {}
    for ref in refs:
        label = ref or "working tree"
        print(f"counting {label} ...", file=sys.stderr)
        with checked_out(ref) as tree:
            results[label] = measure(tree)
    labels = list(results)
    print(f"{'request':<14}" + "".join(f"{label:>16}" for label in labels))
    for kind, _ in KINDS:
        print(f"{kind:<14}" + "".join(f"{results[label][kind] / 1e6:>15.2f}M"
                                      for label in labels))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
