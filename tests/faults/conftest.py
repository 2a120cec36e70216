"""Fault tests: a PostgreSQL cluster of the test's own (restarted, crashed, its backends
killed), paddles under gunicorn with the shipped gunicorn_config.py, and real sockets.

The cluster is initdb'd into a temporary directory on a free port, as the `postgres` OS user
when the tests run as root (PostgreSQL refuses to run as root), and removed at the end. It
never touches the shared server on 5432, whose other databases other test runs use.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator, Sequence

import pytest
import requests
from sqlalchemy import create_engine, text

from paddles import migrations
from tests.deploy.conftest import children, free_port, gunicorn_process, wait_until

PG_BIN = Path(os.environ.get("PADDLES_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres() -> list[str]:
    """Command prefix that runs PostgreSQL's tools as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


@dataclasses.dataclass
class Cluster:
    """One PostgreSQL server of our own: data directory, port, and pg_ctl around it."""

    root: Path
    port: int
    prefix: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgresql.log"

    def url(self, database: str = "paddles") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-l", str(self.log), "-w", "-t", "30", *args],
                       check=True, timeout=timeout, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self.ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.ctl("restart", "-m", mode)

    def running(self) -> bool:
        return subprocess.run([*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                               "status"], stdout=subprocess.DEVNULL).returncode == 0

    def admin(self, database: str = "paddles"):
        """An AUTOCOMMIT engine for the test's own look at the data (and locks, kills)."""
        return create_engine(self.url(database), isolation_level="AUTOCOMMIT",
                             pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL binaries in {PG_BIN} (PADDLES_TEST_PG_BIN)")
    prefix = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix="paddles-faults-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(root, free_port(), prefix)
    try:
        subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(cluster.data), "-U",
                        "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                       check=True, timeout=120, stdout=subprocess.DEVNULL)
        with open(cluster.data / "postgresql.conf", "a") as conf:
            # TCP on loopback only, its socket in its own directory; small and quick. fsync
            # off: the faults here kill PostgreSQL's processes, never the machine, so every
            # commit PostgreSQL acknowledged is still in the OS page cache for recovery.
            conf.write(f"port = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{root}'\nfsync = off\n"
                       "shared_buffers = 16MB\nmax_connections = 60\n")
        cluster.start()
        admin = cluster.admin("postgres")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "paddles"'))
        admin.dispose()
        migrations.upgrade(cluster.url())
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(Exception):
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(pg_cluster):
    """The cluster's paddles database, emptied after the test."""
    from tests.conftest import _wipe
    engine = pg_cluster.admin()
    yield engine
    if pg_cluster.running():
        _wipe(engine)
    engine.dispose()


@dataclasses.dataclass
class Server:
    base: str
    proc: subprocess.Popen
    log: Path
    workdir: Path

    def workers(self, count: int | None = None) -> set[int]:
        found = children(self.proc.pid)
        return found if count is None or len(found) == count else set()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def gunicorn(database_url: str, workdir: Path, *, prefix: Sequence[str] = (),
             **env: str) -> Iterator[Server]:
    """paddles under gunicorn with the repo's gunicorn_config.py (as `paddles serve` runs
    it), its output in workdir/gunicorn.log; SIGTERM at the end. `prefix` runs it through a
    wrapper that execs it (the disk-full test's `unshare`)."""
    port = free_port()
    environ = dict(os.environ, PADDLES_DATABASE_URL=database_url,
                   PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_WORKERS="2",
                   PADDLES_THREADS="4", PADDLES_DATA_DIR=str(workdir / "var"),
                   PADDLES_GRACEFUL_TIMEOUT="5")
    environ.update(env)
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = workdir / "gunicorn.log"
    with gunicorn_process(environ, log=log, prefix=prefix, ready_path="/health") as (base, proc):
        server = Server(base, proc, log, workdir)
        assert wait_until(lambda: server.workers(int(environ["PADDLES_WORKERS"])), 20)
        yield server


def call(session: requests.Session, method: str, url: str, body=None,
         timeout: float = 20.0) -> tuple[int | str, requests.Response | None]:
    """(status, response), or (an error name, None) for a request that got no answer: the
    client always gives up after `timeout`, so nothing waits forever."""
    try:
        resp = session.request(method, url, json=body, timeout=(5, timeout))
        return resp.status_code, resp
    except requests.Timeout:
        return "timeout", None
    except requests.ConnectionError:
        return "connection error", None


def wait_time(predicate, timeout: float, interval: float = 0.05):
    """wait_until with a finer interval (for timing a recovery)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
