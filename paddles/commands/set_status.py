"""`paddles set-status`: recompute every run's counters and status from its jobs.

The counters (`results`), the first-job `sha1`/`flavor`/`priority` and the stored status of
each run are compared with what its jobs say; runs that drifted (for example after manual
SQL or an import) are rewritten under a row lock. Prints each repaired run and what changed.
"""
from __future__ import annotations

from ..services import runs as run_service
from ._common import Progress, add_dry_run, dry_run_note, note, transaction


def register(sub):
    parser = sub.add_parser("set-status", help="recompute run counters and status from jobs",
                            description=__doc__)
    add_dry_run(parser)
    return parser


def run(args, settings) -> int:
    with transaction(settings, dry_run=args.dry_run) as session:
        changes = run_service.recompute_run_status(session, progress=Progress("set-status: runs"))
    for change in changes:
        print(f"{change.run}: " + "; ".join(change.details))
    note(f"{'would repair' if args.dry_run else 'repaired'} {len(changes)} run(s)")
    dry_run_note(args)
    return 0
