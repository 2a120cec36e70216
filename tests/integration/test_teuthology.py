"""The real teuthology client (PyPI) against a real paddles (gunicorn, migrated database).

teuthology_driver.py runs teuthology's own reporting, kill and lock functions under
Python 3.12 and records every request they make; these tests check that traffic and then
ask the server itself (GET /runs/NAME/, /nodes/...) whether it holds what teuthology
reported. Runs on SQLite and PostgreSQL (fixtures in conftest.py).
"""
from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.slow

ALREADY_EXISTS = "already exists"


def _job_map(run: dict) -> dict:
    return {job["job_id"]: job for job in run["jobs"]}


def _post_then_put(obs, step: str, run: str, job_id: str) -> None:
    """teuthology's report_job: POST -> 400 '... already exists' -> PUT .../ID/ -> 200."""
    record = obs.step(step)
    assert obs.calls(step) == [("POST", f"/runs/{run}/jobs/", 400),
                               ("PUT", f"/runs/{run}/jobs/{job_id}/", 200)], record
    assert record["requests"][0]["message"].endswith(ALREADY_EXISTS)
    assert record["requests"][0]["message"] == f"job with job_id {job_id} already exists"


def test_driver_ran_cleanly(teuthology_observed):
    obs = teuthology_observed
    expected_failures = {"purge.get_run_deleted"}  # a deleted run must 404
    failed = {name: rec.get("traceback") for name, rec in obs.steps.items()
              if not rec["ok"] and name not in expected_failures}
    assert not failed, "teuthology calls raised:\n" + "\n".join(
        f"--- {name}\n{tb}" for name, tb in failed.items())
    # every call succeeded at the first try: no safe_while retry loop ever slept
    assert obs.summary["retries"] == []
    # nothing left the machine, nothing was redirected, nothing crashed
    assert obs.facts["results_server"] == obs.base + "/"
    assert all(r["status"] is not None for r in obs.requests), obs.requests
    assert not [r for r in obs.requests if 300 <= r["status"] < 400]
    assert not [r for r in obs.requests if r["status"] >= 500 and r["status"] != 503]
    assert obs.facts["teuthology_version"]


def test_teuthology_report_from_archive(teuthology_observed):
    """teuthology-report: HEAD, POST every job, skip a present run, refresh via PUT."""
    obs = teuthology_observed
    run = obs.runs["archive"]
    assert obs.ok("archive.report_run") == 3
    assert obs.calls("archive.report_run")[0] == ("HEAD", f"/runs/{run}/", 404)
    assert sorted(obs.calls("archive.report_run")[1:]) == [("POST", f"/runs/{run}/jobs/", 200)] * 3
    assert obs.ok("archive.report_run_again_skipped") == 0
    assert obs.calls("archive.report_run_again_skipped") == [("HEAD", f"/runs/{run}/", 200)]

    assert obs.ok("archive.report_run_refresh") == 3
    refresh = obs.step("archive.report_run_refresh")["requests"]
    assert len(refresh) == 6
    for post, put in zip(refresh[::2], refresh[1::2]):
        assert (post["method"], post["status"]) == ("POST", 400)
        assert post["message"].endswith(ALREADY_EXISTS)
        job_id = post["message"].split()[3]
        assert (put["method"], put["path"], put["status"]) == \
            ("PUT", f"/runs/{run}/jobs/{job_id}/", 200)
    obs.ok("archive.report_jobs_dead")
    _post_then_put(obs, "archive.report_jobs_dead", run, "3")

    resp = obs.get(f"/runs/{run}/")
    assert resp.status_code == 200
    detail = resp.json()
    assert (detail["user"], detail["suite"], detail["branch"], detail["machine_type"]) == \
        ("teuthint", "rados", "main", "smithi")
    assert detail["status"] == "finished fail"
    assert {k: detail["results"][k] for k in ("pass", "fail", "dead", "queued", "running",
                                              "waiting", "unknown", "total")} == \
        {"pass": 1, "fail": 1, "dead": 1, "queued": 0, "running": 0, "waiting": 0,
         "unknown": 0, "total": 3}
    jobs = _job_map(detail)
    assert [j["job_id"] for j in detail["jobs"]] == ["1", "2", "3"]
    assert (jobs["1"]["status"], jobs["1"]["success"], jobs["1"]["duration"]) == ("pass", True, 812)
    assert (jobs["2"]["status"], jobs["2"]["failure_reason"]) == \
        ("fail", "Command failed on smithi102 with status 1")
    assert jobs["3"]["status"] == "dead"  # teuthology-report --dead on a job without summary
    for job_id, job in jobs.items():
        # ResultsSerializer sends teuthology.log's mtime as `updated` (local time; TZ=UTC)
        assert job["updated"] == "2024-01-15 21:00:00", job
        assert job["pid"] == str(40000 + int(job_id))
        assert job["owner"] == obs.facts["owner"]
        assert list(job["targets"]) == [f"ubuntu@smithi10{job_id}.paddles.test"]
    assert detail["updated"] == "2024-01-15 21:00:00"


