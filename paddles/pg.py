"""The psycopg2 fast path: everything paddles does below SQLAlchemy on PostgreSQL, and the
only module that imports psycopg2.

What it offers (the rest is private):

- `Prepared(name, statement, params)` and `execute_alone(session, prepared, params)`: one
  statement as a transaction of its own, prepared on the server, on a pooled psycopg2
  connection without SQLAlchemy's Connection around it (heartbeats, cached run documents);
  elsewhere (SQLite, a transaction already begun) the statement runs in the session as usual.
  `Prepared(..., first=lock)`: another prepared statement sent ahead of it in the same
  message and transaction (a row lock waited for before the statement's snapshot).
- `one_connection(session)`: a block whose lone statements (a read, then the write worked
  out from it) share one pooled connection instead of one each.
- `attach(engine, socket_check=...)`: the engine listeners the fast path needs (autocommit
  switched on the psycopg2 connection itself, and off again at checkin; the checkout socket
  check that replaces the pool's pre-ping), called by `db.make_engine`.
- `run_pooled_soon(engine, sql, gap=..., on_error=...)`: a statement (the NOTIFY after a
  lone write's events) run by a thread of the process, coalesced: at once after a quiet
  spell, at most once per `gap` under load; what was asked is run at exit too.
- `autocommit_capable(engine)` and `AUTOCOMMIT_OPTION`, for `db.reading`; `PREPARE_OPTION`,
  the engine option `db.make_engine` sets from `prepared_statements`.

It leans on psycopg2 (`autocommit`, `get_transaction_status`, `closed`, `fileno`, `pgcode`)
and on SQLAlchemy (`Engine.raw_connection`, `dialect.is_disconnect`, `DBAPIError.instance`,
`engine.dispatch`): tests/unit/test_internals.py checks each still has the shape relied on.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as _connection
from sqlalchemy import Dialect, Engine, event, exc
from sqlalchemy.types import TypeEngine
from sqlalchemy.orm import Session

#: psycopg2's connection class, for annotations in modules that do not import psycopg2
PgConnection = _connection

PREPARE_OPTION = "paddles_prepare"
UNDEFINED_PREPARED_STATEMENT = "26000"


def attach(engine: Engine, *, socket_check: bool) -> None:
    """The fast path's listeners on a PostgreSQL engine; `socket_check`: check a pooled
    connection's socket at checkout (psycopg2 only; instead of the pool's pre-ping)."""
    if socket_check:
        event.listen(engine, "checkout", _check_socket)
    if autocommit_capable(engine):
        event.listen(engine, "begin", _begin_autocommit)
        event.listen(engine, "checkin", _checkin_transactional)


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


# psycopg2's own switch, not SQLAlchemy's isolation_level="AUTOCOMMIT": setting `autocommit`
# is a flag in the client, where psycopg2's set_isolation_level, which SQLAlchemy calls to
# reset the connection on its return to the pool, costs a round trip (SET
# default_transaction_isolation) of its own
AUTOCOMMIT_OPTION = "paddles_autocommit"


def autocommit_capable(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


def _begin_autocommit(conn) -> None:
    """A Connection's transaction begins: with AUTOCOMMIT_OPTION, the psycopg2 connection
    under it sends no BEGIN (nor COMMIT or ROLLBACK) until it is back in the pool."""
    if conn.get_execution_options().get(AUTOCOMMIT_OPTION):
        conn.connection.dbapi_connection.autocommit = True


def _checkin_transactional(dbapi_conn, _record) -> None:
    if dbapi_conn is not None and not dbapi_conn.closed and dbapi_conn.autocommit:
        dbapi_conn.autocommit = False


def runs_alone(session: Session) -> bool:
    """True when every statement `execute_alone` runs for `session` from now on is a
    transaction of its own on a pooled connection (`_run_pooled`), until the session
    begins one: its bind is an engine of psycopg2 and it has begun nothing. For a request
    whose every statement stands alone (a read, then one statement that is the whole
    change), with no Session transaction, connection or commit around them."""
    bind = session.get_bind()
    return isinstance(bind, Engine) and autocommit_capable(bind) \
        and not session.in_transaction()


def run_pooled_sql(engine: Engine, sql: str) -> None:
    """`sql` (no parameters, no rows) as a transaction of its own on a connection checked
    out of the engine's pool for it alone; a connection that fails it is invalidated."""
    with _autocommitted(engine) as pooled:
        try:
            with pooled.dbapi_connection.cursor() as cur:
                cur.execute(sql)
        except Exception:
            pooled.invalidate()
            raise


