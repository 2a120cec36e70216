"""`paddles queue-stats`: per UTC day, jobs of the runs scheduled that day and how many
of them finished (pass or fail), for the last DAYS days including today.

Prints a table: DATE, JOBS, FINISHED, PERCENT (`-` for a day without jobs).
"""
from __future__ import annotations

from ..services import queue as queue_service
from ._common import positive_int, transaction


def register(sub):
    parser = sub.add_parser("queue-stats", help="per-day scheduled vs finished jobs",
                            description=__doc__)
    parser.add_argument("days", type=positive_int, metavar="DAYS", help="how many days back")
    return parser


def run(args, settings) -> int:
    with transaction(settings, write=False) as session:
        days = queue_service.get_queue_stats(session, args.days)
    print(f"{'DATE':<10}  {'JOBS':>8}  {'FINISHED':>8}  {'PERCENT':>7}")
    for day in days:
        pct = "-" if day.percent is None else f"{day.percent:.1f}%"
        print(f"{day.day.isoformat():<10}  {day.jobs:>8}  {day.finished:>8}  {pct:>7}")
    return 0
