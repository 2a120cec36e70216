"""`paddles serve` (what `make run` runs) and gunicorn_config.py listen where the one bind
setting says, and start-up says where and on which database in a few lines."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.deploy.conftest import REPO, free_port, stop, wait_for

PASSWORD = "s3cret-start-up-pw"


def _environ(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PADDLES_CONFIG", "PADDLES_BIND", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PADDLES_WORKERS="1", PADDLES_THREADS="2", PADDLES_DATA_DIR=str(tmp_path / "var"),
               PADDLES_LOG_LEVEL="INFO", PADDLES_LOG_FORMAT="text", **extra)
    return env


def test_serve_listens_on_paddles_bind_and_says_where_and_which_database(
        database_url, db_engine, tmp_path):
    port = free_port()
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":  # trust auth: any password is accepted
        url = url.set(password=PASSWORD)
    url_text = url.render_as_string(hide_password=False)
    env = _environ(tmp_path, PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_DATABASE_URL=url_text)
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "paddles"), "serve"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
    finally:
        stop(proc)
    lines = log.read_text().splitlines()
    start = [line for line in lines if "paddles.access" not in line
             and "Handling signal" not in line and "exiting" not in line.lower()
             and "SIGTERM" not in line and "Shutting down" not in line]
    text = "\n".join(start)
    assert f"serving on http://127.0.0.1:{port}/" in text
    assert f"database {url.render_as_string(hide_password=True)}" in text
    assert PASSWORD not in log.read_text()
    assert "alembic" not in text  # no INFO line per migration or alembic plugin
    # no per-user control socket that a second master on the host would take over
    assert "control socket" not in text.lower()
    # ours (database, address), gunicorn's (start, listening, worker class) and one line per
    # worker
    assert len(start) <= 8, text


def test_serve_opens_a_control_socket_only_where_one_is_named(tmp_path):
    port = free_port()
    ctl = tmp_path / "paddles.ctl"
    env = _environ(tmp_path, PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_CONTROL_SOCKET=str(ctl),
                   PADDLES_DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "paddles"), "serve"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
        assert ctl.is_socket()
    finally:
        stop(proc)


def test_serve_port_option_overrides_the_bind_setting(database_url, db_engine, tmp_path):
    port = free_port()
    env = _environ(tmp_path, PADDLES_BIND="127.0.0.1:1", PADDLES_DATABASE_URL=database_url)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "paddles"), "serve",
                             "--no-migrate", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
    finally:
        stop(proc)


def test_serve_refuses_a_bad_bind(tmp_path):
    env = _environ(tmp_path, PADDLES_BIND="127.0.0.1:http")
    done = subprocess.run([str(Path(sys.executable).parent / "paddles"), "serve"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "bind '127.0.0.1:http' is not HOST:PORT" in done.stderr
    assert not (tmp_path / "var").exists()  # refused before migrating anything


def test_gunicorn_config_takes_the_bind_from_config_py(database_url, db_engine, tmp_path):
    """supervisord runs gunicorn with gunicorn_config.py directly: config.py's bind counts."""
    port = free_port()
    (tmp_path / "config.py").write_text(f'paddles = {{"bind": "127.0.0.1:{port}"}}\n')
    env = _environ(tmp_path, PADDLES_DATABASE_URL=database_url)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(REPO / "gunicorn_config.py"), "paddles.wsgi:application"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
    finally:
        stop(proc)