def test_job_lifecycle_as_scheduler_dispatcher_supervisor_report_it(teuthology_observed):
    obs = teuthology_observed
    run = obs.runs["live"]
    for i in (1, 2, 3, 4, 5, 6, 7):  # first report of each job: a plain POST
        assert obs.calls(f"live.queue.{i}") == [("POST", f"/runs/{run}/jobs/", 200)]
    _post_then_put(obs, "live.queue_again.1", run, "1")
    for step, job_id in (("live.1.running", "1"), ("live.1.heartbeat", "1"),
                         ("live.1.pass", "1"), ("live.1.supervisor_dead", "1"),
                         ("live.2.waiting", "2"), ("live.2.fail", "2"),
                         ("live.2.supervisor_dead", "2"), ("live.3.dead", "3"),
                         ("live.5.heartbeat", "5")):
        _post_then_put(obs, step, run, job_id)
    # a job reported for the first time with an explicit, old `updated`
    assert obs.calls("live.9.pass_old") == [("POST", f"/runs/{run}/jobs/", 200)]

    # while the run was in flight, teuthology read back what it had reported
    seen = {j["job_id"]: j for j in obs.ok("read.get_jobs_fields")}
    assert {k: v["status"] for k, v in seen.items()} == {
        "1": "pass", "2": "fail", "3": "dead", "4": "queued", "5": "running",
        "6": "queued", "7": "queued", "9": "pass"}
    assert all(set(j) == {"status", "job_id"} for j in seen.values())
    in_flight = obs.ok("read.get_run")
    assert in_flight["status"] == "running"
    assert in_flight["results"]["total"] == 8 and in_flight["results"]["running"] == 1

    # the server's own view at the end (after kill, deletes, kill_run)
    detail = obs.get(f"/runs/{run}/").json()
    jobs = _job_map(detail)
    assert [j["job_id"] for j in detail["jobs"]] == ["1", "2", "3", "5", "6", "9"]
    assert {k: j["status"] for k, j in jobs.items()} == {
        "1": "pass",  # supervisor's final 'dead' ignored after 'pass'
        "2": "fail",  # ... and after 'fail'
        "3": "dead", "5": "dead", "6": "dead", "9": "pass"}
    assert detail["status"] == "finished fail"
    assert {k: detail["results"][k] for k in ("pass", "fail", "dead", "queued", "running",
                                              "waiting", "unknown", "total")} == \
        {"pass": 2, "fail": 1, "dead": 3, "queued": 0, "running": 0, "waiting": 0,
         "unknown": 0, "total": 6}
    assert detail["jobs_count"] == 6
    assert (jobs["1"]["success"], jobs["1"]["duration"]) == (True, 1234)
    assert jobs["2"]["failure_reason"] == "Command failed (workunit test rbd/test_librbd.sh)"
    assert jobs["3"]["failure_reason"] == "hit max job timeout"
    assert jobs["9"]["updated"] == "2020-01-01 00:00:00"
    for job in (jobs["1"], jobs["2"], jobs["5"]):
        assert job["started"] is not None
    for job in detail["jobs"]:  # teuthology parses these with datetime.fromisoformat
        dt.datetime.fromisoformat(job["updated"])
    assert detail["sha1"] == "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
    # status filter agrees with the detail (stored status is exact)
    listed = obs.get("/runs/status/finished fail/", params={"count": 100}).json()
    assert run in {r["name"] for r in listed}


