"""Alembic driven from code, so `paddles migrate` needs no alembic.ini on disk."""
from __future__ import annotations

import contextlib
import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from . import resources


def alembic_config(database_url: str, connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.path("alembic")))
    cfg.set_main_option("file_template",
                        "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s")
    cfg.attributes["database_url"] = database_url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(database_url: str, revision: str = "head", *, verbose: bool = False) -> None:
    """`verbose`: log alembic's line per migration applied (`paddles migrate`); otherwise
    alembic says only warnings (logs.configure_logging)."""
    with _migration_steps_logged() if verbose else contextlib.nullcontext():
        command.upgrade(alembic_config(database_url), revision)


@contextlib.contextmanager
def _migration_steps_logged():
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)


def current_revision(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
