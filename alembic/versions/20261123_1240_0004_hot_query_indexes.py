"""Indexes for hot queries: sha1 prefix match, runs with queued jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None



def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index("ix_jobs_sha1", table_name="jobs", postgresql_concurrently=True)
            op.create_index("ix_jobs_sha1", "jobs", ["sha1"], postgresql_concurrently=True,
                            postgresql_ops={"sha1": "varchar_pattern_ops"})
            op.create_index("ix_runs_queued_scheduled", "runs", ["scheduled"],
                            postgresql_concurrently=True,
                            postgresql_where=sa.text("count_queued > 0"))
    else:
        op.create_index("ix_runs_queued_scheduled", "runs", ["scheduled"],
                        sqlite_where=sa.text("count_queued > 0"))


def downgrade() -> None:
    op.drop_index("ix_runs_queued_scheduled", table_name="runs")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_jobs_sha1", table_name="jobs")
        op.create_index("ix_jobs_sha1", "jobs", ["sha1"])