def run_pooled_soon(engine: Engine, sql: str, *, gap: float,
                    on_error: Callable[[Exception], None]) -> None:
    """`sql` (as run_pooled_sql runs it) soon, by a thread of this process, coalesced: the
    first ask after a quiet spell runs it at once, asks while it runs or within `gap`
    seconds of its last run are all answered by one more run, `gap` after the last. The
    asking thread does not wait. `on_error(exception)` is called, in that thread, for a run
    that fails; the next ask runs it again. Between asks the thread holds the engine weakly
    and ends with it; an ask holds it until its run."""
    key = (os.getpid(), id(engine), sql)  # gone with its engine (_forget_soon)
    runner = _SOON.get(key)
    if runner is None:
        with _SOON_LOCK:
            runner = _SOON.get(key)
            if runner is None:
                _at_exit_wait()
                runner = _SOON[key] = _Soon(engine, sql, gap, on_error)
                # not at exit, where wait_soon_idle is to find it and let its ask run
                weakref.finalize(engine, _forget_soon, key, runner).atexit = False
    runner.ask(engine)


@functools.cache
def _at_exit_wait() -> None:
    """Once per process: a process that ends (a CLI command) sends what it asked."""
    atexit.register(wait_soon_idle, 2.0)


def _forget_soon(key: tuple[int, int, str], runner: _Soon) -> None:
    with _SOON_LOCK:
        if _SOON.get(key) is runner:
            del _SOON[key]
    runner.close()


def wait_soon_idle(timeout: float = 5.0) -> bool:
    """Until every run_pooled_soon of this process asked so far has run (tests, and at
    exit); False on timeout."""
    deadline = time.monotonic() + timeout
    for key, runner in list(_SOON.items()):
        if key[0] == os.getpid() and not runner.wait_idle(deadline - time.monotonic()):
            return False
    return True


