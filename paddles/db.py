"""Engine and session construction: the only place that knows database quirks (the psycopg2
fast path below SQLAlchemy is paddles/pg.py, which db.make_engine attaches to its engines)."""
from __future__ import annotations

import json
import os
import weakref
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from . import pg
from .jsontext import may_hold_long_integer
from .services import events, runs

# Execution option a write request sets on its connection; SQLite then takes the write lock
# up front (BEGIN IMMEDIATE) instead of failing to upgrade a read lock under contention.
WRITE_OPTION = "paddles_write"


def _dump_json(value) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the stdlib writes them exactly
        return json.dumps(value)


def load_json(value: str | bytes):
    """A JSON column's text, decoded: by orjson, or by the stdlib when the text may hold an
    integer orjson would not keep exactly (the request parser keeps integers of any size)."""
    if may_hold_long_integer(value):
        return json.loads(value)
    return orjson.loads(value)


def _load_sqlite_json(value):
    """A JSON column's value on SQLite. Columns are declared TEXT (models.base.SQLiteJSONText)
    since migration 0008; a database not yet migrated may still hold a number that NUMERIC
    affinity made of the JSON text: that number is the value."""
    if isinstance(value, (int, float)):
        return value
    return load_json(value)


# every engine this process made, so a forked child can drop the parent's connections
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10,
                lock_timeout: float | None = None, prepared_statements: bool = True,
                **kw) -> Engine:
    """`lock_timeout`: seconds a statement waits for a lock before it fails (PostgreSQL
    lock_timeout, SQLite busy timeout; the app answers 503); None: SQLite's 30 s, and no
    limit on PostgreSQL (commands may wait). `prepared_statements`: whether `Prepared`
    statements are prepared on the server (off behind PgBouncer in transaction mode)."""
    kw.setdefault("execution_options", {})[pg.PREPARE_OPTION] = prepared_statements
    engine = _make_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                          lock_timeout=lock_timeout, **kw)
    _ENGINES.add(engine)
    return engine


def after_fork() -> None:
    """In a forked child (gunicorn worker with preload_app): forget the pooled connections
    inherited from the parent without closing them (they are the parent's sockets); the
    child opens its own. SQLAlchemy's `dispose(close=False)` recipe for multiprocessing."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


def _make_engine(url: str, *, pool_size: int, max_overflow: int, lock_timeout: float | None,
                 **kw) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # `postgresql://` is psycopg2, the driver paddles installs (SQLAlchemy 2.1 would
        # pick psycopg 3, which it does not)
        parsed = parsed.set(drivername="postgresql+psycopg2")
    # JSON columns are (de)coded with orjson: decoding JSONB was most of a run detail's cost
    kw.setdefault("json_serializer", _dump_json)
    if parsed.get_backend_name() == "sqlite":
        kw.setdefault("json_deserializer", _load_sqlite_json)
        return _sqlite_engine(parsed, 30.0 if lock_timeout is None else lock_timeout, **kw)
    kw.setdefault("json_deserializer", load_json)
    socket_check = parsed.get_backend_name() == "postgresql" and \
        parsed.get_driver_name() == "psycopg2" and "pool_pre_ping" not in kw
    if not socket_check:
        kw.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        # the connection given back last is the next one lent: a request's statements run
        # on connections that have prepared them already (pg.Prepared, one PREPARE per
        # connection), and connections beyond what the load needs stay idle, not rotated
        kw.setdefault("pool_use_lifo", True)
        # an unreachable server fails a request in seconds (503) rather than hanging it
        kw.setdefault("connect_args", {}).setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
        if lock_timeout:
            kw["connect_args"].setdefault("options",
                                          f"-c lock_timeout={int(lock_timeout * 1000)}")
    engine = create_engine(parsed, pool_size=pool_size, max_overflow=max_overflow, **kw)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "do_connect", _name_connection)
        pg.attach(engine, socket_check=socket_check)
    return engine


PG_CONNECT_TIMEOUT = 5  # seconds


def _name_connection(dialect, conn_rec, cargs, cparams) -> None:
    """`paddles[<pid>]` in pg_stat_activity.application_name: which process (gunicorn worker,
    command) holds a connection (unless the URL names the application itself)."""
    cparams.setdefault("application_name", f"paddles[{os.getpid()}]")


def _sqlite_engine(url, lock_timeout: float, **kw) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kw.setdefault("connect_args", {}).setdefault("timeout", lock_timeout)
    engine = create_engine(url, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own handling breaks SAVEPOINTs).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def make_session_factory(bind, *, topic_prefix: str | None = None) -> sessionmaker[Session]:
    """The factory of paddles' sessions (the app's, the commands', the tests'): the
    services' session listeners (run versions at flush, events at commit) are registered on
    it, not on the Session class, and its sessions write event topics under `topic_prefix`
    (settings.event_topic_prefix; None: the default)."""
    return _listened(sessionmaker(bind=bind, expire_on_commit=False, autoflush=True,
                                  info=events.session_info(topic_prefix)))


def with_topic_prefix(factory: sessionmaker[Session],
                      topic_prefix: str | None) -> sessionmaker[Session]:
    """`factory`'s sessions (same options), as paddles' own, writing topics under
    `topic_prefix`: what the app makes of a session factory it is given."""
    info = {**factory.kw.get("info", {}), **events.session_info(topic_prefix)}
    return _listened(sessionmaker(**dict(factory.kw, info=info)))


def _listened(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    runs.listen(factory)
    events.listen(factory)
    return factory


def reading(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The sessions of `factory` for a request that only reads.

    On PostgreSQL they run in autocommit: each statement is its own transaction, so a read
    is one round trip where BEGIN, the statement and ROLLBACK were three. Under READ
    COMMITTED every statement takes its own snapshot either way, so a reader sees nothing
    different. Not for server-side cursors (they need a transaction: exports open their own
    sessions from `factory`), nor for writes (they would commit at once). Elsewhere
    (SQLite): `factory` itself."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or not pg.autocommit_capable(bind):
        return factory
    return _listened(sessionmaker(**dict(factory.kw, bind=bind.execution_options(
        **{pg.AUTOCOMMIT_OPTION: True}))))


def write_locks_up_front(factory: sessionmaker[Session]) -> bool:
    """Whether a writing request should `begin_write` before its first statement: SQLite
    (BEGIN IMMEDIATE), or a session not bound to an engine of ours."""
    bind = factory.kw.get("bind")
    return not isinstance(bind, Engine) or bind.dialect.name != "postgresql"


def begin_write(session: Session) -> None:
    """Mark the session's transaction as a writer (call before its first statement)."""
    session.connection(execution_options={WRITE_OPTION: True})
