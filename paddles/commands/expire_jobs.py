"""`paddles expire-jobs`: mark jobs nobody has reported on for too long as `dead`.

Jobs `running`, `waiting` or `unknown` whose last write (`updated`, or `posted` when it is
null) is older than --running minutes, and `queued` jobs older than --queued days, become
`dead`. Only the status changes. Their runs' counters and stored status are updated in the
same transaction (each run row locked, as job writes do). A time in the future is not stale.
Prints each expired job (RUN/JOB_ID/ old-status) and each run whose status changed.
"""
from __future__ import annotations

from ..serializers import wire_time
from ..services import jobs as job_service
from ._common import Progress, add_dry_run, dry_run_note, note, positive_number, transaction


def register(sub):
    parser = sub.add_parser("expire-jobs", help="mark stale running/waiting/queued jobs dead",
                            description=__doc__)
    parser.add_argument("-r", "--running", type=positive_number, default=30, metavar="MINUTES",
                        help="running/waiting/unknown jobs silent this long expire (default 30)")
    parser.add_argument("-q", "--queued", type=positive_number, default=14, metavar="DAYS",
                        help="queued jobs older than this expire (default 14)")
    add_dry_run(parser)
    return parser


def run(args, settings) -> int:
    with transaction(settings, dry_run=args.dry_run) as session:
        expired, changes = job_service.expire_stale_jobs(
            session, running_minutes=args.running, queued_days=args.queued,
            progress=Progress("expire-jobs: runs"))
    for job in expired:
        print(f"{job.run}/{job.job_id}/ {job.old_status} -> dead "
              f"(last update {wire_time(job.last_touch)})")
    for change in changes:
        print(f"run {change.run}: {change.old_status} -> {change.new_status}")
    runs = len({job.run for job in expired})
    verb = "would expire" if args.dry_run else "expired"
    note(f"{verb} {len(expired)} job(s) in {runs} run(s)")
    dry_run_note(args)
    return 0
