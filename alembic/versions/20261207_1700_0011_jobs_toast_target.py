"""jobs: rows up to a page long are stored as they are, not compressed

A teuthology job's row is about 2.5 KB: its config (description, overrides, roles, tasks,
targets). Past 2 KB (the default toast_tuple_target), PostgreSQL compresses the row's
largest values with pglz on every insert, and every read of the row decompresses them
again: 13% of PostgreSQL's CPU per job create under load (docs/performance.md, issue 21).
With the target at its largest (8160 bytes, one 8 KB page less its header), such a row is
stored plain; a larger one is compressed and moved out of line as before. The cost is disk:
about 1 KB more per job of that size. Only rows written from now on change; nothing is
rewritten. SQLite stores rows as they come: nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 17:00:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: toast_tuple_target's largest value for 8 KB pages (TOAST_TUPLE_TARGET_MAIN)
TOAST_TUPLE_TARGET = 8160


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE jobs SET (toast_tuple_target = {TOAST_TUPLE_TARGET})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs RESET (toast_tuple_target)")
