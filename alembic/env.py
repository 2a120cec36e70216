"""Alembic environment: the URL comes from paddles.settings, the target from the models."""
from __future__ import annotations

from alembic import context

from paddles.db import make_engine
from paddles.models import Base
from paddles.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by dropping it: with foreign keys on, that drop
            # would cascade into the rows referencing it. The pragma only takes effect
            # outside a transaction, so it goes to the driver before anything begins.
            _foreign_keys(conn, False)
        try:
            _run(conn)
        finally:
            if sqlite:
                conn.rollback()  # nothing left open (the migrations committed)
                _foreign_keys(conn, True)
    engine.dispose()


def _foreign_keys(conn, on: bool) -> None:
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
