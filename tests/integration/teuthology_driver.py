"""Drive the real teuthology package (from PyPI) against a running paddles server.

Run with the Python of the teuthology venv (teuthology needs Python >= 3.12):

    .venv-teuthology/bin/python tests/integration/teuthology_driver.py URL OUT.json WORKDIR

Every step calls teuthology's own functions (report, kill, lock, dispatcher.supervisor),
the way the scheduler, dispatcher, supervisor, teuthology-report, teuthology-kill and
teuthology-lock call them. Each HTTP request teuthology makes is recorded (method, path,
status), so the test can check the exact wire traffic, and the outcome of every step is
written as JSON to OUT.json (and printed on stdout after a marker line). A step that
raises is recorded as failed and the driver goes on, so one incompatibility does not
hide the others. The driver exits 0 unless it could not run at all.

Safety: teuthology's built-in defaults point at the Sepia lab's paddles. WORKDIR gets a
teuthology.yaml naming only the local server, TEUTHOLOGY_CONFIG points at it before
teuthology is imported, and the driver refuses to run unless both servers are loopback
URLs. Node names live under the reserved `.test` domain, and the one teuthology function
that would SSH into a node while unlocking it (lock.ops.stop_node) is replaced by a stub.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

BASE, OUT, WORKDIR = sys.argv[1].rstrip("/"), Path(sys.argv[2]), Path(sys.argv[3])
if urlsplit(BASE).hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(f"refusing to drive a non-loopback server: {BASE}")

LAB_DOMAIN = "paddles.test"
OWNER = "scheduled_teuthint@teuthology"
SHA1 = "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
# teuthology's default results_server ends with '/', and node_active_job() builds
# f"{results_server}/runs/..." from it: keep the slash to produce `//runs/`.
SERVER = BASE + "/"

WORKDIR.mkdir(parents=True, exist_ok=True)
ARCHIVE = WORKDIR / "archive"
ARCHIVE.mkdir(exist_ok=True)
config_yaml = WORKDIR / "teuthology.yaml"
config_yaml.write_text(
    f"results_server: {SERVER}\n"
    f"lock_server: {SERVER}\n"
    f"lab_domain: {LAB_DOMAIN}\n"
    f"archive_base: {ARCHIVE}\n"
    "reserve_machines: 0\n"
    "use_conserver: false\n"
)
os.environ["TEUTHOLOGY_CONFIG"] = str(config_yaml)
os.chdir(WORKDIR)  # ResultsReporter may write 'last_successful_run' into the cwd

import requests  # noqa: E402  (after TEUTHOLOGY_CONFIG is set)

import teuthology  # noqa: E402
from teuthology.config import config  # noqa: E402

# Set programmatically too, as a lab's scripts do.
config.results_server = SERVER
config.lock_server = SERVER
config.lab_domain = LAB_DOMAIN
config.archive_base = str(ARCHIVE)
config.reserve_machines = 0
for key in ("results_server", "lock_server"):
    assert urlsplit(config[key]).hostname in ("127.0.0.1", "localhost", "::1"), config[key]

import teuthology.contextutil  # noqa: E402
import teuthology.lock.ops as lock_ops  # noqa: E402
import teuthology.lock.query as lock_query  # noqa: E402
from teuthology import kill, report  # noqa: E402
from teuthology.dispatcher import supervisor  # noqa: E402

# --- instrumentation -------------------------------------------------------------------
REQUESTS: list[dict] = []
_send = requests.Session.send


def _recording_send(self, request, **kwargs):
    parts = urlsplit(request.url)
    entry = {"method": request.method,
             "path": parts.path + (f"?{parts.query}" if parts.query else ""),
             "content_type": request.headers.get("Content-Type")}
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        entry["status"] = None
        entry["error"] = "blocked: not the local server"
        REQUESTS.append(entry)
        raise requests.ConnectionError(f"driver blocked a request to {request.url}")
    try:
        response = _send(self, request, **kwargs)
    except Exception as exc:
        entry["status"] = None
        entry["error"] = repr(exc)
        REQUESTS.append(entry)
        raise
    entry["status"] = response.status_code
    if response.status_code >= 300:
        try:
            entry["message"] = response.json().get("message")
        except Exception:
            entry["message"] = response.text[:200]
    REQUESTS.append(entry)
    return response


requests.Session.send = _recording_send

# teuthology retries failed calls with safe_while (1 s and more between tries, 10 tries).
# Keep its retry logic but cap each sleep, and record every retry: none is expected.
RETRIES: list[dict] = []
_safe_while_init = teuthology.contextutil.safe_while.__init__


def _fast_safe_while_init(self, *args, **kwargs):
    action = kwargs.get("action")

    def sleeper(seconds):
        RETRIES.append({"action": action, "would_sleep": seconds})
        time.sleep(min(seconds, 0.05))

    kwargs.setdefault("_sleeper", sleeper)
    _safe_while_init(self, *args, **kwargs)


teuthology.contextutil.safe_while.__init__ = _fast_safe_while_init

STOPPED_NODES: list[str] = []


def _stop_node_stub(name, status=None):
    STOPPED_NODES.append(name)  # the real one powers the node off over SSH/IPMI


lock_ops.stop_node = _stop_node_stub


def jsonable(value):
    return json.loads(json.dumps(value, default=repr))


STEPS: dict[str, dict] = {}


def step(name, fn, *args, **kwargs):
    """Run one teuthology call, recording its result (or exception) and its requests."""
    mark = len(REQUESTS)
    record: dict = {}
    result = None
    try:
        result = fn(*args, **kwargs)
        record["ok"] = True
        if isinstance(result, requests.Response):
            record["result"] = {"status_code": result.status_code, "ok": result.ok}
        else:
            record["result"] = jsonable(result)
    except BaseException as exc:  # AssertionError and MaxWhileTries included
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()[-3000:]
    record["requests"] = REQUESTS[mark:]
    STEPS[name] = record
    return result


def raw(method, path, **kwargs):
    """A plain request, for setup the test needs that teuthology has no call for."""
    return requests.request(method, BASE + path, timeout=30, **kwargs)


# --- data --------------------------------------------------------------------------------
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H:%M:%S")
RUNS = {
    "archive": f"teuthint-{stamp}-rados-main-distro-default-smithi",
    "live": f"teuthint-{stamp}-rbd-main-distro-default-smithi",
    "purge": f"teuthint-{stamp}-fs-main-distro-default-smithi",
    "reimage": f"teuthint-{stamp}-smoke-main-distro-default-smithi",
}
NODES = [f"smithi00{i}.{LAB_DOMAIN}" for i in range(1, 7)] + [f"mira001.{LAB_DOMAIN}"]


def ssh_key(host: str) -> str:
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{host.split('.')[0]} root@{host}"


def job_config(run: str, job_id: int, **extra) -> dict:
    cfg = {
        "name": run, "job_id": str(job_id), "owner": OWNER,
        "description": f"rbd/basic/{{clusters/fixed-1 tasks/rbd_api_tests}} #{job_id}",
        "archive_path": f"/archive/{run}/{job_id}",
        "machine_type": "smithi", "os_type": "ubuntu", "os_version": "22.04",
        "arch": "x86_64", "suite": "rbd", "branch": "main", "sha1": SHA1,
        "flavor": "default", "priority": 70, "teuthology_branch": "main",
        "suite_branch": "main", "verbose": False, "last_in_suite": False,
        "roles": [["mon.a", "osd.0", "client.0"], ["mon.b", "osd.1"]],
        "tasks": [{"install": None}, {"ceph": None}, {"workunit": {"clients": {"all": ["rbd/test_librbd.sh"]}}}],
        "overrides": {"ceph": {"conf": {"osd": {"debug osd": 20}}, "sha1": SHA1}},
    }
    cfg.update(extra)
    return cfg


def write_archive_job(run: str, job_id: int, summary: dict | None, mtime: float) -> None:
    import yaml
    job_dir = ARCHIVE / run / str(job_id)
    job_dir.mkdir(parents=True, exist_ok=True)
    cfg = job_config(run, job_id, suite="rados",
                     description=f"rados/singleton/{{all/mon-config msgr/async}} #{job_id}")
    (job_dir / "orig.config.yaml").write_text(yaml.safe_dump(cfg))
    (job_dir / "config.yaml").write_text(yaml.safe_dump(dict(cfg, targets={
        f"ubuntu@smithi10{job_id}.{LAB_DOMAIN}": ssh_key(f"smithi10{job_id}")})))
    (job_dir / "info.yaml").write_text(yaml.safe_dump({
        "name": run, "job_id": str(job_id), "owner": OWNER, "pid": 40000 + job_id,
        "description": cfg["description"], "archive_path": str(job_dir)}))
    if summary is not None:
        (job_dir / "summary.yaml").write_text(yaml.safe_dump(summary))
    log = job_dir / "teuthology.log"
    log.write_text("2024-01-15T20:00:05.000 INFO:teuthology.run:Summary data:\n")
    os.utime(log, (mtime, mtime))


def main() -> None:
    probe = raw("GET", "/nodes/")
    nodes_available = probe.status_code not in (404, 405)
    facts: dict = {"base": BASE, "results_server": config.results_server,
                   "lock_server": config.lock_server, "runs": RUNS, "nodes": NODES,
                   "owner": OWNER, "nodes_available": nodes_available,
                   "nodes_probe_status": probe.status_code,
                   "teuthology_version": teuthology.__version__,
                   "python": sys.version.split()[0]}
    live = RUNS["live"]

    # ---- 1. teuthology-report from an archive directory (report_run / report_jobs) ----
    log_mtime = datetime.datetime(2024, 1, 15, 21, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
    arch = RUNS["archive"]
    write_archive_job(arch, 1, {"success": True, "status": "pass", "duration": 812}, log_mtime)
    write_archive_job(arch, 2, {"success": False, "status": "fail", "duration": 95,
                                "failure_reason": "Command failed on smithi102 with status 1"},
                      log_mtime)
    write_archive_job(arch, 3, None, log_mtime)  # still running: no summary.yaml
    reporter = report.ResultsReporter(archive_base=str(ARCHIVE))
    facts["reporter_base_uri"] = reporter.base_uri
    step("archive.report_run", reporter.report_run, arch)
    step("archive.report_run_again_skipped", reporter.report_run, arch)
    refresher = report.ResultsReporter(archive_base=str(ARCHIVE), refresh=True)
    step("archive.report_run_refresh", refresher.report_run, arch)
    step("archive.report_jobs_dead", reporter.report_jobs, arch, ["3"], dead=True)

    # ---- 2. nodes: inventory, lock, list (lock server half) -----------------------------
    if nodes_available:
        for host in NODES:
            mtype = host.split("0")[0]
            step(f"nodes.update_inventory_create.{host}", lock_ops.update_inventory, {
                "name": host, "user": "ubuntu", "arch": "x86_64", "os_type": "ubuntu",
                "os_version": "22.04", "ssh_pub_key": ssh_key(host), "up": True,
                "machine_type": mtype})
        # a second inventory update of an existing node is a plain PUT
        step("nodes.update_inventory_existing", lock_ops.update_inventory, {
            "name": NODES[0], "user": "ubuntu", "arch": "x86_64", "os_type": "ubuntu",
            "os_version": "24.04", "ssh_pub_key": ssh_key(NODES[0]), "up": True})
        step("nodes.update_lock_down", lock_ops.update_lock, "smithi005", status="down",
             description="broken disk")
        step("nodes.list_free_smithi", lock_query.list_locks, machine_type="smithi",
             up=True, locked=False, count=10)
        step("nodes.list_free_multi", lock_query.list_locks, machine_type="smithi,mira",
             up=True, locked=False)
        step("nodes.get_status_unknown", lock_query.get_status, "nosuchnode001")

    # ---- 3. scheduler: every job of the live run is queued -----------------------------
    configs = {i: job_config(live, i) for i in (1, 2, 3, 4, 5, 6, 7)}
    for i, cfg in configs.items():
        step(f"live.queue.{i}", report.try_push_job_info, cfg, {"status": "queued"})
    step("live.queue_again.1", report.try_push_job_info, configs[1], {"status": "queued"})

    # ---- 4. dispatcher + supervisor: job 1 locks machines, runs, passes ------------------
    cfg1 = configs[1]
    step("live.1.running", report.try_push_job_info, cfg1, {"status": "running"})
    if nodes_available:
        ctx = supervisor.create_fake_context(cfg1, block=False)
        step("live.1.block_and_lock_machines", lock_ops.block_and_lock_machines,
             ctx, 2, "smithi", reimage=False, tries=1)
        facts["job1_targets"] = cfg1.get("targets")
        step("live.1.lock_many_too_many", lock_ops.lock_many, ctx, 10, "smithi",
             OWNER, cfg1["archive_path"], "ubuntu", "22.04", "x86_64", reimage=False)
    else:
        cfg1["targets"] = {f"ubuntu@smithi002.{LAB_DOMAIN}": ssh_key("smithi002")}
        step("live.1.running_targets", report.try_push_job_info, cfg1, {"status": "running"})
    step("live.1.heartbeat", report.try_push_job_info, {"name": live, "job_id": "1"})
    step("live.1.pass", report.try_push_job_info, cfg1,
         {"success": True, "status": "pass", "duration": 1234})
    # supervisor, when the child exits: 'dead' must not override the reported pass
    step("live.1.supervisor_dead", report.try_push_job_info,
         {"name": live, "job_id": "1"}, {"status": "dead"})
    if nodes_available:
        step("live.1.unlock_targets", supervisor.unlock_targets, cfg1)

    # ---- 5. more jobs: fail, dead (watchdog timeout), running ---------------------------
    step("live.2.running", report.try_push_job_info, configs[2], {"status": "running"})
    step("live.2.waiting", report.try_push_job_info, configs[2], {"status": "waiting"})
    step("live.2.running_again", report.try_push_job_info, configs[2], {"status": "running"})
    step("live.2.fail", report.try_push_job_info, configs[2],
         {"success": False, "status": "fail",
          "failure_reason": "Command failed (workunit test rbd/test_librbd.sh)"})
    step("live.2.supervisor_dead", report.try_push_job_info,
         {"name": live, "job_id": "2"}, {"status": "dead"})
    step("live.3.running", report.try_push_job_info, configs[3], {"status": "running"})
    step("live.3.dead", report.try_push_job_info, {"name": live, "job_id": "3"},
         {"status": "dead", "failure_reason": "hit max job timeout"})
    step("live.5.running", report.try_push_job_info, configs[5], {"status": "running"})
    step("live.5.heartbeat", report.try_push_job_info, {"name": live, "job_id": "5"})
    # a finished job whose last update is long past: its node's lock looks stale
    cfg9 = job_config(live, 9)
    step("live.9.pass_old", report.ResultsReporter().report_job, live, "9",
         dict(cfg9, status="pass", success=True, updated="2020-01-01 00:00:00"))

    # ---- 6. reads teuthology makes ------------------------------------------------------
    rr = report.ResultsReporter()
    step("read.get_run_fields", rr.get_run, live, fields=["name", "status"])
    step("read.get_run", rr.get_run, live)
    step("read.get_jobs", rr.get_jobs, live)
    step("read.get_jobs_fields", rr.get_jobs, live, fields=["status"])
    step("read.get_jobs_job_id_field", rr.get_jobs, live, fields=["job_id"])
    step("read.get_job", rr.get_jobs, live, "1")
    step("read.get_job_fields", rr.get_jobs, live, "2", fields=["status"])
    # the stale-lock check builds `{results_server}/runs/...`, i.e. `//runs/...` here
    step("read.node_active_job_running", lock_query.node_active_job, "smithi900",
         {"description": f"/archive/{live}/5"})
    step("read.node_active_job_finished", lock_query.node_active_job, "smithi900",
         {"description": f"/archive/{live}/9"}, grace_time=5)

    # ---- 7. lock ops around the live run ------------------------------------------------
    if nodes_available:
        step("lock.lock_one_stale", lock_ops.lock_one, "smithi004", OWNER, f"/archive/{live}/9")
        step("lock.lock_one_job6", lock_ops.lock_one, "smithi006", OWNER, f"/archive/{live}/6")
        step("lock.lock_one_taken", lock_ops.lock_one, "smithi006", "someone@else", "mine now")
        step("lock.get_status_job6", lock_query.get_status, "smithi006")
        step("lock.find_stale_locks", lock_query.find_stale_locks, OWNER)
        step("lock.unlock_many_stale", lock_ops.unlock_many, ["smithi004"], OWNER)
        step("lock.lock_one_manual", lock_ops.lock_one, "smithi003", "alice@lab", "debugging")
        step("lock.unlock_one_manual", lock_ops.unlock_one, "smithi003", "alice@lab")
        step("lock.unlock_one_already", lock_ops.unlock_one, "smithi003", "alice@lab")
        step("lock.list_locked", lock_query.list_locks, locked=True)

    # ---- 8. teuthology-kill on one job (pid + targets) ----------------------------------
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               f"{live}/6"])
    targets6 = {f"ubuntu@smithi006.{LAB_DOMAIN}": ssh_key("smithi006")}
    step("live.6.running", report.try_push_job_info, configs[6],
         {"status": "running", "pid": victim.pid, "targets": targets6})
    step("kill.kill_job", kill.kill_job, live, "6")
    try:
        facts["victim_returncode"] = victim.wait(timeout=10)
    except subprocess.TimeoutExpired:
        victim.kill()
        facts["victim_returncode"] = "still running after kill_job"
        victim.wait()
    facts["victim_pid"] = victim.pid

    # ---- 9. deletes: one job explicitly, queued jobs as teuthology-kill does ------------
    step("delete.delete_job", rr.delete_job, live, "7")
    step("delete.remove_paddles_jobs", kill.remove_paddles_jobs, live)
    # teuthology-kill on the whole run (queue preserved: no beanstalk here); marks the
    # unfinished job 5 dead via try_mark_run_dead
    step("kill.kill_run", kill.kill_run, live, None, None, preserve_queue=True)

    purge = RUNS["purge"]
    for i in (1, 2):
        step(f"purge.queue.{i}", report.try_push_job_info, job_config(purge, i), {"status": "queued"})
    step("purge.remove_paddles_jobs", kill.remove_paddles_jobs, purge)  # all queued: run deleted
    step("purge.get_run_deleted", rr.get_run, purge)

    # ---- 10. dispatcher's reimage-failure streak check marks a node down -------------------
    if nodes_available:
        reim = RUNS["reimage"]
        target = {f"ubuntu@smithi001.{LAB_DOMAIN}": ssh_key("smithi001")}
        for i in (1, 2):
            step(f"reimage.job.{i}", report.try_push_job_info, job_config(reim, i, targets=target),
                 {"status": "dead",
                  "failure_reason": "Error reimaging machines: FOG API timed out"})
        step("reimage.check_and_mark_down", supervisor.check_for_reimage_failures_and_mark_down,
             target, count=2)
        step("reimage.get_status", lock_query.get_status, "smithi001")
        step("nodes.list_all", lock_query.list_locks)

    summary = {"facts": facts, "steps": STEPS, "requests": REQUESTS, "retries": RETRIES,
               "stopped_nodes": STOPPED_NODES}
    OUT.write_text(json.dumps(summary, indent=1, default=repr))
    print("TEUTHOLOGY-DRIVER-SUMMARY")
    print(json.dumps({"steps": {k: v["ok"] for k, v in STEPS.items()},
                      "failed": [k for k, v in STEPS.items() if not v["ok"]],
                      "retries": len(RETRIES), "requests": len(REQUESTS)}))


if __name__ == "__main__":
    main()
