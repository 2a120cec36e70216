"""The fault settings reach the connections: lock timeout, connection names, client timeout."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from paddles.db import make_engine
from paddles.settings import load_settings
from tests.commands.conftest import cli  # noqa: F401  (fixture)

pytestmark = pytest.mark.faults


def test_timeouts_come_from_the_environment():
    settings = load_settings(environ={"PADDLES_CLIENT_TIMEOUT": "2.5",
                                      "PADDLES_DB_LOCK_TIMEOUT": "0"})
    assert (settings.client_timeout, settings.db_lock_timeout) == (2.5, 0)
    defaults = load_settings(environ={})
    assert (defaults.client_timeout, defaults.db_lock_timeout) == (60, 30)


def test_the_lock_timeout_and_connection_name_are_set_on_every_connection(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0, lock_timeout=1.5)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
            else:
                assert conn.scalar(text("SHOW lock_timeout")) == "1500ms"
                assert conn.scalar(text("SELECT current_setting('application_name')")) \
                    == f"paddles[{os.getpid()}]"
    finally:
        engine.dispose()


def test_commands_keep_the_default_lock_waits(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            else:
                assert conn.scalar(text("SHOW lock_timeout")) == "0"
    finally:
        engine.dispose()


def test_check_config_refuses_negative_timeouts(cli, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("PADDLES_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PADDLES_CLIENT_TIMEOUT", "-1")
    monkeypatch.setenv("PADDLES_DB_LOCK_TIMEOUT", "-2")
    result = cli("check-config", expect=1)
    assert "client_timeout must be 0 (no limit) or more" in result.out
    assert "db_lock_timeout must be 0 (no limit) or more" in result.out
