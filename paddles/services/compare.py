"""Run comparison (spec extras 3, "Comparison"): what changed between a run and a baseline.

Jobs are matched by `description` (teuthology's job identity; a job without one by
`#<job_id>`), test cases by `test_id` within their matched job (run-level test cases among
themselves). When a run has several jobs with one description (a re-run), the latest posted
counts; several results for one test id count as failed if any failed.

Outcomes: a job `pass` passed, `fail`/`dead` failed, anything else has no outcome yet; a test
`pass`/`xfail` passed, `fail`/`error`/`uxsuccess` failed, `skip` has none. Categories:
- regressions: passed in the baseline, failed now;
- fixes: failed in the baseline, passed now;
- new_failures: failed now, and did not run, or had no outcome, in the baseline;
- still_failing: failed in both;
- added / removed: present only now / only in the baseline (whatever their outcome).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import RunNotFound
from ..models import Job, JobStatus, Run, RunStatus, TestCase, TestStatus
from . import runs as run_service

CATEGORIES = ("regressions", "fixes", "new_failures", "still_failing", "added", "removed")
FINISHED_RUN = (RunStatus.FINISHED_PASS, RunStatus.FINISHED_FAIL, RunStatus.FINISHED_DEAD)
JOB_OUTCOME: dict[JobStatus | None, str] = {
    JobStatus.PASS: "pass", JobStatus.FAIL: "fail", JobStatus.DEAD: "fail"}
TEST_OUTCOME: dict[TestStatus | None, str] = {
    TestStatus.PASS: "pass", TestStatus.XFAIL: "pass", TestStatus.FAIL: "fail",
    TestStatus.ERROR: "fail", TestStatus.UXSUCCESS: "fail"}
MAX_TESTS_LISTED = 1000  # per category; the counts are always complete

JobKey = tuple[str, str]  # ("description", text) or ("job_id", id)
TestKey = tuple[JobKey | None, str]  # (its job's key or None for the run's own, test_id)
Item = dict[str, str | None]  # {job_id, status, outcome} of one job or test case
Entry = dict[str, str | None]  # one line of a category, as the wire shows it
Key = TypeVar("Key", JobKey, TestKey)


def find_baseline(session: Session, run: Run) -> Run | None:
    """The most recent finished run scheduled before `run` with its suite, branch and
    machine type."""
    earlier = (Run.scheduled < run.scheduled) | ((Run.scheduled == run.scheduled)
                                                 & (Run.id < run.id))
    return session.scalar(
        select(Run).where(Run.suite.is_not_distinct_from(run.suite),
                          Run.branch.is_not_distinct_from(run.branch),
                          Run.machine_type.is_not_distinct_from(run.machine_type),
                          Run.status.in_(FINISHED_RUN), Run.id != run.id, earlier)
        .order_by(Run.scheduled.desc(), Run.id.desc()).limit(1))


def compare_runs(session: Session, run_name: str,
                 baseline_name: str | None = None) -> dict[str, Any]:
    run = run_service.get_run(session, run_name)
    if baseline_name is not None:
        baseline = session.scalar(select(Run).where(Run.name == baseline_name))
        if baseline is None:
            raise RunNotFound("baseline run not found")
    else:
        baseline = find_baseline(session, run)
    jobs_now, keys_now = _jobs(session, run)
    jobs_then, keys_then = _jobs(session, baseline) if baseline is not None else ({}, {})
    job_cats = _categorise(jobs_now, jobs_then, _job_entry)
    test_cats = _categorise(_tests(session, run, keys_now),
                            _tests(session, baseline, keys_then) if baseline else {},
                            _test_entry)
    return {
        "run": run.name,
        "baseline": baseline.name if baseline is not None else None,
        "counts": {"jobs": {c: len(job_cats[c]) for c in CATEGORIES},
                   "tests": {c: len(test_cats[c]) for c in CATEGORIES}},
        "jobs": job_cats,
        "tests": {c: entries[:MAX_TESTS_LISTED] for c, entries in test_cats.items()},
    }


def _job_key(description: str | None, job_id: str) -> JobKey:
    return ("description", description) if description is not None else ("job_id", job_id)


def _description(job_key: JobKey | None) -> str | None:
    return job_key[1] if job_key is not None and job_key[0] == "description" else None


def _jobs(session: Session, run: Run) -> tuple[dict[JobKey, Item], dict[int, JobKey]]:
    """key -> {job_id, status, outcome}, latest posted per key; and job pk -> key."""
    rows = session.execute(select(Job.id, Job.job_id, Job.description, Job.status)
                           .where(Job.run_id == run.id).order_by(Job.posted, Job.id))
    jobs: dict[JobKey, Item] = {}
    keys: dict[int, JobKey] = {}
    for pk, job_id, description, status in rows:
        key = _job_key(description, job_id)
        keys[pk] = key
        jobs[key] = {"job_id": job_id, "status": status.value if status else None,
                     "outcome": JOB_OUTCOME.get(status)}
    return jobs, keys


def _tests(session: Session, run: Run,
           job_keys: dict[int, JobKey]) -> dict[TestKey, Item]:
    """(job key or None, test_id) -> {job_id, status, outcome}."""
    rows = session.execute(select(TestCase.job_id, TestCase.test_id, TestCase.status,
                                  Job.job_id)
                           .outerjoin(Job, Job.id == TestCase.job_id)
                           .where(TestCase.run_id == run.id).order_by(TestCase.id))
    tests: dict[TestKey, Item] = {}
    for job_pk, test_id, status, job_id in rows:
        key = (job_keys.get(job_pk) if job_pk is not None else None, test_id)
        outcome = TEST_OUTCOME.get(status)
        seen = tests.get(key)
        if seen is not None and (seen["outcome"] == "fail" or outcome is None):
            continue  # a failure sticks; a skip does not hide an earlier result
        tests[key] = {"job_id": job_id, "status": status.value, "outcome": outcome}
    return tests


def _job_entry(key: JobKey, now: Item | None, then: Item | None) -> Entry:
    return {"description": _description(key),
            "job_id": now["job_id"] if now else None,
            "status": now["status"] if now else None,
            "baseline_job_id": then["job_id"] if then else None,
            "baseline_status": then["status"] if then else None}


def _test_entry(key: TestKey, now: Item | None, then: Item | None) -> Entry:
    job_key, test_id = key
    return {"test_id": test_id, "job": _description(job_key),
            "job_id": now["job_id"] if now else None,
            "status": now["status"] if now else None,
            "baseline_job_id": then["job_id"] if then else None,
            "baseline_status": then["status"] if then else None}


def _categorise(now: dict[Key, Item], then: dict[Key, Item],
                entry: Callable[[Key, Item | None, Item | None], Entry]
                ) -> dict[str, list[Entry]]:
    cats: dict[str, list[Entry]] = {c: [] for c in CATEGORIES}
    for key, item in now.items():
        old = then.get(key)
        if old is None:
            cats["added"].append(entry(key, item, None))
        outcome, old_outcome = item["outcome"], old["outcome"] if old else None
        if outcome == "fail":
            if old_outcome == "pass":
                cats["regressions"].append(entry(key, item, old))
            elif old_outcome == "fail":
                cats["still_failing"].append(entry(key, item, old))
            else:
                cats["new_failures"].append(entry(key, item, old))
        elif outcome == "pass" and old_outcome == "fail":
            cats["fixes"].append(entry(key, item, old))
    for key, old in then.items():
        if key not in now:
            cats["removed"].append(entry(key, None, old))
    return cats
