"""The bodies teuthology writes, shaped for the write benchmarks (bench/run.py's job_create,
job_status and mix16 phases, bench/write_breakdown.py).

- `create_body`: what `teuthology-schedule` and the dispatcher report for a new job: the
  whole job config (description, overrides, roles, tasks, ...), about 2.5 KB with
  `targets`, three `user@host: host key` entries (hosts among NODE_COUNT smithi nodes).
- `running_body`: the status change a worker reports when the job starts.
- `finish_body`: what a worker reports at the end (teuthology's report.try_push_job_info
  with the job config plus the summary): the config again, `status` pass or fail,
  `success`, `duration`, and for a failure `failure_reason`.

Each call builds a new body: nothing is shared between two of them, so none is copied.

And the load functions (loadgen's `work(client, i)`) that send them as teuthology does:

- `creates(run_of, owner)`: each client thread posts the jobs of its runs one after another,
  as teuthology-schedule does; `owner` (Slots) numbers the clients and their creates, and
  `posted(run_of, owner)` lists what they posted, a run's jobs together and in order;
- `reports(jobs, body)`: a report of each job of the list in turn.

`route` sends them elsewhere (the floor app's one-UPDATE path): (run, job_id) -> (method,
path).
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

NODE_COUNT = 50
HOST_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3oN6kKJt6wV5vWcXo4Pz0PqYwGk8XbZ1x2r5"
            "sdfq9T")
SHA1 = "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
DESCRIPTION = ("rados/thrash/{0-size-min-size-overrides/3-size-2-min-size "
               "1-pg-log-overrides/normal_pg_log 2-recovery-overrides/{more-active-recovery} "
               "3-scrub-overrides/{max-simultaneous-scrubs-3} backoff/peering_and_degraded "
               "ceph clusters/{fixed-2 openstack} crc-failures/default d-balancer/crush-compat "
               "mon_election/connectivity msgr-failures/osd-delay msgr/async-v2only "
               "objectstore/bluestore-comp-zstd rados supported-random-distro$/{ubuntu_latest} "
               "thrashers/mapgap thrashosds-health workloads/cache-snaps}")


def node_name(n: int) -> str:
    return f"smithi{n % NODE_COUNT:03d}.front.sepia.ceph.com"


def targets(job_id: int) -> dict[str, str]:
    """Three distinct nodes per job, as a three-node rados job locks them."""
    return {f"ubuntu@{node_name(3 * job_id + k)}": HOST_KEY for k in range(3)}


def _config(run: str, job_id: int) -> dict:
    return {
        "name": run, "job_id": str(job_id), "description": DESCRIPTION,
        "machine_type": "smithi", "os_type": "ubuntu", "os_version": "22.04",
        "owner": "scheduled_teuthology@teuthology", "suite": "rados", "branch": "main",
        "sha1": SHA1, "flavor": "default", "suite_branch": "main",
        "suite_sha1": "0123456789abcdef0123456789abcdef01234567",
        "suite_repo": "https://github.com/ceph/ceph-ci.git", "teuthology_branch": "main",
        "priority": 70, "user": "teuthology", "queue": "smithi", "seed": 4242,
        "archive_path": f"/home/teuthworker/archive/{run}/{job_id}", "last_in_suite": False,
        "verbose": True, "nuke_on_error": True,
        "kernel": {"kdb": True, "sha1": "distro"},
        "overrides": {
            "ceph": {"conf": {"osd": {"debug osd": 20, "osd shutdown pgref assert": True},
                              "mon": {"debug mon": 20, "debug ms": 1, "debug paxos": 20},
                              "global": {"mon pg warn min per osd": 0}},
                     "log-ignorelist": ["\\(MDS_ALL_DOWN\\)", "\\(MDS_UP_LESS\\)",
                                        "overall HEALTH_", "\\(OSD_DOWN\\)",
                                        "\\(POOL_APP_NOT_ENABLED\\)"],
                     "sha1": SHA1, "flavor": "default"},
            "install": {"ceph": {"flavor": "default", "sha1": SHA1}}},
        "roles": [["mon.a", "mgr.y", "osd.0", "osd.1", "osd.2", "client.0"],
                  ["mon.b", "mgr.x", "osd.3", "osd.4", "osd.5", "client.1"],
                  ["mon.c", "osd.6", "osd.7", "osd.8", "client.2"]],
        "tasks": [{"install": None}, {"ceph": {"log-ignorelist": ["but it is still running"]}},
                  {"thrashosds": {"timeout": 1200, "chance_pgnum_grow": 1,
                                  "chance_pgpnum_fix": 1}},
                  {"rados": {"clients": ["client.0"], "ops": 4000, "objects": 50}}],
        "targets": targets(job_id),
    }


def create_body(run: str, job_id: int) -> dict:
    """POST /runs/RUN/jobs/: a queued job with its whole config and three targets."""
    return {**_config(run, job_id), "status": "queued"}


def running_body(run: str, job_id: int) -> dict:
    return {"status": "running"}


def finish_body(run: str, job_id: int) -> dict:
    """PUT /runs/RUN/jobs/ID/ at the end of a job: config plus summary; one in seven fails."""
    body = _config(run, job_id)  # a new dict each call: nothing to copy
    failed = job_id % 7 == 0
    body.update(status="fail" if failed else "pass", success=not failed,
                duration=1800 + job_id % 600, pid=str(10000 + job_id),
                sentry_event=None)
    if failed:
        body["failure_reason"] = ("Command failed on smithi012 with status 1: 'sudo "
                                  "adjust-ulimits ceph-coverage ceph osd pool create foo'")
    return body


Route = Callable[[str, int], "tuple[str, str]"]
RunOf = Callable[[int, int], "tuple[str, int]"]


def jobs_route(run: str, job_id: int) -> tuple[str, str]:
    return "POST", f"/runs/{run}/jobs/"


def job_route(run: str, job_id: int) -> tuple[str, str]:
    return "PUT", f"/runs/{run}/jobs/{job_id}/"


class Slots:
    """Per client thread: a slot number (first come, first numbered) and the number of its
    next create (from 1), so that each client's creates go to its own runs in order."""

    def __init__(self):
        self._numbers = itertools.count()
        self._local = threading.local()
        self._done: dict[int, int] = {}

    def next(self) -> tuple[int, int]:
        local = self._local
        if not hasattr(local, "slot"):
            local.slot, local.job = next(self._numbers), 0
        local.job += 1
        self._done[local.slot] = local.job
        return local.slot, local.job

    def counts(self) -> dict[int, int]:
        return dict(self._done)


def creates(run_of: RunOf, owner: Slots, route: Route = jobs_route):
    """A create from each client in turn: its `number`th goes to `run_of(slot, number)`
    (the run and the job_id)."""
    def create(c, _i):
        run, job = run_of(*owner.next())
        return c.request(*route(run, job), create_body(run, job))
    return create


def posted(run_of: RunOf, owner: Slots) -> list[tuple[str, int]]:
    """The (run, job_id) of every create `owner` numbered, a run's jobs together, in order."""
    return sorted(run_of(slot, number) for slot, count in owner.counts().items()
                  for number in range(1, count + 1))


def reports(jobs: list[tuple[str, int]], body: Callable[[str, int], dict],
            route: Route = job_route):
    """`body(run, job_id)` for jobs[i], the i-th request."""
    def report(c, i):
        run, job = jobs[i]
        return c.request(*route(run, job), body(run, job))
    return report
