"""SQLite: JSON columns declared TEXT, so a JSON number is stored as its text

A column declared JSON has NUMERIC affinity on SQLite: the JSON text `7` was stored as the
integer 7 (`1.0` as 1, `1e5` as 100000) and read back as a number, which the JSON readers
refused (500s on the job, its artifacts, exports, set-targets). Each table holding a JSON
column is rebuilt with the column declared TEXT (batch mode), and every value stored as a
number is written back as JSON text: integers exactly, reals with the shortest text that
reads back as the same double (what the server writes for a float). What affinity already
changed (`1.0` -> `1`) cannot be told apart any more and stays as stored; a real too large
for a double (a huge integer stored as infinity) becomes `null`. PostgreSQL (JSONB): no-op.

Foreign keys must be off while a table is rebuilt (dropping the old `jobs` would cascade
into its artifacts, tests and node links): alembic/env.py turns them off on SQLite before
the migrations run, and this migration refuses to run if they are on.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00
"""
import logging
import math

import orjson
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

JSON_COLUMNS = {
    "jobs": ("kernel", "overrides", "roles", "targets", "tasks"),
    "test_cases": ("tags", "details"),
    "timelines": ("columns", "rows"),
    "events": ("data",),
    "subscriptions": ("types", "criteria"),
    "deliveries": ("log",),
    "api_tokens": ("roles",),
}
# tables whose ids SQLite must never hand out again (AUTOINCREMENT, models/events.py)
AUTOINCREMENT = ("events", "deliveries")


def upgrade() -> None:
    _convert(sa.Text())


def downgrade() -> None:
    _convert(sa.JSON())


def _convert(type_) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("0008 rebuilds tables: SQLite foreign keys must be off (dropping "
                           "a table would cascade); run it through `paddles migrate`")
    for table, columns in JSON_COLUMNS.items():
        numbers = _numbers_as_json(bind, table, columns) if isinstance(type_, sa.Text) else []
        sequence = _sequence(bind, table)
        kwargs = {"sqlite_autoincrement": True} if table in AUTOINCREMENT else {}
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs) as batch:
            for column in columns:
                batch.alter_column(column, type_=type_)
        for key, column, text in numbers:
            where = " AND ".join(f'"{name}" = :k{i}' for i, name in enumerate(key))
            bind.execute(sa.text(f'UPDATE "{table}" SET "{column}" = :v WHERE {where}'),
                         {"v": text, **{f"k{i}": v for i, v in enumerate(key.values())}})
        if sequence is not None:
            bind.execute(sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) "
                                 "WHERE name = :name"), {"seq": sequence, "name": table})
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"0008: foreign keys broken after the rebuild: {broken[:5]}")


def _numbers_as_json(bind, table: str, columns) -> list:
    """(primary key, column, JSON text) of every value SQLite stored as a number."""
    pk = sa.inspect(bind).get_pk_constraint(table)["constrained_columns"]
    keys = ", ".join(f'"{name}"' for name in pk)
    out = []
    for column in columns:
        rows = bind.exec_driver_sql(
            f'SELECT {keys}, "{column}" FROM "{table}" '
            f"WHERE typeof(\"{column}\") IN ('integer', 'real')").fetchall()
        for row in rows:
            value = row[-1]
            if isinstance(value, float) and not math.isfinite(value):
                log.warning("0008: %s.%s of %s was stored as %s (a number beyond a double); "
                            "it becomes null", table, column, dict(zip(pk, row)), value)
                text = "null"
            else:
                text = orjson.dumps(value).decode()
            out.append((dict(zip(pk, row[:-1])), column, text))
    return out


def _sequence(bind, table: str):
    if table not in AUTOINCREMENT:
        return None
    return bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?",
                                (table,)).scalar()
