"""runs.has_queued: the queue's index on a column job writes leave alone

ix_runs_queued_scheduled was partial on `count_queued > 0`: every job write that moved
count_queued changed a column an index names, so PostgreSQL could never update the run's
row in place (HOT) and added an entry to each of the runs table's ten indexes instead. The
index is now partial on has_queued, a column the database computes from count_queued, which
changes only when the run's first job is queued or its last one leaves the queue.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 20:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _has_queued(stored: bool) -> sa.Column:
    # PostgreSQL (before 18) stores a generated column; SQLite can only add a virtual one
    # to an existing table, computed when read (its index stores the value).
    return sa.Column('has_queued', sa.Boolean(),
                     sa.Computed('count_queued > 0', persisted=stored), nullable=True)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Adding a stored generated column rewrites the table under an exclusive lock: the
        # runs table is small (one row per run); the index is built without blocking writes.
        op.add_column('runs', _has_queued(stored=True))
        with op.get_context().autocommit_block():
            op.create_index("ix_runs_has_queued_scheduled", "runs", ["scheduled"],
                            postgresql_concurrently=True,
                            postgresql_where=sa.text("has_queued"))
            op.drop_index("ix_runs_queued_scheduled", table_name="runs",
                          postgresql_concurrently=True)
    else:
        op.add_column('runs', _has_queued(stored=False))
        op.create_index("ix_runs_has_queued_scheduled", "runs", ["scheduled"],
                        sqlite_where=sa.text("has_queued = 1"))
        op.drop_index("ix_runs_queued_scheduled", table_name="runs")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_index("ix_runs_queued_scheduled", "runs", ["scheduled"],
                    **{("postgresql_where" if postgresql else "sqlite_where"):
                       sa.text("count_queued > 0")})
    op.drop_index("ix_runs_has_queued_scheduled", table_name="runs")
    op.drop_column('runs', 'has_queued')
