"""The PostgreSQL pool's checkout check (paddles.pg._check_socket), which replaced the
pre-ping: a pooled connection the server ended is replaced on checkout, with no failed
statement and no `SELECT 1` round trip for a live one."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from paddles.db import make_engine


@pytest.fixture
def pg_engine(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pool only: SQLite has no server to end a session")
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def test_a_connection_the_server_ended_is_replaced_at_checkout(pg_engine, engine):
    pid = _backend_pid(pg_engine)
    with engine.connect() as admin:
        assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the backend exits (and says so) asynchronously
        with engine.connect() as admin:
            if not admin.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                {"p": pid}):
                break
        time.sleep(0.05)
    # the pool holds one connection, the dead one: the first statement still succeeds
    assert _backend_pid(pg_engine) != pid


def test_a_live_pooled_connection_costs_no_round_trip_at_checkout(pg_engine):
    assert pg_engine.pool._pre_ping is False  # the pre-ping would send SELECT 1 each time
    pid = _backend_pid(pg_engine)
    assert _backend_pid(pg_engine) == pid  # the same pooled connection, kept


def test_without_the_check_the_dead_connection_fails_a_statement(database_url, engine):
    """The control: what the check prevents (the first statement on the ended session)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    bare = make_engine(database_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    try:
        pid = _backend_pid(bare)
        with engine.connect() as admin:
            assert admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.3)
        with pytest.raises(DBAPIError):
            _backend_pid(bare)
        assert _backend_pid(bare) != pid  # invalidated on the error, as before
    finally:
        bare.dispose()


def test_the_connection_given_back_last_is_lent_next(database_url):
    """LIFO: one client's statements after one another run on one warm connection (its
    prepared statements) however many the pool holds, as the heartbeat's one round trip
    (tests/api/test_heartbeat.py) assumes."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = make_engine(database_url, pool_size=3, max_overflow=0)
    try:
        first, second = engine.raw_connection(), engine.raw_connection()
        pids = [c.dbapi_connection.get_backend_pid() for c in (first, second)]
        first.close()
        second.close()  # the last one back
        for _ in range(3):
            again = engine.raw_connection()
            assert again.dbapi_connection.get_backend_pid() == pids[1]
            again.close()
    finally:
        engine.dispose()
