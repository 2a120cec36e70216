"""Two `paddles serve` instances behind nginx, on a PostgreSQL primary with a streaming
replica for reads, artifacts on an S3 protocol server (moto in server mode): every part a
real process of its own, started here on free ports and stopped at the end (docs/scaling.md).

Needs nginx (Debian's nginx-light; .ci/run installs it) and PostgreSQL's server binaries.
Without them the tests are skipped, except where PADDLES_REQUIRE_POSTGRES=1 (CI): there
that is a failure.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

import boto3
import pytest
from sqlalchemy import create_engine

from tests.conftest import REQUIRE_PG
from tests.deploy.conftest import wait_for
from tests.scaleout.cluster import Replicated, pg_bindir, primary_and_replica
from tests.scaleout.nginx import balancer, free_port, nginx_binary

BIN = Path(sys.executable).parent
BUCKET = "paddles-scaleout"
S3_KEYS = {"PADDLES_S3_ACCESS_KEY_ID": "testing", "PADDLES_S3_SECRET_ACCESS_KEY": "testing",
           "PADDLES_S3_REGION": "us-east-1"}
READ_MAX_WAIT = 2.0  # seconds (PADDLES_DATABASE_READ_MAX_WAIT): roomy on a loaded machine


def _missing() -> str | None:
    if nginx_binary() is None:
        return "nginx is not installed (apt-get install nginx-light)"
    if pg_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_basebackup) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is needed to run PostgreSQL as the postgres user"
    return None


@dataclasses.dataclass
class Instance:
    base: str
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the gunicorn master and its workers at once (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclasses.dataclass
class Deployment:
    nginx: str
    instances: list[Instance]
    db: Replicated
    s3_endpoint: str
    primary: object  # SQLAlchemy engines, for looking behind the servers' backs
    replica: object


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    log = open(workdir / "moto.log", "wb")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_for(f"http://127.0.0.1:{port}/moto-api/", timeout=30, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def paddles_serve(env: dict, workdir: Path, name: str) -> Iterator[Instance]:
    """`paddles serve` (it execs gunicorn with gunicorn_config.py), in a session of its own
    so that its master and workers can be killed together."""
    port = free_port()
    data = workdir / name
    (data / "metrics").mkdir(parents=True)
    env = dict(env, PADDLES_BIND=f"127.0.0.1:{port}", PADDLES_DATA_DIR=str(data),
               PROMETHEUS_MULTIPROC_DIR=str(data / "metrics"))
    log = data / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "paddles"), "serve", "--no-migrate"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    instance = Instance(f"http://127.0.0.1:{port}", proc, log)
    try:
        try:
            wait_for(instance.base + "/ready", timeout=60, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name} did not serve: {exc}\n"
                               f"{log.read_text(errors='replace')[-3000:]}") from None
        yield instance
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    problem = _missing()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"the two-instance deployment test needs it: {problem}")
        pytest.skip(problem)
    workdir = Path(tempfile.mkdtemp(prefix="paddles-scaleout-"))
    try:
        with primary_and_replica() as db, moto_server(workdir) as s3:
            boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing",
                         aws_secret_access_key="testing",
                         region_name="us-east-1").create_bucket(Bucket=BUCKET)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLES_")}
            env.update(PADDLES_DATABASE_URL=db.primary_url,
                       PADDLES_DATABASE_READ_URL=db.replica_url,
                       PADDLES_DATABASE_READ_MAX_WAIT=str(READ_MAX_WAIT),
                       PADDLES_ARTIFACTS_STORAGE="s3", PADDLES_S3_ENDPOINT_URL=s3,
                       PADDLES_S3_BUCKET=BUCKET, PADDLES_S3_PREFIX="blobs/", **S3_KEYS,
                       PADDLES_WORKERS="2", PADDLES_THREADS="4",
                       PADDLES_LOG_LEVEL="warning", PADDLES_EVENTS_KEEPALIVE="1")
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            subprocess.run([str(BIN / "paddles"), "migrate"], env=env, check=True,
                           capture_output=True)
            primary = create_engine(db.primary_url)
            replica = create_engine(db.replica_url)
            try:
                with paddles_serve(env, workdir, "a") as a, \
                        paddles_serve(env, workdir, "b") as b, \
                        balancer([a.base[7:], b.base[7:]], workdir / "nginx") as front:
                    yield Deployment(front, [a, b], db, s3, primary, replica)
            finally:
                primary.dispose()
                replica.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
