"""supervisord_paddles.conf as shipped: supervisord starts, migrates and serves paddles."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, free_port, wait_for

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_supervisord_runs_paddles_from_the_repo_conf(tmp_path, database_url, db_engine):
    # A deployment directory laid out like the checkout: the conf, gunicorn_config.py, .venv
    shutil.copy(REPO / "supervisord_paddles.conf", tmp_path)
    shutil.copy(REPO / "gunicorn_config.py", tmp_path)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    (tmp_path / "var" / "log").mkdir(parents=True)
    port = free_port()
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2")
    conf = str(tmp_path / "supervisord_paddles.conf")
    ctl = [str(BIN / "supervisorctl"), "-c", conf]
    subprocess.run([str(BIN / "supervisord"), "-c", conf], env=env, check=True, cwd=tmp_path)
    try:
        wait_for(f"http://127.0.0.1:{port}/runs/", timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs/", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read()) == []
        deadline = time.monotonic() + 20  # supervisord says RUNNING after startsecs
        while "RUNNING" not in (state := _status(ctl)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "RUNNING" in state
        while "RUNNING" not in (state := _status(ctl, "paddles-dispatch")) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "RUNNING" in state  # the webhook dispatch worker beside it
    finally:
        subprocess.run(ctl + ["shutdown"], capture_output=True)
    log = (tmp_path / "var" / "log" / "paddles.log").read_text()
    assert "schema is current" in log and "Booting worker" in log


def _status(ctl, program="paddles") -> str:
    return subprocess.run(ctl + ["status", program], capture_output=True, text=True).stdout
