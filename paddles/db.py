"""Engine and session construction: the only place that knows database quirks."""
from __future__ import annotations

import functools
import json
import os
import select
import weakref
from pathlib import Path
from typing import NamedTuple

import orjson
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Execution option a write request sets on its connection; SQLite then takes the write lock
# up front (BEGIN IMMEDIATE) instead of failing to upgrade a read lock under contention.
WRITE_OPTION = "paddles_write"


def _dump_json(value) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the stdlib writes them exactly
        return json.dumps(value)


# every engine this process made, so a forked child can drop the parent's connections
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10,
                lock_timeout: float | None = None, prepared_statements: bool = True,
                **kw) -> Engine:
    """`lock_timeout`: seconds a statement waits for a lock before it fails (PostgreSQL
    lock_timeout, SQLite busy timeout; the app answers 503); None: SQLite's 30 s, and no
    limit on PostgreSQL (commands may wait). `prepared_statements`: whether `Prepared`
    statements are prepared on the server (off behind PgBouncer in transaction mode)."""
    kw.setdefault("execution_options", {})[PREPARE_OPTION] = prepared_statements
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
    kw.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, 30.0 if lock_timeout is None else lock_timeout, **kw)
    socket_check = parsed.get_backend_name() == "postgresql" and \
        parsed.get_driver_name() == "psycopg2" and "pool_pre_ping" not in kw
    if not socket_check:
        kw.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        # an unreachable server fails a request in seconds (503) rather than hanging it
        kw.setdefault("connect_args", {}).setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
        if lock_timeout:
            kw["connect_args"].setdefault("options",
                                          f"-c lock_timeout={int(lock_timeout * 1000)}")
    engine = create_engine(parsed, pool_size=pool_size, max_overflow=max_overflow, **kw)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "do_connect", _name_connection)
    if socket_check:
        event.listen(engine, "checkout", _check_socket)
    if _autocommit_capable(engine):
        event.listen(engine, "begin", _begin_autocommit)
        event.listen(engine, "checkin", _checkin_transactional)
    return engine


def _check_socket(dbapi_conn, conn_record, conn_proxy) -> None:
    """On PostgreSQL, instead of the pool's pre-ping (a `SELECT 1` round trip on every
    checkout, measured at a third of a cached run summary's database time): a pooled
    connection is idle, so the server has nothing to say on it unless it ended the session
    (restart, crash, pg_terminate_backend: a FATAL message, then end of file). A readable
    or closed socket at checkout is such a connection: DisconnectionError makes the pool
    drop it and check out another (a fresh one after a restart), as the pre-ping did.
    A connection that dies later, mid-request, is invalidated by SQLAlchemy as before."""
    if dbapi_conn.closed:
        raise exc.DisconnectionError("connection closed")
    poller = conn_record.info.get(_POLLER)  # one per connection: its socket never changes
    if poller is None:
        poller = conn_record.info[_POLLER] = select.poll()
        poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise exc.DisconnectionError("the server ended the connection")


_POLLER = "paddles.poller"
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