def test_reads_teuthology_makes(teuthology_observed):
    obs = teuthology_observed
    run = obs.runs["live"]
    # get_run: no trailing slash, `fields` ignored -> the full run with its jobs
    assert obs.calls("read.get_run_fields") == [("GET", f"/runs/{run}?fields=name,status", 200)]
    full = obs.ok("read.get_run_fields")
    assert full["name"] == run and "jobs" in full and full["machine_type"] == "smithi"
    assert obs.calls("read.get_run") == [("GET", f"/runs/{run}", 200)]
    # get_jobs: with fields teuthology always adds job_id; ids are strings
    assert obs.calls("read.get_jobs_fields") == \
        [("GET", f"/runs/{run}/jobs/?fields=status,job_id", 200)]
    assert obs.calls("read.get_jobs_job_id_field") == \
        [("GET", f"/runs/{run}/jobs/?fields=job_id", 200)]
    assert all(list(j) == ["job_id"] and isinstance(j["job_id"], str)
               for j in obs.ok("read.get_jobs_job_id_field"))
    all_jobs = obs.ok("read.get_jobs")
    assert len(all_jobs) == 8 and all("log_href" in j for j in all_jobs)
    # one job, no trailing slash, fields ignored: kill reads owner/pid/targets/status
    assert obs.calls("read.get_job") == [("GET", f"/runs/{run}/jobs/1", 200)]
    job = obs.ok("read.get_job")
    for key in ("owner", "pid", "targets", "status", "machine_type", "job_id", "name"):
        assert key in job
    assert (job["job_id"], job["owner"], job["status"]) == ("1", obs.facts["owner"], "pass")
    assert obs.calls("read.get_job_fields") == \
        [("GET", f"/runs/{run}/jobs/2?fields=status,job_id", 200)]
    assert obs.ok("read.get_job_fields")["description"].startswith("rbd/basic/")


def test_stale_lock_check_uses_double_slash(teuthology_observed):
    """node_active_job() builds f"{results_server}/runs/..." and results_server ends in '/'."""
    obs = teuthology_observed
    run = obs.runs["live"]
    assert obs.calls("read.node_active_job_running") == \
        [("GET", f"//runs/{run}/jobs/5/", 200)]
    assert obs.ok("read.node_active_job_running") == f"/archive/{run}/5"  # still running
    assert obs.calls("read.node_active_job_finished") == \
        [("GET", f"//runs/{run}/jobs/9/", 200)]
    # job 9 passed, `updated` (2020) is parsed and older than the grace time: inactive
    assert obs.ok("read.node_active_job_finished") is None


def test_kill_and_deletes(teuthology_observed):
    obs = teuthology_observed
    run = obs.runs["live"]
    # teuthology-kill -r RUN -j 6: kills the job's process (pid from paddles), marks it dead
    obs.ok("kill.kill_job")
    kill_calls = obs.calls("kill.kill_job")
    assert kill_calls[0] == ("GET", f"/runs/{run}/jobs/6", 200)
    assert ("PUT", f"/runs/{run}/jobs/6/", 200) in kill_calls
    assert obs.facts["victim_returncode"] == -15  # SIGTERM from teuthology-kill
    job6 = obs.get(f"/runs/{run}/jobs/6/").json()
    assert (job6["status"], job6["failure_reason"], job6["pid"]) == \
        ("dead", "killed", str(obs.facts["victim_pid"]))

    # ResultsReporter.delete_job
    assert obs.calls("delete.delete_job") == [("DELETE", f"/runs/{run}/jobs/7/", 200)]
    assert obs.get(f"/runs/{run}/jobs/7/").status_code == 404
    # kill.remove_paddles_jobs: queued jobs of a run that has others -> delete each
    assert obs.calls("delete.remove_paddles_jobs") == [
        ("GET", f"/runs/{run}/jobs/?fields=status,job_id", 200),
        ("GET", f"/runs/{run}/jobs/?fields=job_id", 200),
        ("DELETE", f"/runs/{run}/jobs/4/", 200)]
    # kill_run (queue preserved): get_run, then try_mark_run_dead marks job 5 dead
    obs.ok("kill.kill_run")
    assert obs.calls("kill.kill_run")[:2] == [
        ("GET", f"/runs/{run}", 200), ("GET", f"/runs/{run}/jobs/?fields=status,job_id", 200)]
    _post_then_put_tail = obs.calls("kill.kill_run")[2:]
    assert _post_then_put_tail == [("POST", f"/runs/{run}/jobs/", 400),
                                   ("PUT", f"/runs/{run}/jobs/5/", 200)]

    # every job of the run queued -> try_delete_jobs deletes the whole run
    purge = obs.runs["purge"]
    assert obs.calls("purge.remove_paddles_jobs")[-1] == ("DELETE", f"/runs/{purge}/", 200)
    assert obs.calls("purge.get_run_deleted") == [("GET", f"/runs/{purge}", 404)]
    assert "404" in obs.step("purge.get_run_deleted")["error"]
    assert obs.get(f"/runs/{purge}/").status_code == 404


