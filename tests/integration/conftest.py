"""Fixtures for driving the real teuthology client against a real paddles server.

- `teuthology_python`: a Python >= 3.12 venv with teuthology from PyPI, created on first
  use in .venv-teuthology/ (gitignored; PADDLES_TEUTHOLOGY_VENV overrides the place,
  PADDLES_TEUTHOLOGY_SPEC the requirement, PADDLES_TEUTHOLOGY_PYTHON the interpreter).
  The first install takes about 20-40 s, later runs reuse it (a stamp file records what
  was installed). A file lock makes concurrent pytest-xdist workers wait for one install.
- `teuthology_server`: gunicorn with gunicorn_config.py on a fresh database (SQLite file,
  and a throwaway PostgreSQL database made as tests/conftest.py makes them), after
  `paddles migrate` with the same environment, exactly as deployed.
- `teuthology_observed`: runs teuthology_driver.py under the teuthology venv against that
  server once per backend and worker, and returns what it observed.

Without Python >= 3.12, or if pip cannot install teuthology, the tests are skipped,
unless CI=true or PADDLES_REQUIRE_TEUTHOLOGY=1, where they fail.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import free_port, gunicorn_process

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "teuthology_driver.py"
TEUTHOLOGY_SPEC = os.environ.get("PADDLES_TEUTHOLOGY_SPEC", "teuthology==1.3.0")
VENV = Path(os.environ.get("PADDLES_TEUTHOLOGY_VENV", REPO / ".venv-teuthology"))
REQUIRED = (os.environ.get("PADDLES_REQUIRE_TEUTHOLOGY") == "1"
            or os.environ.get("CI", "").lower() == "true")
IMPORT_CHECK = ("import teuthology, teuthology.report, teuthology.kill, teuthology.lock.ops, "
                "teuthology.lock.query, teuthology.dispatcher.supervisor; "
                "print(teuthology.__version__)")


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"teuthology integration test required but unavailable: {reason}")
    pytest.skip(reason)


def _python_version_ok(python: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python312() -> str | None:
    """teuthology needs Python >= 3.12; the project itself runs on 3.11."""
    candidates = [os.environ.get("PADDLES_TEUTHOLOGY_PYTHON")]
    candidates += [shutil.which(name) for name in ("python3.12", "python3.13")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.1[2-9]*", "bin",
                                                "python3")))
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and _python_version_ok(candidate):
            return candidate
    return None


def _run_logged(argv, log, timeout):
    log.write(f"$ {' '.join(map(str, argv))}\n".encode())
    log.flush()
    proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} ... exited {proc.returncode}")


def ensure_teuthology_venv() -> tuple[Path, dict]:
    """Create VENV with TEUTHOLOGY_SPEC unless the stamp says it is already there."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".paddles-teuthology-stamp.json"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.with_name(VENV.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other xdist workers wait here
        if stamp.exists() and _python_version_ok(str(python)):
            info = json.loads(stamp.read_text())
            if info.get("spec") == TEUTHOLOGY_SPEC:
                return python, dict(info, installed_now=False)
        base = find_python312()
        if base is None:
            _unavailable("no Python >= 3.12 found (teuthology requires it); set "
                         "PADDLES_TEUTHOLOGY_PYTHON")
        shutil.rmtree(VENV, ignore_errors=True)
        log_path = VENV.with_name(VENV.name + "-install.log")
        started = time.monotonic()
        try:
            with open(log_path, "wb") as log:
                _run_logged([base, "-m", "venv", str(VENV)], log, 120)
                _run_logged([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                             "-q", TEUTHOLOGY_SPEC], log, 900)
            version = subprocess.run([str(python), "-c", IMPORT_CHECK], capture_output=True,
                                     text=True, timeout=120, cwd="/")
            if version.returncode:
                raise RuntimeError("teuthology does not import:\n" + version.stderr[-2000:])
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            shutil.rmtree(VENV, ignore_errors=True)
            _unavailable(f"installing {TEUTHOLOGY_SPEC} failed: {exc}\n{tail}")
        info = {"spec": TEUTHOLOGY_SPEC, "version": version.stdout.strip().splitlines()[-1],
                "base_python": base, "install_seconds": round(time.monotonic() - started, 1)}
        stamp.write_text(json.dumps(info))
        return python, dict(info, installed_now=True)


