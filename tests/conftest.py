"""Fixtures: every DB-backed test runs on SQLite and on a throwaway PostgreSQL database.

PostgreSQL: PADDLES_TEST_POSTGRES_URL (an admin URL; default the local server as user
postgres). Each pytest worker creates `paddles_test_<uuid>`, migrates it with alembic and
drops it at the end. If the server is unreachable the PostgreSQL cases are skipped, unless
PADDLES_REQUIRE_POSTGRES=1 (CI), where they fail.
"""
from __future__ import annotations

import dataclasses
import os
import uuid

import pytest
import webtest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from paddles import migrations, notify
from paddles.app import make_app
from paddles.db import make_engine, make_session_factory
from paddles.models import Base
from paddles.settings import load_settings

PG_ADMIN_URL = os.environ.get("PADDLES_TEST_POSTGRES_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("PADDLES_REQUIRE_POSTGRES") == "1"
BACKENDS = ("sqlite", "postgresql")


def _create_pg_database() -> tuple[str, callable]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"paddles_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")

    def drop():
        notify.forget(url.render_as_string(hide_password=False))  # no LISTEN thread outlives it
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(PG_ADMIN_URL).set(database=name)
    return url.render_as_string(hide_password=False), drop


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory):
    if backend == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "paddles.db")
        migrations.upgrade(url)
        yield url
        return
    url, drop = _create_pg_database()
    try:
        migrations.upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def engine(database_url):
    eng = make_engine(database_url, pool_size=20, max_overflow=20)
    yield eng
    eng.dispose()


def _wipe(engine) -> None:
    """Empty every table and restart identities. On PostgreSQL, DELETE plus ALTER SEQUENCE
    is about ten times faster than TRUNCATE on tables this small (TRUNCATE swaps files)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f'DELETE FROM "{table}"'))
        if engine.dialect.name == "postgresql":
            sequences = conn.execute(text(
                "SELECT sequence_name FROM information_schema.sequences "
                "WHERE sequence_schema = current_schema()")).scalars()
            for name in sequences:
                conn.execute(text(f'ALTER SEQUENCE "{name}" RESTART'))


@pytest.fixture
def db_engine(engine):
    """The engine, with every table emptied after the test (tests commit for real)."""
    yield engine
    _wipe(engine)


@pytest.fixture
def settings(database_url):
    return load_settings(environ={}, database_url=database_url,
                         address="http://paddles.test", default_latest_runs_count=25)


@pytest.fixture
def session_factory(db_engine):
    return make_session_factory(db_engine)


@pytest.fixture
def session(session_factory):
    with session_factory() as s:
        yield s


@pytest.fixture
def app(settings, session_factory):
    return webtest.TestApp(make_app(settings, session_factory=session_factory))


@pytest.fixture
def fresh(settings, session_factory):
    """The same app with its response cache off: what a correct answer is."""
    return webtest.TestApp(make_app(dataclasses.replace(settings, response_cache_size=0),
                                    session_factory=session_factory))


class QueryCounter:
    def __init__(self):
        self.statements: list[str] = []
        self.executed: list[tuple[str, object]] = []  # (statement, parameters), for EXPLAIN

    def __call__(self, conn, cursor, statement, parameters, *args):
        # nor PREPARE: a prepared statement (db.Prepared) is prepared once per connection,
        # so whether a request pays it depends on which pooled connection it got
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK",
                                                      "SAVEPOINT", "RELEASE", "PRAGMA",
                                                      "PREPARE")):
            self.statements.append(statement)
            self.executed.append((statement, parameters))

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self):
        self.statements.clear()
        self.executed.clear()


@pytest.fixture
def queries(db_engine):
    """Counts the SQL statements (not transaction control, nor PREPARE) the engine runs."""
    counter = QueryCounter()
    event.listen(db_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(db_engine, "before_cursor_execute", counter)
