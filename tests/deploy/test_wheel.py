"""A built wheel is self-contained: installed outside the checkout, `paddles migrate` and
`paddles serve` work on a fresh SQLite database (migrations and gunicorn_config.py are
package data, not files read from a source tree).

How it stays under a minute: the wheel is built with pip (its cache keeps the build
backend), then installed with --no-deps into a new virtualenv made without pip. The
dependencies come from the test virtualenv through a .pth line naming its site-packages
directory: Python adds that directory to sys.path but does not run the .pth files inside
it, so the editable install of this checkout there (a .pth import hook) is not seen, and the
only `paddles` importable is the wheel's, which the test checks. Installing every
dependency from the cache instead took ~40 s on its own on this 2-core machine.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from paddles import resources
from tests.deploy.conftest import REPO, free_port, stop, wait_for

pytestmark = pytest.mark.slow

# what a wheel is built from; the rest of the repository (tests, docs, bench) is left out
IGNORED = shutil.ignore_patterns(".git", ".venv*", "var", "build", "dist", "*.egg-info",
                                 "__pycache__", ".pytest_cache", "tests", "docs", "bench",
                                 "config.py", "alembic.ini")


def _run(argv, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv outside the checkout with the paddles wheel installed; its bin/."""
    top = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, top / "src", ignore=IGNORED)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(top / "dist"),
          str(top / "src")])
    wheel, = (top / "dist").glob("paddles-*.whl")
    venv = top / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"]).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "paddles_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv / "bin"


def test_the_wheel_carries_what_run_time_reads(installed, tmp_path):
    found = _run([str(installed / "python"), "-c",
                  "import paddles, paddles.resources as r; print(paddles.__file__); "
                  "print(r.is_checkout()); print(r.path('alembic')); "
                  "print(r.path('gunicorn_config.py'))"], cwd=tmp_path).stdout.split()
    venv = str(installed.parent)
    assert found[0].startswith(venv + "/"), found  # the wheel's paddles, not the checkout's
    assert found[1] == "False"
    assert all(path.startswith(venv + "/") for path in found[2:]), found
    packaged = Path(found[2]).parent
    for pattern in resources.SHIPPED:
        assert sorted(p.name for p in packaged.glob(pattern)) == \
            sorted(p.name for p in REPO.glob(pattern)), pattern


def test_installed_paddles_migrates_and_serves_a_fresh_sqlite_database(installed, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PADDLES_", "PROMETHEUS_")) and k != "PYTHONPATH"}
    env.update(PADDLES_DATABASE_URL=f"sqlite:///{tmp_path}/fresh.db", PADDLES_WORKERS="1",
               PADDLES_THREADS="2", PADDLES_DATA_DIR=str(tmp_path / "var"))
    done = _run([str(installed / "paddles"), "migrate"], cwd=tmp_path, env=env)
    assert "Running upgrade  -> 0001" in done.stderr and "schema is current" in done.stderr
    port = free_port()
    env["PADDLES_BIND"] = f"127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(installed / "paddles"), "serve"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(f"http://127.0.0.1:{port}/ready", timeout=60, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as resp:
            assert b'"migrations":"current"' in resp.read().replace(b" ", b"")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/runs/teuthology-2024-01-15_"
                                     "20:00:03-rados-main-distro-default-smithi/jobs/",
                                     data=b'{"job_id": "1", "status": "queued"}', method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    finally:
        stop(proc)
    assert str(installed.parent) in log.read_text()  # the packaged gunicorn_config.py