@pytest.fixture(scope="session")
def teuthology_python() -> Path:
    python, _info = ensure_teuthology_venv()
    return python


# --- the server ------------------------------------------------------------------------

def _paddles_cli() -> list[str]:
    script = Path(sys.executable).parent / "paddles"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from paddles.commands import main; "
                                  "sys.exit(main())"]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def teuthology_backend(request) -> str:
    return request.param


@contextlib.contextmanager
def temporary_database(backend: str, tmp_path_factory):
    """A fresh SQLite file or throwaway PostgreSQL database (dropped afterwards)."""
    if backend == "sqlite":
        yield "sqlite:///" + str(tmp_path_factory.mktemp("teuth-db") / "paddles.db")
        return
    from tests.conftest import _create_pg_database
    url, drop = _create_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def teuthology_database_url(teuthology_backend, tmp_path_factory):
    with temporary_database(teuthology_backend, tmp_path_factory) as url:
        yield url


def paddles_command(args: list[str], database_url: str, cwd) -> subprocess.CompletedProcess:
    """`paddles ARGS` against that database, as an operator runs it."""
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url)
    env.pop("PADDLES_CONFIG", None)
    return subprocess.run(_paddles_cli() + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@contextlib.contextmanager
def run_server(database_url: str, workdir, **extra_env: str):
    """A real paddles: `paddles migrate`, then gunicorn -c gunicorn_config.py (2 workers).
    Yields its base URL; `extra_env` adds PADDLES_* settings."""
    port = free_port()
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2",
               PADDLES_ADDRESS=f"http://127.0.0.1:{port}", **extra_env)
    env.pop("PADDLES_CONFIG", None)
    migrate = subprocess.run(_paddles_cli() + ["migrate"], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, f"paddles migrate failed:\n{migrate.stderr}"
    with gunicorn_process(env, cwd=workdir, log=workdir / "gunicorn.log") as (base, _proc):
        yield base


@pytest.fixture(scope="session")
def teuthology_server(teuthology_database_url, tmp_path_factory):
    """A real paddles: `paddles migrate`, then gunicorn -c gunicorn_config.py (2 workers)."""
    workdir = tmp_path_factory.mktemp("teuth-server")  # cwd: no stray ./config.py
    with run_server(teuthology_database_url, workdir) as base:
        yield base


# --- the client ------------------------------------------------------------------------

class Observed:
    """What teuthology_driver.py saw, plus the server it talked to."""

    def __init__(self, base: str, summary: dict, output: str):
        self.base = base
        self.summary = summary
        self.output = output
        self.facts = summary["facts"]
        self.steps = summary["steps"]
        self.requests = summary["requests"]
        self.runs = self.facts["runs"]

    def step(self, name: str) -> dict:
        assert name in self.steps, f"driver did not run step {name}"
        return self.steps[name]

    def ok(self, name: str):
        """The step's result; fails with teuthology's traceback if it raised."""
        record = self.step(name)
        assert record["ok"], f"teuthology step {name} raised:\n{record['traceback']}"
        return record["result"]

    def calls(self, name: str) -> list[tuple]:
        """(method, path, status) of every request the step made."""
        return [(r["method"], r["path"], r["status"]) for r in self.step(name)["requests"]]

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base + path, timeout=30, **kwargs)


@pytest.fixture(scope="session")
def teuthology_observed(teuthology_python, teuthology_server, tmp_path_factory) -> Observed:
    work = tmp_path_factory.mktemp("teuth-client")
    out = work / "summary.json"
    # A clean environment: no proxies, no TEUTHOLOGY_CONFIG of the developer's own.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "TZ": "UTC",
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([str(teuthology_python), str(DRIVER), teuthology_server,
                               str(out), str(work / "driver")],
                              cwd=work, env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"teuthology driver timed out:\n{(exc.stderr or '')[-4000:]}")
    output = proc.stdout + proc.stderr
    (work / "driver.log").write_text(output)
    if proc.returncode or not out.exists():
        pytest.fail(f"teuthology driver exited {proc.returncode}:\n{output[-4000:]}")
    return Observed(teuthology_server, json.loads(out.read_text()), output)
