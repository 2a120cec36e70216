"""`paddles reparse`: re-derive user, scheduled, suite, branch, machine_type from run names.

Each run name is parsed again (the rules of the run-name parser, with the configured time
zone) and the fields that differ are rewritten; each change is printed. Two cases are kept
as they are: a suite, branch or machine_type that one of the run's jobs has reported (job
writes copy those onto the run, repairing what the name parser gets wrong), and the
`scheduled` time of a name without a valid timestamp (it is the run's `posted` time).
"""
from __future__ import annotations

from ..serializers import wire_time
from ..services import runs as run_service
from ._common import Progress, add_dry_run, dry_run_note, note, transaction


def register(sub):
    parser = sub.add_parser("reparse", help="re-derive run fields from run names",
                            description=__doc__)
    add_dry_run(parser)
    return parser


def _show(value) -> str:
    return repr(wire_time(value)) if hasattr(value, "tzinfo") else repr(value)


def run(args, settings) -> int:
    with transaction(settings, dry_run=args.dry_run) as session:
        rewrites = run_service.reparse_run_names(session, timezone=settings.timezone,
                                                 progress=Progress("reparse: runs"))
    for rewrite in rewrites:
        print(f"{rewrite.run}: " + "; ".join(f"{attr} {_show(old)} -> {_show(new)}"
                                             for attr, (old, new) in rewrite.changes.items()))
    note(f"{'would rewrite' if args.dry_run else 'rewrote'} {len(rewrites)} run(s)")
    dry_run_note(args)
    return 0
