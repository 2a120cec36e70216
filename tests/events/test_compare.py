"""GET /runs/NAME/compare/: runs built to hold every category, for jobs and for test cases."""
from __future__ import annotations

from tests.factories import post_job, put_job, run_name

SUITE = dict(suite="rados", branch="main", machine_type="smithi")


def _junit(results: dict[str, str]) -> bytes:
    cases = []
    for name, status in results.items():
        inner = {"pass": "", "fail": "<failure message='boom'>tb</failure>",
                 "skip": "<skipped/>", "error": "<error message='e'>tb</error>"}[status]
        cases.append(f"<testcase classname='osd' name='{name}' time='1'>{inner}</testcase>")
    return (f"<testsuite name='s' tests='{len(cases)}'>" + "".join(cases)
            + "</testsuite>").encode()


def _run(app, when, jobs: dict[str, str], tests: dict[str, str] | None = None, **name_kw):
    """A run whose jobs (description -> final status) have finished; `tests` go, as a
    JUnit artifact, to the job described "same"."""
    run = run_name(when=when, **{**SUITE, **name_kw})
    for i, (description, status) in enumerate(jobs.items(), 1):
        post_job(app, run, str(i), status="running", description=description,
                 **{k: v for k, v in {**SUITE, **name_kw}.items()})
        if tests is not None and description == "same":
            app.put(f"/runs/{run}/jobs/{i}/artifacts/results.xml", _junit(tests), status=201)
        put_job(app, run, str(i), status=status)
    return run


BASELINE_JOBS = {"regress": "pass", "fix": "fail", "still": "dead", "newfail": "unknown",
                 "removed": "pass", "same": "pass"}
CURRENT_JOBS = {"regress": "fail", "fix": "pass", "still": "fail", "newfail": "fail",
                "added": "fail", "same": "pass", "added-ok": "pass"}
BASELINE_TESTS = {"t1": "pass", "t2": "fail", "t3": "pass", "t5": "pass", "t6": "skip",
                  "t7": "error"}
CURRENT_TESTS = {"t1": "fail", "t2": "pass", "t3": "pass", "t4": "fail", "t6": "error",
                 "t7": "error"}


def _names(entries, key="description"):
    return sorted(e[key] for e in entries)


def test_every_category(app):
    baseline = _run(app, "2024-01-14_10:00:00", BASELINE_JOBS, BASELINE_TESTS)
    current = _run(app, "2024-01-15_10:00:00", CURRENT_JOBS, CURRENT_TESTS)
    out = app.get(f"/runs/{current}/compare/").json
    assert out["run"] == current and out["baseline"] == baseline
    jobs = out["jobs"]
    assert _names(jobs["regressions"]) == ["regress"]
    assert _names(jobs["fixes"]) == ["fix"]
    assert _names(jobs["still_failing"]) == ["still"]
    assert _names(jobs["new_failures"]) == ["added", "newfail"]
    assert _names(jobs["added"]) == ["added", "added-ok"]
    assert _names(jobs["removed"]) == ["removed"]
    [regression] = jobs["regressions"]
    assert regression == {"description": "regress", "job_id": "1", "status": "fail",
                          "baseline_job_id": "1", "baseline_status": "pass"}
    assert jobs["still_failing"][0]["baseline_status"] == "dead"
    assert jobs["removed"][0]["job_id"] is None

    tests = out["tests"]
    assert _names(tests["regressions"], "test_id") == ["osd.t1"]
    assert _names(tests["fixes"], "test_id") == ["osd.t2"]
    assert _names(tests["new_failures"], "test_id") == ["osd.t4", "osd.t6"]  # t6 was skipped
    assert _names(tests["still_failing"], "test_id") == ["osd.t7"]
    assert _names(tests["added"], "test_id") == ["osd.t4"]
    assert _names(tests["removed"], "test_id") == ["osd.t5"]
    assert tests["regressions"][0] == {"test_id": "osd.t1", "job": "same", "job_id": "6",
                                       "status": "fail", "baseline_job_id": "6",
                                       "baseline_status": "pass"}
    assert out["counts"] == {
        "jobs": {"regressions": 1, "fixes": 1, "new_failures": 2, "still_failing": 1,
                 "added": 2, "removed": 1},
        "tests": {"regressions": 1, "fixes": 1, "new_failures": 2, "still_failing": 1,
                  "added": 1, "removed": 1}}


def test_default_baseline_is_the_latest_earlier_finished_comparable_run(app):
    older = _run(app, "2024-01-10_10:00:00", {"a": "pass"})
    latest = _run(app, "2024-01-12_10:00:00", {"a": "fail"})
    _run(app, "2024-01-13_10:00:00", {"a": "pass"}, suite="fs")  # another suite
    _run(app, "2024-01-13_11:00:00", {"a": "pass"}, branch="reef")  # another branch
    _run(app, "2024-01-13_12:00:00", {"a": "pass"}, machine_type="mira")  # another type
    unfinished = run_name(when="2024-01-14_10:00:00", **SUITE)
    post_job(app, unfinished, "1", status="running", description="a", **SUITE)
    current = _run(app, "2024-01-15_10:00:00", {"a": "pass"})
    _run(app, "2024-01-16_10:00:00", {"a": "pass"})  # later: never a baseline

    out = app.get(f"/runs/{current}/compare").json
    assert out["baseline"] == latest and _names(out["jobs"]["fixes"]) == ["a"]
    out = app.get(f"/runs/{current}/compare/", {"baseline": older}).json
    assert out["baseline"] == older and out["jobs"]["fixes"] == []
    assert app.get(f"/runs/{older}/compare/").json["baseline"] is None


def test_without_a_baseline_everything_is_added(app):
    current = _run(app, "2024-01-15_10:00:00", {"a": "pass", "b": "fail"})
    out = app.get(f"/runs/{current}/compare/").json
    assert out["baseline"] is None
    assert _names(out["jobs"]["added"]) == ["a", "b"]
    assert _names(out["jobs"]["new_failures"]) == ["b"]


def test_missing_runs_are_404(app):
    current = _run(app, "2024-01-15_10:00:00", {"a": "pass"})
    assert app.get(f"/runs/{current}/compare/?baseline=nope", status=404).json == {
        "message": "baseline run not found"}
    assert app.get("/runs/nope/compare/", status=404).json == {"message": "run not found"}
    app.post(f"/runs/{current}/compare/", "{}", status=405)
