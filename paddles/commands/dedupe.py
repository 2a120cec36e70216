"""`paddles dedupe`: look for duplicate runs and jobs among runs named LIKE PATTERN.

Upstream paddles could store two runs with one name, or two jobs with one job_id in a run
(its check-then-insert raced), and its `dedupe` merged them. This server's schema has
unique constraints on run names and on (run, job_id), so such duplicates cannot be stored:
data imported from upstream must be deduplicated before it can be loaded at all. The command
remains so scripts keep working: it checks PATTERN (SQL LIKE, `%` matches everything) and
reports what it finds, which is always 0 duplicates on a database created by `paddles
migrate`. Exit code 1 if duplicates are found (a schema without those constraints).
"""
from __future__ import annotations

from ..services import runs as run_service
from ._common import add_dry_run, note, transaction


def register(sub):
    parser = sub.add_parser("dedupe", help="check for duplicate runs/jobs (none can exist)",
                            description=__doc__)
    parser.add_argument("pattern", metavar="PATTERN",
                        help="SQL LIKE pattern on run names, e.g. 'teuthology-2024-%%' or '%%'")
    add_dry_run(parser, help="accepted for compatibility; dedupe never changes anything")
    return parser


def run(args, settings) -> int:
    with transaction(settings, write=False) as session:
        report = run_service.find_duplicates(session, args.pattern)
    for name, n in report.duplicate_runs:
        print(f"duplicate run {name} ({n} rows)")
    for name, job_id, n in report.duplicate_jobs:
        print(f"duplicate job {name}/{job_id}/ ({n} rows)")
    note(f"{report.matching_runs} run(s) match {args.pattern!r}: "
         f"{len(report.duplicate_runs)} duplicate run name(s), "
         f"{len(report.duplicate_jobs)} duplicate job id(s); nothing to merge")
    if report.duplicate_runs or report.duplicate_jobs:
        note("duplicates found: this schema is missing its unique constraints; "
             "run `paddles migrate`, which cannot succeed until they are removed by hand")
        return 1
    return 0