class _Soon:
    """run_pooled_soon's thread for one engine and statement, in one process (a forked
    child starts its own: threads do not survive fork, hence the pid in _SOON's keys)."""

    def __init__(self, engine: Engine, sql: str, gap: float,
                 on_error: Callable[[Exception], None]) -> None:
        self._sql, self._gap, self._on_error = sql, gap, on_error
        self._cond = threading.Condition()
        self._asked = self._running = self._closed = False
        self._held: Engine | None = None  # while asked: the engine lives until the run
        self._last = float("-inf")
        threading.Thread(target=self._loop, daemon=True, name="paddles-soon").start()

    def ask(self, engine: Engine) -> None:
        with self._cond:
            if not self._asked:
                self._asked, self._held = True, engine
                self._cond.notify_all()

    def close(self) -> None:
        """The engine is gone: the thread ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not (self._asked or self._running),
                                       max(0.0, timeout))

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked or self._closed)
                if not self._asked:  # closed, nothing asked
                    return
            pause = self._last + self._gap - time.monotonic()
            if pause > 0:  # asks meanwhile join this run
                time.sleep(pause)
            with self._cond:
                self._asked, self._running = False, True
                engine, self._held = self._held, None
            try:
                run_pooled_sql(engine, self._sql)
            except Exception as error:  # reported; the next ask tries again
                self._on_error(error)
            finally:
                del engine  # weakly held again: an engine dropped meanwhile goes now
                self._last = time.monotonic()
                with self._cond:
                    self._running = False
                    self._cond.notify_all()


_SOON: dict[tuple[int, int, str], _Soon] = {}
# reentrant: the collector may free an engine, and run its _forget_soon, in a thread
# that holds it
_SOON_LOCK = threading.RLock()


def run_after_commit(dbapi_conn, sql: str) -> bool:
    """`sql` as a transaction of its own (autocommit) on a psycopg2 connection that has just
    committed and is still checked out; False (nothing run) when it is closed or inside a
    transaction (a savepoint released, say). The connection is left as it was found."""
    if dbapi_conn.closed or dbapi_conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        return False
    was = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        with dbapi_conn.cursor() as cur:
            cur.execute(sql)
    finally:
        dbapi_conn.autocommit = was
    return True


class Outcome(NamedTuple):
    """What a statement run by `execute_alone` gave: its rows (a list of tuples, empty for a
    statement that returns none) and its rowcount."""
    rows: list
    rowcount: int

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


def execute_alone(session: Session, statement: Prepared, params: dict) -> Outcome:
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
    if not autocommit_capable(bind):
        return _outcome(session.connection().execute(statement.statement, params))
    if isinstance(bind, Engine) and not session.in_transaction():
        held = session.info.get(_HELD)
        if held is not None:
            return held.run(bind, statement, params)
        return _run_pooled(bind, statement, params)
    conn = session.connection()
    raw = conn.connection.dbapi_connection
    alone = not raw.autocommit and raw.get_transaction_status() == TRANSACTION_STATUS_IDLE
    if not (alone or raw.autocommit):  # inside a transaction that has begun: plainly
        return _outcome(conn.execute(statement.statement, params))
    if alone:
        raw.autocommit = True
    try:
        return _execute_autocommitted(conn, statement, params)
    finally:
        if alone and not raw.closed:
            raw.autocommit = False


def _outcome(result) -> Outcome:
    return Outcome(result.fetchall() if result.returns_rows else [], result.rowcount)


def _execute_autocommitted(conn, statement: Prepared, params: dict) -> Outcome:
    """On a SQLAlchemy Connection in autocommit. With listeners on its statements (tests
    counting queries), through it so that they see the statement; otherwise on its DBAPI
    cursor (`_run_on_cursor`): SQLAlchemy's result set-up for a driver-level statement reads
    the cursor's description anew on every execution, a column at a time."""
    prepare = conn.get_execution_options().get(PREPARE_OPTION, True)
    if conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute:
        if not prepare:
            return _outcome(conn.execute(statement.statement, params))
        result = statement.execute_prepared(conn, params)
        return statement.outcome(result.fetchall() if result.returns_rows else [],
                                 result.rowcount, conn.dialect)
    return _run_on_cursor(conn.engine, conn.connection, statement, params, prepare)


def _run_pooled(engine: Engine, statement: Prepared, params: dict) -> Outcome:
    """`statement` on a connection checked out of the engine's pool for it alone, in
    autocommit. With listeners on the engine's statements (tests counting queries), through
    a SQLAlchemy Connection so that they see it; otherwise on the DBAPI cursor, with the same
    SQL, the pool's checkout and checkin events, SQLAlchemy's exception classes, and a
    connection found dead invalidated."""
    held = _Held()
    try:
        return held.run(engine, statement, params)
    finally:
        held.release()


def _listened(engine: Engine) -> bool:
    """Listeners on the engine's statements (tests counting queries): statements go through
    a SQLAlchemy Connection so that they see them."""
    return bool(engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute)


@contextlib.contextmanager
def _autocommitted(engine: Engine) -> Iterator[Any]:
    """A connection of the engine's pool in autocommit, given back (transactional again:
    _checkin_transactional) at the end."""
    pooled = _checkout_autocommitted(engine)
    try:
        yield pooled
    finally:
        pooled.close()


def _checkout_autocommitted(engine: Engine):
    """A connection checked out of the engine's pool, in autocommit. A new connection the
    server refuses (down, starting, shutting down) raises SQLAlchemy's exception class, as
    Engine.connect would (an OperationalError: a 503), not psycopg2's own, which
    raw_connection lets through."""
    try:
        pooled = engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error,
                                      dialect=engine.dialect) from error
    try:
        pooled.dbapi_connection.autocommit = True
    except BaseException:
        pooled.close()
        raise
    return pooled


