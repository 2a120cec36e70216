"""Drive the real teuthology client against a paddles that requires API tokens.

    .venv-teuthology/bin/python tests/integration/teuthology_auth_driver.py \
        URL GOOD_SECRET WRONG_SECRET OUT.json WORKDIR

teuthology.yaml names `results_server` and `lock_server` as http://teuthology:SECRET@host/,
the way a lab would: teuthology itself is unchanged, requests turns the URL's user info
into basic auth. Reports, reads and node locks go through with the good token; the same
calls with a wrong token and with no token are recorded too (they must fail). Every
request is recorded as (method, path, status, auth scheme sent) into OUT.json. As in
teuthology_driver.py: loopback servers only, `.test` node names, stop_node stubbed.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE, GOOD, WRONG, OUT, WORKDIR = (sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3],
                                   Path(sys.argv[4]), Path(sys.argv[5]))
if urlsplit(BASE).hostname not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(f"refusing to drive a non-loopback server: {BASE}")


def server_url(secret: str | None) -> str:
    parts = urlsplit(BASE)
    netloc = parts.netloc if secret is None else f"teuthology:{secret}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, "/", "", ""))


LAB_DOMAIN = "paddles.test"
OWNER = "scheduled_teuthint@teuthology"
WORKDIR.mkdir(parents=True, exist_ok=True)
config_yaml = WORKDIR / "teuthology.yaml"
config_yaml.write_text(f"results_server: {server_url(GOOD)}\nlock_server: {server_url(GOOD)}\n"
                       f"lab_domain: {LAB_DOMAIN}\narchive_base: {WORKDIR}\n"
                       "reserve_machines: 0\nuse_conserver: false\n")
os.environ["TEUTHOLOGY_CONFIG"] = str(config_yaml)
os.chdir(WORKDIR)

import requests  # noqa: E402

import teuthology.contextutil  # noqa: E402
import teuthology.lock.ops as lock_ops  # noqa: E402
import teuthology.lock.query as lock_query  # noqa: E402
from teuthology import report  # noqa: E402
from teuthology.config import config  # noqa: E402

REQUESTS: list[dict] = []
_send = requests.Session.send


def _recording_send(self, request, **kwargs):
    parts = urlsplit(request.url)
    entry = {"method": request.method, "path": parts.path,
             "auth": (request.headers.get("Authorization") or " ").split(" ")[0] or None}
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise requests.ConnectionError(f"driver blocked a request to {request.url}")
    response = _send(self, request, **kwargs)
    entry["status"] = response.status_code
    if response.status_code >= 300:
        try:
            entry["message"] = response.json().get("message")
        except ValueError:
            entry["message"] = response.text[:200]
    REQUESTS.append(entry)
    return response


requests.Session.send = _recording_send
_safe_while_init = teuthology.contextutil.safe_while.__init__


def _fast_safe_while_init(self, *args, **kwargs):
    kwargs.setdefault("_sleeper", lambda seconds: time.sleep(min(seconds, 0.01)))
    kwargs["tries"] = min(kwargs.get("tries", 3), 3)  # failures are expected here: be quick
    _safe_while_init(self, *args, **kwargs)


teuthology.contextutil.safe_while.__init__ = _fast_safe_while_init
lock_ops.stop_node = lambda name, status=None: None  # the real one powers the node off

STEPS: dict[str, dict] = {}


def step(name, fn, *args, **kwargs):
    mark = len(REQUESTS)
    record: dict = {}
    try:
        result = fn(*args, **kwargs)
        record["ok"] = True
        if isinstance(result, requests.Response):
            result = {"status_code": result.status_code, "ok": result.ok}
        record["result"] = json.loads(json.dumps(result, default=repr))
    except BaseException as exc:
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()[-2000:]
    record["requests"] = REQUESTS[mark:]
    STEPS[name] = record


def use(secret: str | None) -> None:
    config.results_server = config.lock_server = server_url(secret)


def main() -> None:
    stamp = time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime())
    run = f"teuthauth-{stamp}-rados-main-distro-default-smithi"
    nodes = [f"smithi01{i}.{LAB_DOMAIN}" for i in (1, 2)]
    job = {"name": run, "job_id": "1", "owner": OWNER, "description": "rados/basic #1",
           "machine_type": "smithi", "suite": "rados", "branch": "main"}

    use(GOOD)
    step("good.report_job", report.ResultsReporter().report_job, run, "1",
         dict(job, status="queued"))
    step("good.push_running", report.try_push_job_info, job, {"status": "running"})
    for name in nodes:
        step(f"good.update_inventory.{name}", lock_ops.update_inventory, {
            "name": name, "machine_type": "smithi", "up": True, "os_type": "ubuntu",
            "os_version": "22.04", "arch": "x86_64", "ssh_pub_key": "ssh-ed25519 AAAA"})
    step("good.lock_one", lock_ops.lock_one, nodes[0], OWNER, f"/archive/{run}/1")
    step("good.get_status", lock_query.get_status, nodes[0])
    step("good.list_locked", lock_query.list_locks, locked=True)
    step("good.lock_one_as_someone_else", lock_ops.lock_one, nodes[1], "intruder@elsewhere",
         "not mine")
    step("good.push_pass", report.try_push_job_info, job,
         {"status": "pass", "success": True})
    step("good.get_run", report.ResultsReporter().get_run, run)

    use(WRONG)
    step("wrong.report_job", report.ResultsReporter().report_job, run, "2",
         dict(job, job_id="2", status="queued"))
    step("wrong.get_run", report.ResultsReporter().get_run, run)
    step("wrong.lock_one", lock_ops.lock_one, nodes[1], OWNER, "with a wrong token")
    step("wrong.unlock_one", lock_ops.unlock_one, nodes[0], OWNER)

    use(None)
    step("none.lock_one", lock_ops.lock_one, nodes[1], OWNER, "with no token")

    use(GOOD)
    step("good.unlock_one", lock_ops.unlock_one, nodes[0], OWNER)
    step("good.get_status_after", lock_query.get_status, nodes[0])

    OUT.write_text(json.dumps({"run": run, "nodes": nodes, "owner": OWNER, "steps": STEPS,
                               "requests": REQUESTS}, indent=1, default=repr))


if __name__ == "__main__":
    main()
