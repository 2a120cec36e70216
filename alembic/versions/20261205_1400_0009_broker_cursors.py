"""broker_cursors: each message broker's place in the event outbox (PADDLES_EVENT_BROKERS)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:00:00
"""
from alembic import op
import sqlalchemy as sa
import paddles.models.base

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIME = paddles.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('broker_cursors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('last_event_id', EVENT_ID, nullable=False),
    sa.Column('published', sa.BigInteger(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('failures_total', sa.BigInteger(), nullable=False),
    sa.Column('failing_since', TIME, nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_success', TIME, nullable=True),
    sa.Column('next_attempt', TIME, nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=True),
    sa.Column('created', TIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broker_cursors')),
    sa.UniqueConstraint('name', name=op.f('uq_broker_cursors_name'))
    )


def downgrade() -> None:
    op.drop_table('broker_cursors')
