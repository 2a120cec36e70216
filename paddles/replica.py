"""Read-your-writes on a streaming replica (settings database_read_url, database_read_max_wait).

The replica routes (`replica=True` in routes.py: run lists, run pages, exports...) may be
read from a PostgreSQL streaming replica, which replays the primary's WAL a little later.
A client that writes and then reads one of them must see its own write, whichever app host
took either request, and teuthology and pulpito send nothing that says what they wrote. So
the rule is about time rather than clients: a read is served by the replica only once the
replica has replayed all the WAL the primary had inserted when the read arrived. Every
write acknowledged before the read was sent is then on the replica, for every client.

Per replica read: one query on the primary (`pg_current_wal_insert_lsn()`), then one on the
replica comparing its replay position (`pg_last_wal_replay_lsn()`) with it. A replica that
is behind is asked again at short intervals, for up to `database_read_max_wait` seconds;
then the primary serves the read. A replica that fails the check (unreachable) or is no
standby (`pg_is_in_recovery()` false: promoted, or not a streaming replica at all) also
sends the read to the primary. The insert position rather than the flushed one because
heartbeats commit asynchronously (services/jobs.py): they are acknowledged before their WAL
is flushed, and are still the client's writes.

`paddles_replica_reads_total{served_by="replica"|"primary"}` counts where replica reads
went. Only when both databases are PostgreSQL; a replica of another kind (the SQLite
stand-in of tests/ops/test_replica.py) is read as it is.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from . import metrics

log = logging.getLogger(__name__)

PRIMARY_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")
# NULL when the replica is no standby: it cannot say whether it has the primary's writes
CAUGHT_UP = text("SELECT CASE WHEN pg_is_in_recovery() "
                 "THEN pg_last_wal_replay_lsn() >= CAST(:target AS pg_lsn) END")
FIRST_PAUSE, LONGEST_PAUSE = 0.002, 0.02  # seconds between two looks at a lagging replica


class ReplicaReads:
    """Which database answers a replica route: `session()` is a session on the replica
    when it has every write acknowledged so far, else None (read from the primary)."""

    def __init__(self, primary: sessionmaker[Session], replica: sessionmaker[Session],
                 max_wait: float):
        self.primary = primary  # read sessions (db.reading) of both
        self.replica = replica
        self.max_wait = max(0.0, max_wait)
        self.checked = all(_is_postgresql(f.kw.get("bind")) for f in (primary, replica))

    def session(self) -> Session | None:
        if not self.checked:
            metrics.replica_read("replica")
            return self.replica()
        with self.primary() as primary:  # its failure is the request's (503)
            target = primary.execute(PRIMARY_POSITION).scalar_one()
        replica = self.replica()
        if self._caught_up(replica, target):
            metrics.replica_read("replica")
            return replica
        replica.close()
        metrics.replica_read("primary")
        return None

    def _caught_up(self, replica: Session, target: str) -> bool:
        deadline = time.monotonic() + self.max_wait
        pause = FIRST_PAUSE
        try:
            while True:
                caught_up = replica.execute(CAUGHT_UP, {"target": target}).scalar()
                if caught_up or caught_up is None or time.monotonic() + pause > deadline:
                    return bool(caught_up)
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
        except DBAPIError as exc:
            log.warning("read replica unusable, reading the primary: %s",
                        str(exc.orig or exc).strip().splitlines()[0])
            return False


def _is_postgresql(bind) -> bool:
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"
