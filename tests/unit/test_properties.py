"""Property tests (hypothesis): run-name parsing (spec 7) and the run status rules (10).

Bounded like the fuzz: PADDLES_FUZZ_EXAMPLES raises the number of examples.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from paddles.models.statuses import (COUNT_KEYS, JOB_STATUS_VALUES, RunStatus, count_key,
                                     run_status)
from paddles.run_names import _KNOWN_SUITES, ParsedName, parse_run_name

EXAMPLES = int(os.environ.get("PADDLES_FUZZ_EXAMPLES") or 0) * 25 or 100
PROPERTY = settings(max_examples=EXAMPLES, deadline=None)
DB_PROPERTY = settings(max_examples=max(EXAMPLES // 5, 10), deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture,
                                              HealthCheck.too_slow])

# ---- run names ------------------------------------------------------------------------------

WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789_.:", min_size=1, max_size=12)
WHEN = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31),
                    ).map(lambda t: t.replace(microsecond=0))
SUITES = st.sampled_from([s for s in _KNOWN_SUITES if "-" not in s])
MTYPES = st.sampled_from("burnupi mira plana saya tala vps".split())
DISTROS = st.sampled_from("centos debian fedora opensuse rhel suse ubuntu".split())


def format_run_name(user, when, suite, branch, kernel, flavor, machine_type="",
                    distro="") -> str:
    """The way teuthology-suite names a run."""
    parts = [user, when.strftime("%Y-%m-%d_%H:%M:%S"), suite, branch, kernel, flavor]
    return "-".join(parts + [p for p in (machine_type, distro) if p])


@PROPERTY
@given(user=WORD, when=WHEN, suite=SUITES, branch=WORD, kernel=WORD, flavor=WORD,
       machine_type=MTYPES, distro=st.one_of(st.just(""), DISTROS))
def test_parse_of_format_round_trips(user, when, suite, branch, kernel, flavor, machine_type,
                                     distro):
    name = format_run_name(user, when, suite, branch, kernel, flavor, machine_type, distro)
    assert parse_run_name(name) == ParsedName(
        user=user, scheduled=when.replace(tzinfo=dt.timezone.utc), suite=suite, branch=branch,
        machine_type=machine_type)


@PROPERTY
@given(user=WORD, when=WHEN, suite=SUITES, branch=WORD, kernel=WORD, flavor=WORD,
       zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]))
def test_scheduled_is_the_local_time_in_utc(user, when, suite, branch, kernel, flavor, zone):
    from zoneinfo import ZoneInfo

    parsed = parse_run_name(format_run_name(user, when, suite, branch, kernel, flavor), zone)
    assert parsed.scheduled == when.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc)
    assert parsed.scheduled.tzinfo is dt.timezone.utc


@PROPERTY
@given(st.text(max_size=200))
@example("teuthology-2013-13-01_00:00:00-rados-main-x-default-plana")
@example("u-0001-01-01_00:00:00-a-b-c-d-e")
@example("-" * 50)
def test_parse_never_fails_and_strips(name):
    parsed = parse_run_name(name, "Asia/Tokyo")
    assert parsed.scheduled is None or parsed.scheduled.tzinfo is dt.timezone.utc
    for value in (parsed.user, parsed.suite, parsed.branch, parsed.machine_type):
        assert value == value.strip(" -")
    if parsed.scheduled is None:
        assert parsed == ParsedName()


# ---- run status rules -----------------------------------------------------------------------

STATUSES = st.sampled_from([*JOB_STATUS_VALUES, None])


def counts_of(statuses) -> dict[str, int]:
    counted = Counter(count_key(s) for s in statuses)
    return {**{key: counted[key] for key in COUNT_KEYS}, "total": len(statuses)}


@PROPERTY
@given(st.lists(STATUSES, max_size=40), st.randoms())
def test_counters_sum_to_the_job_count_and_status_ignores_order(statuses, rnd):
    counts = counts_of(statuses)
    assert sum(counts[key] for key in COUNT_KEYS) == counts["total"] == len(statuses)
    shuffled = list(statuses)
    rnd.shuffle(shuffled)
    assert counts_of(shuffled) == counts
    assert run_status(counts_of(shuffled)) == run_status(counts)


@PROPERTY
@given(st.lists(STATUSES, max_size=40))
def test_status_rules(statuses):
    counts, status = counts_of(statuses), run_status(counts_of(statuses))
    if not statuses:
        assert status is RunStatus.EMPTY
    elif "running" in statuses:
        assert status is RunStatus.RUNNING
    elif set(statuses) == {"pass"}:
        assert status is RunStatus.FINISHED_PASS
    elif set(statuses) == {"dead"}:
        assert status is RunStatus.FINISHED_DEAD
    if status.value.startswith("finished"):  # nothing running or waiting (queued may be:
        assert counts["running"] == counts["waiting"] == 0  # {queued, dead} is finished fail)
    # one more passing job never turns a finished failure into anything else
    if status is RunStatus.FINISHED_FAIL:
        assert run_status(counts_of([*statuses, "pass"])) is RunStatus.FINISHED_FAIL


# ---- the same rules through the app (stored counters, both databases) -----------------------

RUN_PREFIX = "prop-2024-01-15_20:00:03-rados-main-distro-default-smithi"


@DB_PROPERTY
@given(statuses=st.lists(st.sampled_from(JOB_STATUS_VALUES), min_size=1, max_size=8),
       updates=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(JOB_STATUS_VALUES)),
                        max_size=8),
       seed=st.integers(0, 2**32))
def test_stored_counters_match_the_jobs_whatever_the_order(app, statuses, updates, seed):
    """Jobs created in two different orders, then the same status updates: both runs store
    the same counters and status, the counters equal a recount of the jobs, and the status
    is the rule applied to them."""
    order = list(range(len(statuses)))
    random.Random(seed).shuffle(order)
    runs = []
    for sequence in (range(len(statuses)), order):
        run = f"{RUN_PREFIX}-{uuid.uuid4().hex[:8]}"
        for i in sequence:
            app.post_json(f"/runs/{run}/jobs/", {"job_id": str(i), "status": statuses[i]})
        for i, status in updates:
            if i < len(statuses):
                app.put_json(f"/runs/{run}/jobs/{i}/", {"status": status})
        runs.append(app.get(f"/runs/{run}/").json)
    first, second = runs
    assert first["results"] == second["results"] and first["status"] == second["status"]
    recount = counts_of([job["status"] for job in first["jobs"]])
    assert {k: first["results"][k] for k in (*COUNT_KEYS, "total")} == recount
    assert first["status"] == run_status(recount).value
    assert first["jobs_count"] == len(statuses)


@pytest.mark.parametrize("statuses,expected", [
    (["running", "pass"], "running"), (["running", "waiting"], "running"),
    (["queued", "pass"], "queued"), (["queued", "dead"], "finished fail"),
    (["pass", "unknown"], "unknown")])
def test_worked_cases_of_the_spec(statuses, expected):
    assert run_status(counts_of(statuses)).value == expected
