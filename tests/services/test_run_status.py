"""Spec 10: run status from job counts, and the stored counters staying exact."""
from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import Integer, column, select, text, values

from paddles.models.statuses import COUNT_KEYS, RunStatus, run_status, run_status_sql
from tests.factories import run_name

JOB_STATUSES = ("pass", "fail", "queued", "running", "dead", "unknown", "waiting")


def counts_of(*statuses: str | None) -> dict[str, int]:
    """Counts as spec 10.1 defines them: null counts as unknown."""
    out = {key: 0 for key in COUNT_KEYS}
    for status in statuses:
        out["unknown" if status is None else status] += 1
    out["total"] = len(statuses)
    return out


def expected_status(c: dict[str, int]) -> str:
    """Spec 10.2 written out independently of the implementation: first rule wins."""
    rules = [
        (lambda: c["total"] == 0, "empty"),
        (lambda: c["queued"] == c["total"], "queued"),
        (lambda: c["running"] > 0, "running"),
        (lambda: c["waiting"] > 0, "waiting"),
        (lambda: c["dead"] == c["total"], "finished dead"),
        (lambda: c["fail"] > 0, "finished fail"),
        (lambda: c["dead"] > 0, "finished fail"),
        (lambda: c["pass"] == c["total"], "finished pass"),
        (lambda: c["queued"] > 0, "queued"),
    ]
    return next((status for test, status in rules if test()), "unknown")


# ---- 10.2 case by case ------------------------------------------------------------------------

@pytest.mark.parametrize("statuses,status", [
    ((), "empty"),                                          # rule 0
    (("queued",), "queued"),                                # rule 1
    (("queued", "queued", "queued"), "queued"),
    (("running",), "running"),                              # rule 2
    (("running", "pass"), "running"),                       # worked case
    (("running", "waiting"), "running"),                    # worked case
    (("running", "fail", "dead", "queued"), "running"),
    (("waiting",), "waiting"),                              # rule 3
    (("waiting", "fail"), "waiting"),
    (("waiting", "queued"), "waiting"),
    (("dead",), "finished dead"),                           # rule 4
    (("dead", "dead"), "finished dead"),
    (("fail",), "finished fail"),                           # rule 5
    (("fail", "pass"), "finished fail"),
    (("fail", "queued"), "finished fail"),
    (("fail", "unknown"), "finished fail"),
    (("dead", "pass"), "finished fail"),                    # rule 6
    (("queued", "dead"), "finished fail"),                  # worked case: 6 precedes 8
    (("dead", "unknown"), "finished fail"),
    (("pass",), "finished pass"),                           # rule 7
    (("pass", "pass", "pass"), "finished pass"),
    (("queued", "pass"), "queued"),                         # rule 8, worked case
    (("queued", "unknown"), "queued"),
    (("pass", "unknown"), "unknown"),                       # rule 9, worked case
    (("unknown",), "unknown"),
    ((None,), "unknown"),                                   # null counts as unknown
    ((None, "pass"), "unknown"),
    ((None, "queued"), "queued"),
])
def test_run_status_rules(statuses, status):
    assert run_status(counts_of(*statuses)) == RunStatus(status)
    assert expected_status(counts_of(*statuses)) == status  # the oracle below agrees


def test_every_combination_of_up_to_three_jobs_matches_the_rule_table():
    import itertools
    for n in range(4):
        for combo in itertools.combinations_with_replacement(JOB_STATUSES + (None,), n):
            c = counts_of(*combo)
            assert run_status(c).value == expected_status(c), combo


def test_the_sql_rule_gives_what_the_python_rule_gives(session):
    """run_status_sql (a job report's write statement on PostgreSQL moves the run's status
    with it) against run_status, for every count of 0 to 2 of each status, on the database:
    3^7 runs in one SELECT."""
    import itertools
    keys = (*COUNT_KEYS, "total")
    rows = [(*combo, sum(combo)) for combo in itertools.product(range(3), repeat=len(keys) - 1)]
    table = values(*(column(key, Integer) for key in keys), name="c").data(rows).cte("c")
    status = run_status_sql({key: table.c[key] for key in keys})
    got = session.execute(select(*(table.c[key] for key in keys), status)).all()
    assert len(got) == len(rows)
    for row in got:
        assert row[-1] == run_status(dict(zip(keys, row[:-1]))).value, row


