"""Databases at an earlier revision, for the tests of a migration's upgrade and downgrade."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import webtest

from paddles import migrations
from paddles.app import make_app
from paddles.db import make_engine, make_session_factory
from paddles.settings import load_settings
from tests.conftest import _create_pg_database


@contextlib.contextmanager
def database_at(revision: str, backend: str, tmp_path) -> Iterator[str]:
    """A throwaway database of `backend` migrated to `revision` (its URL), dropped after."""
    if backend == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'old.db'}", (lambda: None)
    else:
        url, drop = _create_pg_database()
    migrations.upgrade(url, revision)
    try:
        yield url
    finally:
        drop()


def app_on(url: str, tmp_path):
    """(a webtest app of this tree on the database at `url`, its engine: dispose of it)."""
    settings = load_settings(environ={}, database_url=url, address="http://paddles.test",
                             data_dir=str(tmp_path / "data"))
    engine = make_engine(url)
    return webtest.TestApp(make_app(settings, session_factory=make_session_factory(engine))), \
        engine