# --- lock server half ----------------------------------------------------------------------

@pytest.fixture
def lock_obs(teuthology_observed):
    if not teuthology_observed.facts["nodes_available"]:
        pytest.skip(f"/nodes/ routes not served yet (GET /nodes/ answered "
                    f"{teuthology_observed.facts['nodes_probe_status']})")
    return teuthology_observed


def _node(obs, name):
    resp = obs.get(f"/nodes/{name}/")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_inventory_and_listing(lock_obs):
    obs = lock_obs
    for host in obs.facts["nodes"]:
        obs.ok(f"nodes.update_inventory_create.{host}")
        # update_inventory: PUT 404 -> POST /nodes/ (same body) -> 200
        assert obs.calls(f"nodes.update_inventory_create.{host}") == \
            [("PUT", f"/nodes/{host}/", 404), ("POST", "/nodes/", 200)]
    assert obs.calls("nodes.update_inventory_existing") == \
        [("PUT", "/nodes/smithi001.paddles.test/", 200)]
    assert obs.ok("nodes.update_lock_down") is True
    assert obs.calls("nodes.list_free_smithi") == \
        [("GET", "/nodes/?machine_type=smithi&up=1&locked=0&count=10", 200)]
    free = [n["name"] for n in obs.ok("nodes.list_free_smithi")]
    assert free == [f"smithi00{i}.paddles.test" for i in (1, 2, 3, 4, 6)]  # 005 is down
    assert obs.calls("nodes.list_free_multi") == \
        [("GET", "/nodes/?machine_type=smithi%7Cmira&up=1&locked=0", 200)]
    assert "mira001.paddles.test" in {n["name"] for n in obs.ok("nodes.list_free_multi")}
    assert obs.ok("nodes.get_status_unknown") == {}
    assert obs.calls("nodes.get_status_unknown") == \
        [("GET", "/nodes/nosuchnode001.paddles.test/", 404)]
    node = _node(obs, "smithi005.paddles.test")
    assert (node["up"], node["description"]) == (False, "broken disk")
    node = _node(obs, "smithi001.paddles.test")
    assert node["os_version"] == "24.04" and node["machine_type"] == "smithi"


def test_dispatcher_locks_machines_for_a_job(lock_obs):
    obs = lock_obs
    run = obs.runs["live"]
    obs.ok("live.1.block_and_lock_machines")
    calls = obs.calls("live.1.block_and_lock_machines")
    assert ("GET", "/nodes/?machine_type=smithi&up=1&locked=0&count=2", 200) in calls
    assert ("POST", "/nodes/lock_many/", 200) in calls
    targets = obs.facts["job1_targets"]
    assert len(targets) == 2
    # keys are canonical host names (no user@: paddles nodes carry no `user`)
    hosts = {key.split("@")[-1] for key in targets}
    # smithi001 runs another os_version, smithi005 is down
    assert hosts <= {f"smithi00{i}.paddles.test" for i in (2, 3, 4, 6)}
    for key, pub in targets.items():
        assert pub == f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key.split('@')[-1].split('.')[0]}" \
            f" root@{key.split('@')[-1]}"
    # not enough nodes: 503, teuthology logs it and returns nothing
    assert obs.ok("live.1.lock_many_too_many") == []
    (req,) = obs.step("live.1.lock_many_too_many")["requests"]
    assert (req["method"], req["path"], req["status"]) == ("POST", "/nodes/lock_many/", 503)
    assert req["message"].startswith("only ") and req["message"].endswith(" nodes available")
    # the job's targets reached paddles: its nodes list the job
    job1 = obs.get(f"/runs/{run}/jobs/1/").json()
    assert job1["targets"] == targets
    for host in hosts:
        listed = obs.get(f"/nodes/{host}/jobs/", params={"count": 10}).json()
        assert (run, "1") in {(j["name"], j["job_id"]) for j in listed}
    # supervisor.unlock_targets after the job passed: stale-check via //runs/, then unlock
    assert obs.ok("live.1.unlock_targets") is None
    calls = obs.calls("live.1.unlock_targets")
    assert ("GET", f"//runs/{run}/jobs/1/", 200) in calls
    assert sorted(c for c in calls if c[0] == "PUT") == \
        sorted(("PUT", f"/nodes/{h}/lock/", 200) for h in hosts)
    for host in hosts:
        assert _node(obs, host)["locked"] is False


