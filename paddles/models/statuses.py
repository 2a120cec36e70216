"""Job and run statuses, and the run-status rule (spec 10.2)."""
from __future__ import annotations

import enum
from collections.abc import Mapping


class JobStatus(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    QUEUED = "queued"
    RUNNING = "running"
    DEAD = "dead"
    UNKNOWN = "unknown"
    WAITING = "waiting"


class RunStatus(str, enum.Enum):
    EMPTY = "empty"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    UNKNOWN = "unknown"
    FINISHED_PASS = "finished pass"
    FINISHED_DEAD = "finished dead"
    FINISHED_FAIL = "finished fail"


JOB_STATUS_VALUES = tuple(s.value for s in JobStatus)
RUN_STATUS_VALUES = tuple(s.value for s in RunStatus)
# the order upstream lists counts in `results`
COUNT_KEYS = ("queued", "pass", "running", "waiting", "fail", "dead", "unknown")


def count_key(status: JobStatus | str | None) -> str:
    """Which counter a job with this status feeds (null counts as unknown)."""
    if status is None:
        return "unknown"
    return JobStatus(status).value


def run_status(counts: Mapping[str, int]) -> RunStatus:
    """First matching rule wins; ``counts`` has the COUNT_KEYS plus ``total``."""
    total = counts["total"]
    if total == 0:
        return RunStatus.EMPTY
    if counts["queued"] == total:
        return RunStatus.QUEUED
    if counts["running"] > 0:
        return RunStatus.RUNNING
    if counts["waiting"] > 0:
        return RunStatus.WAITING
    if counts["dead"] == total:
        return RunStatus.FINISHED_DEAD
    if counts["fail"] > 0 or counts["dead"] > 0:
        return RunStatus.FINISHED_FAIL
    if counts["pass"] == total:
        return RunStatus.FINISHED_PASS
    if counts["queued"] > 0:
        return RunStatus.QUEUED
    return RunStatus.UNKNOWN
