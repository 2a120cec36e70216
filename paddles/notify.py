"""Waking event readers: PostgreSQL LISTEN/NOTIFY, or polling.

One `Waker` per process and database: on PostgreSQL (psycopg2) a daemon thread holds one
connection of its own that LISTENs on the events channel, and every NOTIFY (sent by the
transactions that write events, at their commit) wakes every waiting reader, however many
streams the process serves. Elsewhere (SQLite), `wait()` simply returns after the poll
interval and the reader looks again.

Readers follow the same loop: take `version()`, read the database, then `wait(version, ...)`.
A notification that arrives between the read and the wait has already moved the version on,
so the wait returns at once: nothing is missed. When the listening connection breaks, the
thread reconnects and bumps the version (readers re-read whatever they may have missed).
"""
from __future__ import annotations

import logging
import select
import threading
import time

from sqlalchemy import Engine, make_url

from .services.events import CHANNEL

log = logging.getLogger(__name__)

# while listening, readers still look at least this often (a safety net, not the mechanism)
LISTEN_RECHECK = 15.0


class Waker:
    def __init__(self, engine: Engine, poll_interval: float):
        self.poll_interval = poll_interval
        self._engine = engine
        self._cond = threading.Condition()
        self._version = 0
        self._listening = False
        self._stopped = False
        self._thread = None
        if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2":
            self._thread = threading.Thread(target=self._listen_forever, daemon=True,
                                            name="paddles-events-listen")
            self._thread.start()

    @property
    def listening(self) -> bool:
        return self._listening

    def version(self) -> int:
        with self._cond:
            return self._version

    def wait(self, version: int, timeout: float) -> bool:
        """Until something may have changed since `version`, or `timeout`; True if woken."""
        limit = LISTEN_RECHECK if self._listening else self.poll_interval
        timeout = max(0.0, min(timeout, limit))
        with self._cond:
            return self._cond.wait_for(lambda: self._version != version, timeout)

    def wait_listening(self, timeout: float) -> bool:
        """For tests and start-up: until the LISTEN is in place."""
        deadline = time.monotonic() + timeout
        while not self._listening and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._listening

    def stop(self) -> None:
        self._stopped = True
        self._bump()

    def _bump(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def _listen_forever(self) -> None:
        failures = 0
        while not self._stopped:
            conn = None
            try:
                fairy = self._engine.raw_connection()
                conn = fairy.driver_connection
                fairy.detach()  # ours for good: it no longer counts against the pool
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self._listening = True
                if failures:
                    log.info("events LISTEN connection back after %d failed attempts", failures)
                    failures = 0
                self._bump()  # whatever happened before the LISTEN: look again
                while not self._stopped:
                    ready, _, _ = select.select([conn], [], [], 5.0)
                    if ready:
                        conn.poll()
                        if conn.notifies:
                            conn.notifies.clear()
                            self._bump()
            except Exception as exc:  # reconnect; readers fall back to polling meanwhile
                if not self._stopped and not failures:  # once per outage, not every second
                    log.warning("events LISTEN connection lost, retrying every second: %s", exc)
                failures += 1
                time.sleep(1.0)
            finally:
                self._listening = False
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                self._bump()


_WAKERS: dict[str, Waker] = {}
_WAKERS_LOCK = threading.Lock()
_SHUTDOWN = threading.Event()


def shut_down() -> None:
    """The process is stopping (gunicorn_config.py calls this on SIGTERM): open streams end."""
    _SHUTDOWN.set()
    for waker in list(_WAKERS.values()):
        waker._bump()


def forget(url: str) -> None:
    """Stop and drop the waker of a database that is going away (a throwaway test database,
    an engine being disposed), so its thread does not retry a database that no longer exists."""
    def where(u) -> tuple:
        u = make_url(u)
        return (u.get_backend_name(), u.host, u.port, u.database)

    with _WAKERS_LOCK:
        gone = [key for key in _WAKERS if where(key) == where(url)]
        wakers = [_WAKERS.pop(key) for key in gone]
    for waker in wakers:
        waker.stop()


def shutting_down() -> bool:
    return _SHUTDOWN.is_set()


def get_waker(engine: Engine, poll_interval: float) -> Waker:
    """The process's waker for this database (started on first use, after gunicorn forks)."""
    key = engine.url.render_as_string(hide_password=False)
    with _WAKERS_LOCK:
        waker = _WAKERS.get(key)
        if waker is None:
            waker = _WAKERS[key] = Waker(engine, poll_interval)
        return waker
