"""The real teuthology client with authentication on: the token rides in its URLs.

`paddles token create` makes the token teuthology uses (read, write and lock, owned by the
scheduler's locked_by) and gunicorn serves with PADDLES_AUTH_ENABLED=1. teuthology is
configured with `results_server` and `lock_server` = http://teuthology:TOKEN@host:port/
and nothing else changes. Runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests

from tests.integration.conftest import (REPO, paddles_command, run_server,
                                        temporary_database)

pytestmark = pytest.mark.slow
DRIVER = REPO / "tests" / "integration" / "teuthology_auth_driver.py"
OWNER = "scheduled_teuthint@teuthology"


@pytest.fixture(scope="module")
def auth_observed(teuthology_python, teuthology_backend, tmp_path_factory):
    work = tmp_path_factory.mktemp("teuth-auth")
    with temporary_database(teuthology_backend, tmp_path_factory) as url:
        assert paddles_command(["migrate"], url, work).returncode == 0
        secrets = {}
        for name, roles, owner in (("teuthology", ("read", "write", "lock"), OWNER),
                                   ("ops", ("admin",), None)):
            argv = ["token", "create", "--name", name]
            argv += [arg for role in roles for arg in ("--role", role)]
            argv += ["--owner", owner] if owner else []
            made = paddles_command(argv, url, work)
            assert made.returncode == 0, made.stderr
            secrets[name] = made.stdout.strip()
        with run_server(url, work, PADDLES_AUTH_ENABLED="1") as base:
            out = work / "summary.json"
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
                   "TZ": "UTC", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
            proc = subprocess.run([str(teuthology_python), str(DRIVER), base,
                                   secrets["teuthology"], "pdl_" + "x" * 43, str(out),
                                   str(work / "driver")],
                                  cwd=work, env=env, capture_output=True, text=True,
                                  timeout=240)
            output = proc.stdout + proc.stderr
            if proc.returncode or not out.exists():
                pytest.fail(f"teuthology auth driver exited {proc.returncode}:\n{output[-4000:]}")
            summary = json.loads(out.read_text())
            admin = {"Authorization": f"Bearer {secrets['ops']}"}
            summary["server_run"] = requests.get(f"{base}/runs/{summary['run']}/",
                                                 headers=admin, timeout=30).json()
            summary["server_nodes"] = requests.get(f"{base}/nodes/", headers=admin,
                                                   timeout=30).json()
            summary["output"] = output
            (work / "driver.log").write_text(output)
            summary["secret"] = secrets["teuthology"]
            yield summary


def _step(obs, name):
    assert name in obs["steps"], f"driver did not run {name}"
    return obs["steps"][name]


def _ok(obs, name):
    record = _step(obs, name)
    assert record["ok"], f"{name} raised:\n{record.get('traceback')}"
    return record["result"]


def _calls(obs, name):
    return [(r["method"], r["path"], r["status"]) for r in _step(obs, name)["requests"]]


def test_reports_go_through_with_the_token_in_the_url(auth_observed):
    obs = auth_observed
    run = obs["run"]
    _ok(obs, "good.report_job")
    assert _calls(obs, "good.report_job") == [("POST", f"/runs/{run}/jobs/", 200)]
    _ok(obs, "good.push_running")
    _ok(obs, "good.push_pass")
    assert _calls(obs, "good.push_pass")[-1] == ("PUT", f"/runs/{run}/jobs/1/", 200)
    assert _ok(obs, "good.get_run")["name"] == run
    # every request carried the token as basic auth, taken by requests from the URL
    good = [r for name, s in obs["steps"].items() if name.startswith("good.")
            for r in s["requests"]]
    assert good and {r["auth"] for r in good} == {"Basic"}
    assert obs["server_run"]["status"] == "finished pass"
    assert [j["job_id"] for j in obs["server_run"]["jobs"]] == ["1"]


def test_locks_go_through_and_follow_the_token_owner(auth_observed):
    obs = auth_observed
    first, second = obs["nodes"]
    for name in obs["nodes"]:
        assert [c[2] for c in _calls(obs, f"good.update_inventory.{name}")] == [404, 200]
    assert _ok(obs, "good.lock_one") == {"status_code": 200, "ok": True}
    assert _ok(obs, "good.get_status")["locked_by"] == OWNER
    assert [n["name"] for n in _ok(obs, "good.list_locked")] == [first]
    # the token is the scheduler's: it cannot lock as somebody else
    assert _ok(obs, "good.lock_one_as_someone_else") == {"status_code": 403, "ok": False}
    assert _step(obs, "good.lock_one_as_someone_else")["requests"][0]["message"] == \
        f"Cannot lock - this token may only lock nodes as {OWNER}"
    assert _ok(obs, "good.unlock_one") is True
    assert _ok(obs, "good.get_status_after")["locked"] is False
    nodes = {n["name"]: n for n in obs["server_nodes"]}
    assert set(nodes) == {first, second}
    assert not nodes[first]["locked"] and not nodes[second]["locked"]


def test_a_wrong_token_or_none_fails(auth_observed):
    obs = auth_observed
    record = _step(obs, "wrong.report_job")
    assert not record["ok"]  # teuthology gives up after its retries
    assert {c[2] for c in _calls(obs, "wrong.report_job")} == {401}
    assert not _step(obs, "wrong.get_run")["ok"]
    assert _ok(obs, "wrong.lock_one") == {"status_code": 401, "ok": False}
    assert _step(obs, "wrong.lock_one")["requests"][0]["message"] == \
        "invalid, expired or revoked token"
    assert _ok(obs, "none.lock_one") == {"status_code": 401, "ok": False}
    assert _step(obs, "none.lock_one")["requests"][0]["auth"] is None
    # the wrong token changed nothing: job 2 was never stored, the node stayed locked
    assert [j["job_id"] for j in obs["server_run"]["jobs"]] == ["1"]
    assert {c[2] for c in _calls(obs, "wrong.unlock_one")} == {401}


def test_where_teuthology_shows_the_secret(auth_observed):
    """teuthology logs the failing URL, user info and all, when a report fails: the good
    token (whose calls succeeded) is not in its output, the wrong one is (SECURITY.md:
    treat teuthology logs as holding the token)."""
    output = auth_observed["output"]
    assert auth_observed["secret"] not in output
    assert "http://teuthology:pdl_" + "x" * 43 + "@" in output