def make_session_factory(engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def reading(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The sessions of `factory` for a request that only reads.

    On PostgreSQL they run in autocommit: each statement is its own transaction, so a read
    is one round trip where BEGIN, the statement and ROLLBACK were three. Under READ
    COMMITTED every statement takes its own snapshot either way, so a reader sees nothing
    different. Not for server-side cursors (they need a transaction: exports open their own
    sessions from `factory`), nor for writes (they would commit at once). Elsewhere
    (SQLite): `factory` itself."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine) or not _autocommit_capable(bind):
        return factory
    return sessionmaker(**dict(factory.kw, bind=bind.execution_options(
        **{AUTOCOMMIT_OPTION: True})))


# psycopg2's own switch, not SQLAlchemy's isolation_level="AUTOCOMMIT": setting `autocommit`
# is a flag in the client, where psycopg2's set_isolation_level, which SQLAlchemy calls to
# reset the connection on its return to the pool, costs a round trip (SET
# default_transaction_isolation) of its own
AUTOCOMMIT_OPTION = "paddles_autocommit"


def _autocommit_capable(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


def _begin_autocommit(conn) -> None:
    """A Connection's transaction begins: with AUTOCOMMIT_OPTION, the psycopg2 connection
    under it sends no BEGIN (nor COMMIT or ROLLBACK) until it is back in the pool."""
    if conn.get_execution_options().get(AUTOCOMMIT_OPTION):
        conn.connection.dbapi_connection.autocommit = True


def _checkin_transactional(dbapi_conn, _record) -> None:
    if dbapi_conn is not None and not dbapi_conn.closed and dbapi_conn.autocommit:
        dbapi_conn.autocommit = False


class Outcome(NamedTuple):
    """What a statement run by `execute_alone` gave: its rows (a list of tuples, empty for a
    statement that returns none) and its rowcount."""
    rows: list
    rowcount: int

    def first(self):
        return self.rows[0] if self.rows else None


def execute_alone(session: Session, statement: "Prepared", params: dict) -> Outcome:
    """Run `statement` as a transaction of its own when the session has sent nothing yet, on
    PostgreSQL with psycopg2: in autocommit (one round trip where BEGIN, the statement and
    COMMIT were three), prepared on the server unless the engine says not to. Its change is
    committed when this returns, whatever the request does next: only for a request whose
    one change it is, or for a read. Otherwise, and on SQLite, it runs in the session's
    transaction as usual.

    A session bound to an engine that has not begun a transaction runs it on a pooled
    connection of its own, checked out and back in around it, without SQLAlchemy's
    Connection and the session's transaction around it (`_run_pooled`): for a heartbeat or
    a cached run document that was most of the request's database overhead."""
    bind = session.get_bind()
    if not _autocommit_capable(bind):
        return _outcome(session.connection().execute(statement.statement, params))
    if isinstance(bind, Engine) and not session.in_transaction():
        return _run_pooled(bind, statement, params)
    conn = session.connection()
    raw = conn.connection.dbapi_connection
    alone = not raw.autocommit and raw.get_transaction_status() == TRANSACTION_STATUS_IDLE
    if not (alone or raw.autocommit):  # inside a transaction that has begun: plainly
        return _outcome(conn.execute(statement.statement, params))
    if alone:
        raw.autocommit = True
    try:
        return _outcome(_execute_autocommitted(conn, statement, params))
    finally:
        if alone and not raw.closed:
            raw.autocommit = False


def _outcome(result) -> Outcome:
    return Outcome(result.fetchall() if result.returns_rows else [], result.rowcount)


def _execute_autocommitted(conn, statement: "Prepared", params: dict):
    if conn.get_execution_options().get(PREPARE_OPTION, True):
        return statement.execute_prepared(conn, params)
    return conn.execute(statement.statement, params)


def _run_pooled(engine: Engine, statement: "Prepared", params: dict) -> Outcome:
    """`statement` on a connection checked out of the engine's pool for it alone, in
    autocommit. With listeners on the engine's statements (tests counting queries), through
    a SQLAlchemy Connection so that they see it; otherwise on the DBAPI cursor, with the same
    SQL, the pool's checkout and checkin events, SQLAlchemy's exception classes, and a
    connection found dead invalidated."""
    if engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute:
        with engine.connect() as conn:
            conn.execution_options(**{AUTOCOMMIT_OPTION: True})
            return _outcome(_execute_autocommitted(conn, statement, params))
    prepare = engine.get_execution_options().get(PREPARE_OPTION, True)
    pooled = engine.raw_connection()
    try:
        raw = pooled.dbapi_connection
        raw.autocommit = True
        cursor = raw.cursor()
        try:
            values = statement.values(params)
            if not prepare:
                _cursor_execute(engine, pooled, cursor, statement.plain_sql, values)
            else:
                statement.run_prepared(
                    pooled.info,
                    lambda sql, values=None: _cursor_execute(engine, pooled, cursor, sql,
                                                             values),
                    values)
            return Outcome(cursor.fetchall() if cursor.description else [], cursor.rowcount)
        finally:
            cursor.close()
    finally:
        pooled.close()  # back to the pool, transactional again (_checkin_transactional)


def _cursor_execute(engine: Engine, pooled, cursor, sql: str, values) -> None:
    dbapi = engine.dialect.loaded_dbapi
    try:
        cursor.execute(sql, values)
    except dbapi.Error as error:
        dead = engine.dialect.is_disconnect(error, pooled.dbapi_connection, cursor)
        if dead:
            pooled.invalidate(error)
        raise exc.DBAPIError.instance(sql, values, error, dbapi.Error,
                                      connection_invalidated=dead,
                                      dialect=engine.dialect) from error


PREPARE_OPTION = "paddles_prepare"
UNDEFINED_PREPARED_STATEMENT = "26000"


class Prepared:
    """A statement PostgreSQL parses and plans once per connection (PREPARE) and afterwards
    only runs (EXECUTE NAME(...)): for the heartbeat, parsing and planning were half of its
    database time. `statement` must take its values as the named bind parameters `params`
    only (constants written as literal columns). Which connections hold it is kept in the
    pooled connection's `info`, which a replaced connection does not inherit; a connection
    that lost it anyway (DISCARD ALL) prepares it again."""

    def __init__(self, name: str, statement, params: tuple[str, ...]):
        self.name, self.statement, self.params = name, statement, params
        self.execute_sql = f"EXECUTE {name}({', '.join(f'%({p})s' for p in params)})"

    @functools.cached_property
    def prepare_sql(self) -> str:
        sql = self.plain_sql
        for position, param in enumerate(self.params, 1):
            sql = sql.replace(f"%({param})s", f"${position}")
        if "%" in sql:  # a parameter not in `params`, or an escaped percent sign
            raise ValueError(f"{self.name}: not all of the statement is parameters or SQL")
        return f"PREPARE {self.name} AS {sql}"

    @functools.cached_property
    def plain_sql(self) -> str:
        """The statement as psycopg2 takes it with named parameters (no PREPARE)."""
        from sqlalchemy.dialects.postgresql import psycopg2 as pg
        return str(self.statement.compile(dialect=pg.dialect()))

    def values(self, params: dict) -> dict:
        return {p: params.get(p) for p in self.params}

    def execute_prepared(self, conn, params: dict):
        """On a SQLAlchemy Connection in autocommit; its result."""
        return self.run_prepared(conn.connection.info, conn.exec_driver_sql,
                                 self.values(params))

    def run_prepared(self, info: dict, execute, values: dict):
        """EXECUTE, after PREPARE on a connection (whose pool `info` is given) that has not
        prepared it; `execute(sql[, values])` runs SQL on that connection in autocommit."""
        key = ("paddles.prepared", self.name)
        for attempt in (1, 2):
            if not info.get(key):
                execute(self.prepare_sql)
                info[key] = True
            try:
                return execute(self.execute_sql, values)
            except exc.DBAPIError as error:  # autocommit: nothing else failed with it
                if getattr(error.orig, "pgcode", None) != UNDEFINED_PREPARED_STATEMENT \
                        or attempt == 2:
                    raise
                info.pop(key, None)


def write_locks_up_front(factory: sessionmaker[Session]) -> bool:
    """Whether a writing request should `begin_write` before its first statement: SQLite
    (BEGIN IMMEDIATE), or a session not bound to an engine of ours."""
    bind = factory.kw.get("bind")
    return not isinstance(bind, Engine) or bind.dialect.name != "postgresql"


def begin_write(session: Session) -> None:
    """Mark the session's transaction as a writer (call before its first statement)."""
    session.connection(execution_options={WRITE_OPTION: True})
