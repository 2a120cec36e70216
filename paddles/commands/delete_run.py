"""`paddles delete-run`: delete one run and all its jobs (and their node links).

The nodes themselves stay. Exit code 1 if no run has that name.
"""
from __future__ import annotations

from ..services import runs as run_service
from ._common import add_dry_run, dry_run_note, transaction


def register(sub):
    parser = sub.add_parser("delete-run", help="delete a run and its jobs", description=__doc__)
    parser.add_argument("name", metavar="NAME", help="the exact run name")
    add_dry_run(parser)
    return parser


def run(args, settings) -> int:
    with transaction(settings, dry_run=args.dry_run) as session:
        jobs = run_service.delete_run_and_jobs(session, args.name)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} run {args.name} and {jobs} job(s)")
    dry_run_note(args)
    return 0
