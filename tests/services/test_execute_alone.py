"""pg.execute_alone: one statement as a transaction of its own, on a pooled connection of its
own when the session has begun nothing (PostgreSQL with psycopg2), else in the session."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Integer, bindparam, event, exc, literal_column, select, text
from sqlalchemy.orm import sessionmaker

from paddles.db import make_engine
from paddles.pg import Prepared, execute_alone
from paddles.services import jobs as job_service

from tests.factories import post_job, run_name

DIVIDE = Prepared("paddles_test_divide",
                  select(bindparam("a", type_=Integer) / bindparam("b", type_=Integer)),
                  ("a", "b"))
SUICIDE = Prepared("paddles_test_suicide",
                   select(text("pg_terminate_backend(pg_backend_pid())"),
                          bindparam("x", type_=Integer)), ("x",))


@pytest.fixture
def pooled(db_engine):
    """A one-connection engine of its own (so the connection it hands back is the same),
    with nothing listening to its statements (so the DBAPI lane is the one taken)."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("the pooled lane is PostgreSQL's (SQLite runs in the session)")
    engine = make_engine(db_engine.url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _server_state(engine):
    with engine.connect() as conn:
        prepared = conn.exec_driver_sql(
            "SELECT name FROM pg_prepared_statements").scalars().all()
        return prepared, conn.connection.dbapi_connection.autocommit


def test_rows_and_rowcount_from_the_dbapi_lane_and_the_connection_goes_back_clean(pooled):
    session = sessionmaker(bind=pooled)()
    out = execute_alone(session, DIVIDE, {"a": 6, "b": 3})
    assert out.rows == [(2,)] and out.first() == (2,) and out.rowcount == 1
    assert not session.in_transaction()  # the session itself began nothing
    prepared, autocommit = _server_state(pooled)
    assert prepared == ["paddles_test_divide"] and autocommit is False
    assert execute_alone(session, DIVIDE, {"a": 9, "b": 3}).first() == (3,)  # prepared once


def test_an_error_is_sqlalchemys_and_leaves_the_connection_usable(pooled):
    session = sessionmaker(bind=pooled)()
    with pytest.raises(exc.DataError) as caught:
        execute_alone(session, DIVIDE, {"a": 1, "b": 0})
    assert caught.value.orig.pgcode == "22012"  # division_by_zero
    assert not caught.value.connection_invalidated
    assert execute_alone(session, DIVIDE, {"a": 4, "b": 2}).first() == (2,)
    assert _server_state(pooled)[1] is False


def test_a_connection_that_dies_is_invalidated_and_replaced(pooled):
    session = sessionmaker(bind=pooled)()
    with pytest.raises(exc.OperationalError) as caught:  # the app answers 503
        execute_alone(session, SUICIDE, {"x": 1})
    assert caught.value.connection_invalidated
    assert execute_alone(session, DIVIDE, {"a": 8, "b": 2}).first() == (4,)  # a new one


def test_a_connection_that_lost_its_statements_prepares_again(pooled):
    session = sessionmaker(bind=pooled)()
    execute_alone(session, DIVIDE, {"a": 1, "b": 1})
    with pooled.connect() as conn:
        conn.connection.dbapi_connection.autocommit = True
        conn.exec_driver_sql("DEALLOCATE ALL")
    assert execute_alone(session, DIVIDE, {"a": 10, "b": 5}).first() == (2,)


def test_a_connection_keeps_at_most_max_prepared_statements(pooled, monkeypatch):
    """Past pg.MAX_PREPARED, a connection drops its prepared statements and prepares anew
    those it runs: one per shape of job report, and a client may send many shapes."""
    from paddles import pg
    monkeypatch.setattr(pg, "MAX_PREPARED", 3)
    session = sessionmaker(bind=pooled)()
    shapes = [Prepared(f"paddles_test_shape_{n}",
                       select(bindparam("a", type_=Integer) + literal_column(str(n))), ("a",))
              for n in range(5)]
    for n, shape in enumerate(shapes):
        assert execute_alone(session, shape, {"a": 10}).first() == (10 + n,)
        assert len(_server_state(pooled)[0]) <= 3
    assert sorted(_server_state(pooled)[0]) == ["paddles_test_shape_3", "paddles_test_shape_4"]
    # each still runs, prepared again where it was dropped
    assert [execute_alone(session, s, {"a": 1}).first() for s in shapes] == \
        [(1,), (2,), (3,), (4,), (5,)]
    assert len(_server_state(pooled)[0]) <= 3


def test_without_prepared_statements_nothing_is_prepared(db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    engine = make_engine(db_engine.url, pool_size=1, max_overflow=0,
                         prepared_statements=False)
    try:
        session = sessionmaker(bind=engine)()
        assert execute_alone(session, DIVIDE, {"a": 6, "b": 2}).first() == (3,)
        assert _server_state(engine) == ([], False)
    finally:
        engine.dispose()


def test_in_a_begun_transaction_it_runs_there_and_rolls_back_with_it(app, db_engine):
    run = run_name()
    post_job(app, run, job_id=1, status="running")
    before = app.get(f"/runs/{run}/jobs/1/").json["updated"]
    session = sessionmaker(bind=db_engine)()
    session.execute(text("SELECT 1"))  # the transaction has sent something: not alone
    job_service.update_job(session, run, "1", {"name": run})
    session.rollback()
    assert app.get(f"/runs/{run}/jobs/1/").json["updated"] == before


def test_listeners_see_the_statement(pooled):
    seen = []
    listener = lambda conn, cursor, statement, *rest: seen.append(  # noqa: E731
        (statement.split()[0], conn.connection.dbapi_connection.autocommit))
    event.listen(pooled, "before_cursor_execute", listener)
    try:
        session = sessionmaker(bind=pooled)()
        execute_alone(session, DIVIDE, {"a": 2, "b": 1})
        execute_alone(session, DIVIDE, {"a": 2, "b": 1})
    finally:
        event.remove(pooled, "before_cursor_execute", listener)
    assert seen == [("PREPARE", True), ("EXECUTE", True), ("EXECUTE", True)]


def test_a_url_without_a_driver_is_psycopg2(db_engine):
    """`postgresql://` (what users write) gets psycopg2, the driver paddles installs."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    url = db_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        assert engine.dialect.driver == "psycopg2"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_typed_parameters_are_bound_as_sqlalchemy_binds_them(pooled):
    """Below SQLAlchemy, a Prepared's typed parameters go through the same bind processing
    (JSON serialised, UTC datetimes), on the pooled lane and prepared alike."""
    import datetime as dt

    from sqlalchemy import JSON, DateTime, Text, cast
    from sqlalchemy.dialects.postgresql import JSONB

    from paddles.models.base import UTCDateTime
    types = {"doc": JSON(), "when": UTCDateTime()}
    echo = Prepared("paddles_test_echo",
                    select(cast(cast(bindparam("doc", type_=types["doc"]), JSONB), Text),
                           cast(bindparam("when", type_=types["when"]), DateTime(timezone=True))),
                    ("doc", "when"), types)
    naive = dt.datetime(2026, 12, 6, 7, 0, 0)
    with sessionmaker(bind=pooled)() as session:
        row = execute_alone(session, echo, {"doc": {"a": [1, None]}, "when": naive}).first()
    assert row[0] == '{"a": [1, null]}'
    assert row[1] == naive.replace(tzinfo=dt.UTC)  # taken as UTC, as UTCDateTime binds it


def test_one_connection_shares_one_checkout_and_gives_it_back(pooled):
    """pg.one_connection: the block's lone statements run on one pooled connection (each
    still its own transaction), checked in at the end, also when the block raises; a block
    inside it changes nothing."""
    from paddles.pg import one_connection
    session = sessionmaker(bind=pooled)()
    checkouts = []

    def checked_out(*_):
        checkouts.append(1)
    event.listen(pooled, "checkout", checked_out)
    with one_connection(session):
        assert execute_alone(session, DIVIDE, {"a": 6, "b": 2}).first() == (3,)
        with one_connection(session):
            assert execute_alone(session, DIVIDE, {"a": 8, "b": 2}).first() == (4,)
        assert pooled.pool.checkedout() == 1
    assert checkouts == [1] and pooled.pool.checkedout() == 0
    with pytest.raises(exc.DataError):
        with one_connection(session):
            execute_alone(session, DIVIDE, {"a": 1, "b": 1})
            execute_alone(session, DIVIDE, {"a": 1, "b": 0})
    assert pooled.pool.checkedout() == 0 and _server_state(pooled)[1] is False
    assert not session.in_transaction()
    event.remove(pooled, "checkout", checked_out)


@pytest.fixture
def counter(pooled):
    """A one-row table of the test's own: (id 1, v 0)."""
    with pooled.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE paddles_test_counter (id int PRIMARY KEY, v int)")
        conn.exec_driver_sql("INSERT INTO paddles_test_counter VALUES (1, 0)")
    yield pooled
    with pooled.begin() as conn:
        conn.exec_driver_sql("DROP TABLE paddles_test_counter")


def _counter_statements():
    bump = Prepared("paddles_test_bump", text(
        "UPDATE paddles_test_counter SET v = v + 1 WHERE id = :n RETURNING v")
        .bindparams(bindparam("n", type_=Integer)), ("n",))
    lock = Prepared("paddles_test_lock", text(
        "SELECT v FROM paddles_test_counter WHERE id = :n FOR UPDATE")
        .bindparams(bindparam("n", type_=Integer)), ("n",))
    read = Prepared("paddles_test_read", text(
        "SELECT v, 6 / :d FROM paddles_test_counter WHERE id = :n")
        .bindparams(bindparam("n", type_=Integer), bindparam("d", type_=Integer)),
        ("n", "d"), first=lock)
    divide_after_bump = Prepared("paddles_test_divide_after", select(
        bindparam("n", type_=Integer) / bindparam("d", type_=Integer)), ("n", "d"), first=bump)
    return read, divide_after_bump


def _counter(engine):
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT v FROM paddles_test_counter").scalar()


def test_a_first_statement_goes_in_the_same_round_trip_and_transaction(counter):
    """Prepared's `first`: sent ahead of the statement in one message, in autocommit: one
    transaction, so the statement failing undoes the first; the rows are the statement's."""
    read, divide_after_bump = _counter_statements()
    session = sessionmaker(bind=counter)()
    assert execute_alone(session, divide_after_bump, {"n": 1, "d": 1}).first() == (1,)
    assert _counter(counter) == 1
    with pytest.raises(exc.DataError):
        execute_alone(session, divide_after_bump, {"n": 1, "d": 0})
    assert _counter(counter) == 1  # the bump went with the division
    assert execute_alone(session, read, {"n": 1, "d": 2}).first() == (1, 3)
    with pytest.raises(ValueError):  # a first statement takes only the statement's values
        Prepared("paddles_test_bad", select(bindparam("d", type_=Integer)), ("d",),
                 first=_counter_statements()[1].first)


def test_after_a_first_statement_waits_for_a_lock_the_statement_sees_the_newest_row(counter):
    """The statement's snapshot is taken when it starts, after the first one's wait: it
    reads what the lock's holder committed, without taking the lock itself."""
    read, _ = _counter_statements()
    got = []
    others = make_engine(counter.url, pool_size=2, max_overflow=0)
    with others.connect() as holder, others.connect() as watcher:
        holder.exec_driver_sql("UPDATE paddles_test_counter SET v = 41 WHERE id = 1")
        session = sessionmaker(bind=make_engine(counter.url, pool_size=1, max_overflow=0))()
        waiter = threading.Thread(target=lambda: got.append(
            execute_alone(session, read, {"n": 1, "d": 1}).first()))
        waiter.start()
        try:
            for _ in range(1500):
                waiting = watcher.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()").scalar()
                watcher.rollback()  # a new transaction: a new view of the activity
                if waiting:
                    break
                time.sleep(0.02)
            assert not got  # it waits for the holder
            holder.exec_driver_sql("UPDATE paddles_test_counter SET v = v + 1 WHERE id = 1")
            holder.commit()
        finally:
            waiter.join(30)
            session.get_bind().dispose()
    others.dispose()
    assert got == [(42, 6)]


def test_a_first_statement_is_prepared_again_with_the_statement(counter):
    read, _ = _counter_statements()
    session = sessionmaker(bind=counter)()
    execute_alone(session, read, {"n": 1, "d": 1})
    assert sorted(_server_state(counter)[0]) == ["paddles_test_lock", "paddles_test_read"]
    with counter.connect() as conn:
        conn.connection.dbapi_connection.autocommit = True
        conn.exec_driver_sql("DEALLOCATE paddles_test_lock")
    assert execute_alone(session, read, {"n": 1, "d": 3}).first() == (0, 2)
    assert sorted(_server_state(counter)[0]) == ["paddles_test_lock", "paddles_test_read"]
