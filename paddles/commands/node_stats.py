"""`paddles node-stats`: JSON list of finished jobs of the last DAYS days and their nodes.

One object per job with status pass/fail/dead and a `started` time, posted within the last
DAYS days (oldest first): `job` (RUN/JOB_ID), `status`, `suite`, `nodes` (names),
`duration` (as the job reported it, s), `runtime` (updated - started, s) and `waited`
(runtime - duration, s; null when a value is missing), `description`.
"""
from __future__ import annotations

import json

from ..services import nodes as node_service
from ._common import positive_int, transaction


def register(sub):
    parser = sub.add_parser("node-stats", help="per-job node usage of the last days (JSON)",
                            description=__doc__)
    parser.add_argument("days", type=positive_int, metavar="DAYS", help="how many days back")
    parser.add_argument("-m", "--machine-type", help="only jobs of this machine type")
    return parser


def run(args, settings) -> int:
    with transaction(settings, write=False) as session:
        stats = node_service.get_node_stats(session, args.days, args.machine_type)
    print(json.dumps(stats, indent=2))
    return 0
