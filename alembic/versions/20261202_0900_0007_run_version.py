"""runs.version (response cache and ETags); jobs(run_id, sort_key) covering on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COVERED = ["sha1", "flavor", "priority"]


def upgrade() -> None:
    # a constant default: no table rewrite on PostgreSQL 11+, instant on a large runs table
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="0",
                                   nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index("ix_jobs_run_id_sort_key_covering", "jobs", ["run_id", "sort_key"],
                            postgresql_include=COVERED, postgresql_concurrently=True)
            op.drop_index("ix_jobs_run_id_sort_key", table_name="jobs",
                          postgresql_concurrently=True)
            op.execute("ALTER INDEX ix_jobs_run_id_sort_key_covering "
                       "RENAME TO ix_jobs_run_id_sort_key")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_jobs_run_id_sort_key", table_name="jobs")
        op.create_index("ix_jobs_run_id_sort_key", "jobs", ["run_id", "sort_key"])
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("version")
