"""pg.execute_alone: one statement as a transaction of its own, on a pooled connection of its
own when the session has begun nothing (PostgreSQL with psycopg2), else in the session."""
from __future__ import annotations

import pytest
from sqlalchemy import Integer, bindparam, event, exc, select, text
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