def test_lock_one_unlock_one_unlock_many(lock_obs):
    obs = lock_obs
    run = obs.runs["live"]
    owner = obs.facts["owner"]
    assert obs.ok("lock.lock_one_stale") == {"status_code": 200, "ok": True}
    assert obs.ok("lock.lock_one_job6") == {"status_code": 200, "ok": True}
    (req,) = obs.step("lock.lock_one_job6")["requests"]
    assert (req["method"], req["path"], req["content_type"]) == \
        ("PUT", "/nodes/smithi006.paddles.test/lock/", None)  # no Content-Type
    assert obs.ok("lock.lock_one_taken") == {"status_code": 403, "ok": False}
    assert obs.step("lock.lock_one_taken")["requests"][0]["message"] == \
        "Cannot lock an already-locked node"
    status = obs.ok("lock.get_status_job6")
    assert (status["locked"], status["locked_by"], status["description"]) == \
        (True, owner, f"/archive/{run}/6")
    for key in ("up", "is_vm", "machine_type", "ssh_pub_key", "name"):
        assert key in status
    # find_stale_locks: locked for a job that finished long ago -> stale
    stale = obs.ok("lock.find_stale_locks")
    assert [n["name"] for n in stale] == ["smithi004.paddles.test"]
    assert ("GET", f"//runs/{run}/jobs/9/", 200) in obs.calls("lock.find_stale_locks")
    assert obs.ok("lock.unlock_many_stale") is True
    assert obs.calls("lock.unlock_many_stale") == [("POST", "/nodes/unlock_many/", 200)]
    # manual lock and unlock_one; a second unlock is a 403 that teuthology does not retry
    assert obs.ok("lock.unlock_one_manual") is True
    assert ("PUT", "/nodes/smithi003.paddles.test/lock/", 200) in obs.calls("lock.unlock_one_manual")
    assert obs.ok("lock.unlock_one_already") is False
    puts = [c for c in obs.calls("lock.unlock_one_already") if c[0] == "PUT"]
    assert puts == [("PUT", "/nodes/smithi003.paddles.test/lock/", 403)]
    # at that point only job 6's node was locked
    assert [n["name"] for n in obs.ok("lock.list_locked")] == ["smithi006.paddles.test"]
    assert obs.calls("lock.list_locked") == [("GET", "/nodes/?locked=1", 200)]


def test_kill_job_unlocks_its_targets(lock_obs):
    obs = lock_obs
    run = obs.runs["live"]
    calls = obs.calls("kill.kill_job")
    assert ("GET", f"//runs/{run}/jobs/6/", 200) in calls
    assert ("PUT", "/nodes/smithi006.paddles.test/lock/", 200) in calls
    assert "smithi006.paddles.test" in obs.summary["stopped_nodes"]
    assert _node(obs, "smithi006.paddles.test")["locked"] is False


def test_reimage_failure_streak_marks_node_down(lock_obs):
    obs = lock_obs
    assert obs.calls("reimage.check_and_mark_down") == [
        ("GET", "/nodes/smithi001.paddles.test/jobs/?count=2", 200),
        ("PUT", "/nodes/smithi001.paddles.test/", 200)]
    status = obs.ok("reimage.get_status")
    assert (status["up"], status["description"]) == (False, "reimage failed 2 times")
    # the end state teuthology sees and the server's own listing agree: nothing locked
    everything = obs.ok("nodes.list_all")
    assert not [n["name"] for n in everything if n["locked"]]
    server = obs.get("/nodes/").json()
    assert {n["name"]: n["locked"] for n in server} == \
        {n["name"]: n["locked"] for n in everything}
