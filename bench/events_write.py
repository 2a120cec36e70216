"""What recording events costs the job write path, alone and under concurrent writers.

Runs job writes through the services, each in its own committed transaction as a request
would (BEGIN IMMEDIATE on SQLite), on a fresh database: N job creations then N status
changes sequentially, then T threads changing job statuses at once. Each is done with
events recorded (as shipped) and with `record_event` replaced by a no-op, which is the
write path without events. On PostgreSQL the event-writing commits are serialised by the
advisory lock (docs/events.md), so the concurrent figure is the one to watch.

    .venv/bin/python bench/events_write.py                   # SQLite in a temp dir
    PADDLES_BENCH_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/events_write.py                # a throwaway database there
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from paddles import migrations  # noqa: E402
from paddles.db import begin_write, make_engine, make_session_factory  # noqa: E402
from paddles.services import events as event_service  # noqa: E402
from paddles.services import jobs as job_service  # noqa: E402


@contextmanager
def database(url: str | None):
    if not url:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"paddles_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write(sessions, fn, *args):
    with sessions.begin() as session:
        begin_write(session)
        fn(session, *args)


def sequential(sessions, n: int) -> tuple[float, float]:
    run = f"bench-{uuid.uuid4().hex[:8]}-rados-main-distro-default-smithi"
    started = time.perf_counter()
    for i in range(n):
        write(sessions, job_service.create_job, run, {"job_id": str(i), "status": "queued",
                                                      "description": f"d{i}"})
    created = time.perf_counter()
    for i in range(n):
        write(sessions, job_service.update_job, run, str(i), {"status": "running"})
    done = time.perf_counter()
    return (created - started) / n * 1000, (done - created) / n * 1000


def concurrent(sessions, threads: int, per_thread: int) -> float:
    runs = [f"bench-{uuid.uuid4().hex[:8]}-rados-main-distro-default-smithi"
            for _ in range(threads)]
    for run in runs:
        for i in range(per_thread):
            write(sessions, job_service.create_job, run, {"job_id": str(i), "status": "queued"})
    barrier = threading.Barrier(threads + 1)

    def work(run):
        barrier.wait()
        for i in range(per_thread):
            write(sessions, job_service.update_job, run, str(i), {"status": "running"})

    pool = [threading.Thread(target=work, args=(run,)) for run in runs]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with database(os.environ.get("PADDLES_BENCH_DATABASE_URL")) as url:
        migrations.upgrade(url)
        engine = make_engine(url, pool_size=args.threads + 2, max_overflow=0)
        sessions = make_session_factory(engine)
        real = event_service.record_event
        print(f"{engine.dialect.name}: {args.jobs} jobs; {args.threads} threads x "
              f"{args.jobs // args.threads} status changes")
        for label, fn in (("events off", lambda *a, **k: None), ("events on", real),
                          ("events off", lambda *a, **k: None), ("events on", real)):
            event_service.record_event = fn
            create_ms, update_ms = sequential(sessions, args.jobs)
            rate = concurrent(sessions, args.threads, args.jobs // args.threads)
            print(f"{label:>10}: create {create_ms:.2f} ms, status PUT {update_ms:.2f} ms "
                  f"(sequential, per transaction); concurrent status PUTs {rate:.0f}/s")
        event_service.record_event = real
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
