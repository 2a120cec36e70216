"""`paddles bench-seed --jobs N`: fill the database with synthetic teuthology history, fast.

For benchmarks: shows how latency grows with data. PostgreSQL loads jobs with COPY; the
tables are then vacuumed and analysed so the planner sees the data it will serve.
"""
from __future__ import annotations

from ..db import make_engine
from ..services import seed
from ._common import Progress, note, positive_int, transaction


def register(sub):
    parser = sub.add_parser("bench-seed", help="fill the database with synthetic runs and jobs",
                            description=__doc__)
    parser.add_argument("--jobs", type=positive_int, required=True, help="jobs to create")
    parser.add_argument("--jobs-per-run", type=positive_int, default=300,
                        help="jobs per run (default 300)")
    parser.add_argument("--days", type=positive_int, default=365,
                        help="spread runs over this many past days (default 365)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return parser


def run(args, settings) -> int:
    with transaction(settings) as session:
        runs = seed.seed_jobs(session, args.jobs, jobs_per_run=args.jobs_per_run,
                              days=args.days, seed=args.seed,
                              progress=Progress("bench-seed"))
    note(f"created {runs} runs with {args.jobs} jobs")
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        seed.refresh_planner_statistics(engine)
    finally:
        engine.dispose()
    note("planner statistics refreshed (VACUUM ANALYZE)")
    return 0
