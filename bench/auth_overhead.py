"""What authentication costs per request: the same requests in-process (no HTTP), auth off
and on (Bearer token), on SQLite and PostgreSQL. Prints median and p95 microseconds.

    .venv/bin/python bench/auth_overhead.py [--requests 2000] [--postgres URL]

A fresh database each: SQLite in a temporary directory, and on PostgreSQL a throwaway
database on the server of --postgres (default the local one) that is dropped at the end.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from webob import Request

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paddles import migrations
from paddles.app import make_app
from paddles.db import make_engine, make_session_factory
from paddles.services import tokens
from paddles.settings import load_settings

BLOCK = 50
RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"


def measure(url: str, n: int) -> dict:
    migrations.upgrade(url)
    engine = make_engine(url, pool_size=2, max_overflow=0)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        _token, secret = tokens.create_token(session, "bench", ["read", "write"])
    base = load_settings(environ={}, database_url=url)
    apps = {"off": make_app(base, session_factory=sessions),
            "on": make_app(dataclasses.replace(base, auth_enabled=True),
                           session_factory=sessions)}
    headers = {"Authorization": f"Bearer {secret}"}
    body = json.dumps({"job_id": "1", "status": "running"}).encode()
    Request.blank(f"/runs/{RUN}/jobs/", method="POST", body=body,
                  headers=headers).get_response(apps["on"])
    out = {}
    for label, (method, path, data) in {
            "GET job": ("GET", f"/runs/{RUN}/jobs/1/", None),
            "PUT job": ("PUT", f"/runs/{RUN}/jobs/1/", json.dumps({"status": "running"}))}.items():
        times: dict[str, list[float]] = {"off": [], "on": []}
        # small alternating blocks, so both modes see the same machine load
        for block in range(2 * max(1, n // BLOCK)):
            mode = ("off", "on")[block % 2]
            for _ in range(BLOCK):
                req = Request.blank(path, method=method, headers=headers,
                                    body=data.encode() if data else b"")
                started = time.perf_counter()
                resp = req.get_response(apps[mode])
                times[mode].append((time.perf_counter() - started) * 1e6)
                assert resp.status_int == 200, resp.body
        for mode, values in times.items():
            values.sort()
            out[f"{label} auth {mode}"] = (statistics.median(values),
                                           values[int(len(values) * 0.95)])
    with sessions() as session:  # the lookup alone, as the middleware makes it
        lookups = []
        for _ in range(n):
            started = time.perf_counter()
            with sessions() as session:
                assert tokens.authenticate(session, secret) is not None
            lookups.append((time.perf_counter() - started) * 1e6)
        lookups.sort()
        out["token lookup"] = (statistics.median(lookups), lookups[int(len(lookups) * 0.95)])
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--postgres",
                        default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.requests)
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"paddles_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        results["postgresql"] = measure(url, args.requests)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    for backend, rows in results.items():
        for label, (median, p95) in rows.items():
            print(f"{backend:10} {label:18} median {median:7.0f} us  p95 {p95:7.0f} us")


if __name__ == "__main__":
    main()