_HELD = "paddles.held_connection"


@contextlib.contextmanager
def one_connection(session: Session) -> Iterator[None]:
    """Within the block, the statements `execute_alone` runs alone for `session` share one
    pooled connection, checked out at the first and back in when the block ends: a read
    and the write worked out from it pay for one checkout, not two. Each is still a
    transaction of its own (autocommit): nothing is held between them but the connection.
    Elsewhere (not runs_alone, a block already around it) the block changes nothing."""
    if _HELD in session.info or not runs_alone(session):
        yield
        return
    held = session.info[_HELD] = _Held()
    try:
        yield
    finally:
        del session.info[_HELD]
        held.release()


class _Held:
    """A connection for lone statements (_run_pooled's for one, one_connection's for a
    block), checked out when first needed: the pool's connection itself, or a SQLAlchemy
    Connection in autocommit when listeners are to see the statements."""

    pooled: Any = None  # the pool's connection, or a SQLAlchemy Connection (listened)

    def run(self, engine: Engine, statement: Prepared, params: dict) -> Outcome:
        if _listened(engine):
            if self.pooled is None:
                self.pooled = engine.connect().execution_options(**{AUTOCOMMIT_OPTION: True})
            return _execute_autocommitted(self.pooled, statement, params)
        if self.pooled is None:
            self.pooled = _checkout_autocommitted(engine)
        prepare = engine.get_execution_options().get(PREPARE_OPTION, True)
        return _run_on_cursor(engine, self.pooled, statement, params, prepare)

    def release(self) -> None:
        if self.pooled is not None:
            self.pooled, pooled = None, self.pooled
            pooled.close()


def _run_on_cursor(engine: Engine, pooled, statement: Prepared, params: dict,
                   prepare: bool) -> Outcome:
    """`statement` on a cursor of the pooled connection `pooled` (in autocommit), with the
    same SQL SQLAlchemy would send, SQLAlchemy's exception classes, and a connection found
    dead invalidated."""
    cursor = pooled.dbapi_connection.cursor()
    try:
        values = statement.values(params, engine.dialect)
        if not prepare:
            _cursor_execute(engine, pooled, cursor, statement.plain_sql, values)
        else:
            statement.run_prepared(
                pooled.info,
                lambda sql, values=None: _cursor_execute(engine, pooled, cursor, sql, values),
                values)
        return statement.outcome(cursor.fetchall() if cursor.description else [],
                                 cursor.rowcount, engine.dialect)
    finally:
        cursor.close()


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


