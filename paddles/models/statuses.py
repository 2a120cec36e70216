"""Job and run statuses, and the run-status rule (spec 10.2)."""
from __future__ import annotations

import enum
from collections.abc import Mapping

from sqlalchemy import ColumnElement, case, literal_column, or_


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


# The run-status rule (spec 10.2) as data, so that Python (run_status) and SQL
# (run_status_sql, for a statement that moves the counters) apply the one rule: the first
# entry any of whose conditions holds gives the status, UNKNOWN when none does. A condition
# is (count key, how): "none" (zero), "some" (more than zero) or "all" (equal to total).
RUN_STATUS_RULES: tuple[tuple[RunStatus, tuple[tuple[str, str], ...]], ...] = (
    (RunStatus.EMPTY, (("total", "none"),)),
    (RunStatus.QUEUED, (("queued", "all"),)),
    (RunStatus.RUNNING, (("running", "some"),)),
    (RunStatus.WAITING, (("waiting", "some"),)),
    (RunStatus.FINISHED_DEAD, (("dead", "all"),)),
    (RunStatus.FINISHED_FAIL, (("fail", "some"), ("dead", "some"))),
    (RunStatus.FINISHED_PASS, (("pass", "all"),)),
    (RunStatus.QUEUED, (("queued", "some"),)),
)
OTHERWISE = RunStatus.UNKNOWN


def run_status(counts: Mapping[str, int]) -> RunStatus:
    """The run's status by RUN_STATUS_RULES; ``counts`` has the COUNT_KEYS plus ``total``."""
    total = counts["total"]
    for status, conditions in RUN_STATUS_RULES:
        for key, how in conditions:
            value = counts[key]
            if (value == 0 if how == "none" else value > 0 if how == "some"
                    else value == total):
                return status
    return OTHERWISE


def run_status_sql(counts: Mapping[str, ColumnElement[int]]) -> ColumnElement[str]:
    """run_status as a SQL CASE over `counts` (COUNT_KEYS plus "total" to SQL expressions),
    its statuses written as literals (a prepared statement's only parameters are values)."""
    zero: ColumnElement[int] = literal_column("0")

    def holds(key: str, how: str) -> ColumnElement[bool]:
        value = counts[key]
        if how == "none":
            return value == zero
        return value > zero if how == "some" else value == counts["total"]

    return case(*((or_(*(holds(key, how) for key, how in conditions)), _literal(status))
                  for status, conditions in RUN_STATUS_RULES), else_=_literal(OTHERWISE))


def _literal(status: RunStatus) -> ColumnElement[str]:
    return literal_column(f"'{status.value}'")