def test_run_status_values_are_the_allowed_ones():
    assert {s.value for s in RunStatus} == {"empty", "queued", "running", "waiting",
                                            "unknown", "finished pass", "finished dead",
                                            "finished fail"}


# ---- stored counters equal a recomputation after random traffic ---------------------------------

def sort_key(job_id: str):
    return (0, int(job_id), "") if job_id.isdigit() else (1, 0, job_id)


def recompute(session) -> dict[str, dict]:
    """Per run, from the jobs table alone: counts, status and first-job values."""
    session.rollback()  # a fresh snapshot of what the app committed
    runs = {name: [] for (name,) in session.execute(text("SELECT name FROM runs"))}
    rows = session.execute(text(
        "SELECT r.name, j.job_id, j.status, j.sha1, j.flavor, j.priority "
        "FROM jobs j JOIN runs r ON r.id = j.run_id"))
    for name, job_id, status, sha1, flavor, priority in rows:
        runs[name].append((job_id, status, sha1, flavor, priority))
    out = {}
    for name, jobs in runs.items():
        c = counts_of(*(status for _, status, *_ in jobs))
        first = min(jobs, key=lambda j: sort_key(j[0])) if jobs else None
        out[name] = {
            "counts": c,
            "status": expected_status(c),
            "sha1": first[2] if first else None,
            "flavor": first[3] if first else None,
            "priority": first[4] if first else None,
        }
    return out


def stored(session) -> dict[str, dict]:
    session.rollback()  # a fresh snapshot of what the app committed
    rows = session.execute(text(
        "SELECT name, status, count_queued, count_pass, count_running, count_waiting, "
        "count_fail, count_dead, count_unknown, count_total, sha1, flavor, priority "
        "FROM runs"))
    out = {}
    for name, status, *nums, sha1, flavor, priority in rows:
        counts = dict(zip(COUNT_KEYS + ("total",), nums))
        out[name] = {"counts": counts, "status": status, "sha1": sha1, "flavor": flavor,
                     "priority": priority}
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_survive_random_traffic(app, session, seed):
    rng = random.Random(seed)
    runs = [run_name() for _ in range(3)]
    ids = [str(i) for i in (1, 2, 3, 9, 10, 11)] + ["a", "b"]
    for step in range(120):
        if step % 20 == 0:  # intermediate states must be exact too, not just the last one
            assert stored(session) == recompute(session), step
        run, job_id = rng.choice(runs), rng.choice(ids)
        op = rng.random()
        path = f"/runs/{run}/jobs/{job_id}/"
        if op < 0.4:
            body = {"job_id": job_id, "sha1": rng.choice("abc") * 40,
                    "flavor": rng.choice(["default", "crimson"]),
                    "priority": rng.randint(1, 100)}
            if rng.random() < 0.7:
                body["status"] = rng.choice(JOB_STATUSES)
            if rng.random() < 0.1:
                del body["job_id"]  # server-assigned id
            app.post(f"/runs/{run}/jobs/", json.dumps(body), status=[200, 400])
        elif op < 0.85:
            body = {}
            choice = rng.random()
            if choice < 0.6:
                body["status"] = rng.choice(JOB_STATUSES)
            elif choice < 0.8:
                body["success"] = rng.choice([True, False, None])
            if rng.random() < 0.2:
                body["priority"] = rng.randint(1, 100)
            if rng.random() < 0.1:
                body["sha1"] = rng.choice("de") * 40
            app.put(path, json.dumps(body), status=[200, 404])
        elif op < 0.985:
            app.delete(path, status=[200, 404])
        else:
            app.delete(f"/runs/{run}/", status=[200, 404])

    expected = recompute(session)
    assert max(w["counts"]["total"] for w in expected.values()) >= 4  # not vacuous
    assert stored(session) == expected
    # the API serves the same values everywhere: summary, detail and status filter
    for name, want in expected.items():
        summary = app.get(f"/runs/{name}/").json
        assert summary["status"] == want["status"]
        assert {k: summary["results"][k] for k in COUNT_KEYS + ("total",)} == want["counts"]
        assert summary["jobs_count"] == want["counts"]["total"]
        assert summary["sha1"] == (want["sha1"] if want["counts"]["total"] else "none")
        assert summary["priority"] == want["priority"]
        filtered = app.get(f"/runs/status/{want['status']}/", {"count": 100}).json
        assert name in [r["name"] for r in filtered]