class Prepared:
    """A statement PostgreSQL parses and plans once per connection (PREPARE) and afterwards
    only runs (EXECUTE NAME(...)): for the heartbeat, parsing and planning were half of its
    database time. `statement` must take its values as the named bind parameters `params`
    only (constants written as literal columns). Which connections hold it is kept in the
    pooled connection's `info`, which a replaced connection does not inherit; a connection
    that lost it anyway (DISCARD ALL) prepares it again, and one that holds MAX_PREPARED
    drops them all before it prepares another."""

    def __init__(self, name: str, statement, params: tuple[str, ...],
                 types: Mapping[str, TypeEngine] | None = None, *,
                 process_results: bool = False, first: Prepared | None = None):
        self.name, self.statement, self.params = name, statement, params
        self.execute_sql = f"EXECUTE {name}({', '.join(f'%({p})s' for p in params)})"
        # `first`: a statement sent ahead of this one in the same message, on a connection
        # in autocommit (one round trip, one transaction; each statement with a snapshot
        # taken as it starts): a row lock taken by it is waited for there, so this
        # statement starts after the wait and sees the locked row's newest version, where
        # a lock taken by this statement itself would be followed by PostgreSQL re-checking
        # the row against the whole plan (EvalPlanQual), which costs as much as running it
        self.first = first
        if first is not None:
            if not set(first.params) <= set(params):
                raise ValueError(f"{name}: {first.name} takes parameters it does not")
            self.execute_sql = f"{first.execute_sql}; {self.execute_sql}"
        # SQLAlchemy types of parameters whose values need its bind processing (JSON,
        # TypeDecorators) when sent below it; their processors, per dialect
        self.types = dict(types or {})
        self._processors: dict[Dialect, list[tuple[str, Callable]]] = {}
        # `process_results`: rows read below SQLAlchemy get its result processing (enums,
        # TypeDecorators), as a statement it executes gives them; else the driver's values
        self.process_results = process_results
        self._result_processors: dict[Dialect, list[tuple[int, Callable]]] = {}

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

    def values(self, params: dict, dialect: Dialect) -> dict:
        """The parameters as the driver takes them: through the bind processors of `types`
        (what SQLAlchemy's execute does)."""
        out = {p: params.get(p) for p in self.params}
        if not self.types:
            return out
        processors = self._processors.get(dialect)
        if processors is None:  # (parameter, processor) of those that have one
            processors = self._processors[dialect] = [
                (p, process) for p, t in self.types.items() if p in out
                and (process := t.dialect_impl(dialect).bind_processor(dialect)) is not None]
        for p, process in processors:
            out[p] = process(out[p])
        return out

    def outcome(self, rows: list, rowcount: int, dialect: Dialect) -> Outcome:
        """The Outcome of rows the driver returned for this statement."""
        if not self.process_results or not rows:
            return Outcome(rows, rowcount)
        processors = self._result_processors.get(dialect)
        if processors is None:  # (position, processor) of the columns that have one
            processors = self._result_processors[dialect] = [
                (i, process) for i, column in enumerate(self.statement.exported_columns)
                if (process := column.type.dialect_impl(dialect).result_processor(
                    dialect, None)) is not None]
        out = []
        for row in rows:
            values = list(row)
            for i, process in processors:
                values[i] = process(values[i])
            out.append(tuple(values))
        return Outcome(out, rowcount)

    def execute_prepared(self, conn, params: dict):
        """On a SQLAlchemy Connection in autocommit; its result."""
        return self.run_prepared(conn.connection.info, conn.exec_driver_sql,
                                 self.values(params, conn.dialect))

    def run_prepared(self, info: dict, execute, values: dict):
        """EXECUTE, after PREPARE on a connection (whose pool `info` is given) that has not
        prepared it; `execute(sql[, values])` runs SQL on that connection in autocommit."""
        keys = [(_PREPARED, p.name, p.prepare_sql) for p in (self.first, self)
                if p is not None]
        for attempt in (1, 2):
            missing = [key for key in keys if not info.get(key[:2])]
            if missing and len(_prepared(info)) + len(missing) > MAX_PREPARED:
                execute("DEALLOCATE ALL")
                for key in _prepared(info):
                    del info[key]
                missing = keys
            for key in missing:
                execute(key[2])
                info[key[:2]] = True
            try:
                return execute(self.execute_sql, values)
            except exc.DBAPIError as error:  # autocommit: nothing else failed with it
                if getattr(error.orig, "pgcode", None) != UNDEFINED_PREPARED_STATEMENT \
                        or attempt == 2:
                    raise
                for key in keys:  # the connection lost one or all of them: anew
                    if len(keys) > 1:
                        with contextlib.suppress(exc.DBAPIError):  # lost already
                            execute(f"DEALLOCATE {key[1]}")
                    info.pop(key[:2], None)


_PREPARED = "paddles.prepared"  # pool `info` keys: (_PREPARED, name) of a statement prepared
# Statements one connection keeps prepared at most. There is one per shape of job report
# (the keys a write names or changes): teuthology sends a handful, but a client could send
# many; past this many, the connection drops them all (DEALLOCATE ALL) and prepares anew
# those it runs, so that a server process's memory stays bounded.
MAX_PREPARED = 200


def _prepared(info: dict) -> list[tuple[str, str]]:
    """The `info` keys of the statements a connection holds (counted only when preparing)."""
    return [key for key in info if isinstance(key, tuple) and key[:1] == (_PREPARED,)]
