"""A PostgreSQL primary and its streaming replica, made and started by the test itself.

The system server (127.0.0.1:5432) is not reconfigured: this is a cluster of our own,
`initdb` in a temporary directory, on a free port, with replication allowed from
127.0.0.1 (initdb's pg_hba.conf with trust), and a standby made with
`pg_basebackup -R` (it streams from the primary) on another free port. PostgreSQL refuses to
run as root: as root, every command runs as the `postgres` system user (runuser), in a
directory it owns.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator

from tests.scaleout.nginx import free_port


def pg_bindir() -> str | None:
    """The newest /usr/lib/postgresql/N/bin (Debian) with initdb and pg_basebackup."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return str(Path(found[-1]).parent) if found else None


@dataclasses.dataclass
class Cluster:
    bindir: str
    root: Path
    owner: str | None  # the system user running PostgreSQL (as root), else None: ourselves

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.owner, "--"] if self.owner else []
        argv = [str(Path(self.bindir) / argv[0]), *argv[1:]]
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=check,
                              cwd=self.root, env=dict(os.environ, LC_ALL="C.UTF-8"))

    def start(self, data: Path, port: int) -> None:
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.root}")
        result = self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(data),
                          "-l", str(self.root / f"{data.name}.log"), "-o", options,
                          check=False)
        if result.returncode:
            log = (self.root / f"{data.name}.log")
            raise RuntimeError(f"{data.name} did not start: {result.stderr}\n"
                               + (log.read_text()[-2000:] if log.exists() else ""))

    def stop(self, data: Path) -> None:
        if (data / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(data), check=False)


@dataclasses.dataclass
class Replicated:
    primary_url: str  # SQLAlchemy URLs, user postgres (trust)
    replica_url: str
    primary_port: int
    replica_port: int


@contextlib.contextmanager
def primary_and_replica() -> Iterator[Replicated]:
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/N/bin)")
    owner = None
    root = Path(tempfile.mkdtemp(prefix="paddles-replication-"))
    if os.geteuid() == 0:
        owner = "postgres"
        entry = pwd.getpwnam(owner)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir, root, owner)
    primary, replica = root / "primary", root / "replica"
    try:
        cluster.run("initdb", "-D", str(primary), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync", "--no-instructions")
        with open(primary / "postgresql.conf", "a") as conf:
            # what streaming replication needs (PostgreSQL 15's defaults, said anyway), and
            # what a throwaway cluster can spare: durability across a power cut
            conf.write("wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                       "fsync = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
                       "max_connections = 200\n")
        primary_port, replica_port = free_port(), free_port()
        cluster.start(primary, primary_port)
        cluster.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary_port), "-U",
                    "postgres", "-D", str(replica), "-R", "-X", "stream", "-c", "fast")
        cluster.start(replica, replica_port)
        url = "postgresql+psycopg2://postgres@127.0.0.1:{}/postgres"
        yield Replicated(url.format(primary_port), url.format(replica_port), primary_port,
                         replica_port)
    finally:
        for data in (replica, primary):
            with contextlib.suppress(Exception):
                cluster.stop(data)
        shutil.rmtree(root, ignore_errors=True)


def wait_replayed(primary_engine, replica_engine, timeout: float = 30.0) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    from sqlalchemy import text
    with primary_engine.connect() as conn:
        target = conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
    deadline = time.monotonic() + timeout
    with replica_engine.connect() as conn:
        while not conn.execute(text("SELECT pg_last_wal_replay_lsn() >= CAST(:t AS pg_lsn)"),
                               {"t": target}).scalar():
            conn.rollback()
            if time.monotonic() > deadline:
                raise TimeoutError("the replica did not catch up")
            time.sleep(0.05)
