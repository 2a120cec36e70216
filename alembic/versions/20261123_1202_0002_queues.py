"""queues: the queue API's pause state (spec 11)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:02:40.721003
"""
from alembic import op
import sqlalchemy as sa
import paddles.models.base


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queues',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('paused_by', sa.String(length=64), nullable=True),
    sa.Column('paused_since', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_until', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_queues'))
    )


def downgrade() -> None:
    op.drop_table('queues')
