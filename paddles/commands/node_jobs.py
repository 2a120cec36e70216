"""`paddles node-jobs`: the latest jobs that ran on a node, newest `updated` first.

NODE is a node name or a prefix of exactly one node name. Prints RUN/JOB_ID/ per line.
Exit code 1 if no node, or more than one, matches.
"""
from __future__ import annotations

from ..services import nodes as node_service
from ._common import note, positive_int, transaction


def register(sub):
    parser = sub.add_parser("node-jobs", help="list a node's latest jobs", description=__doc__)
    parser.add_argument("node", metavar="NODE", help="node name or unique name prefix")
    parser.add_argument("-c", "--job-count", type=positive_int, default=10, metavar="N",
                        help="how many jobs (default 10)")
    return parser


def run(args, settings) -> int:
    with transaction(settings, write=False) as session:
        name, jobs = node_service.list_node_jobs(session, args.node, args.job_count)
    note(f"{name}: latest {len(jobs)} job(s)")
    for run_name, job_id, _updated in jobs:
        print(f"{run_name}/{job_id}/")
    return 0
