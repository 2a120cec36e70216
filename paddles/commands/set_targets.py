"""`paddles set-targets`: link jobs that have `targets` but no nodes to those nodes.

For every job with no linked node, each `targets` key (`user@host` or `host`) names a node;
missing nodes are created. A created node, or a linked one without a machine type, gets the
machine type its host-name prefix names (plana, mira, vps, burnupi, tala, saya, dubia;
vpm* is vps), else the job's own machine_type. Prints each job linked.
"""
from __future__ import annotations

from ..services import jobs as job_service
from ._common import Progress, add_dry_run, dry_run_note, note, transaction


def register(sub):
    parser = sub.add_parser("set-targets", help="link jobs to nodes from their targets",
                            description=__doc__)
    add_dry_run(parser)
    return parser


def run(args, settings) -> int:
    with transaction(settings, dry_run=args.dry_run) as session:
        links = job_service.link_job_targets(session, progress=Progress("set-targets: jobs"))
    for link in links:
        created = f" (created {', '.join(link.created)})" if link.created else ""
        print(f"{link.run}/{link.job_id}/: {', '.join(link.hosts)}{created}")
    nodes = len({h for link in links for h in link.created})
    verb = "would link" if args.dry_run else "linked"
    note(f"{verb} {len(links)} job(s), {nodes} new node(s)")
    dry_run_note(args)
    return 0
