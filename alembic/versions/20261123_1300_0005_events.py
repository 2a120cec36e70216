"""events, webhook subscriptions and deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:00:00
"""
from alembic import op
import sqlalchemy as sa
import paddles.models.base
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = paddles.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', EVENT_ID, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('time', TIME, nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=True),
    sa.Column('run_name', sa.String(length=512), nullable=True),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('data', JSON, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_events_run_name_id', 'events', ['run_name', 'id'], unique=False)
    op.create_index('ix_events_time', 'events', ['time'], unique=False)

    op.create_table('subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('types', JSON, nullable=False),
    sa.Column('criteria', JSON, nullable=False),
    sa.Column('verbosity', sa.Enum('quiet', 'status', 'verbose', name='verbosity', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('compare', sa.Boolean(), nullable=False),
    sa.Column('secret', sa.String(length=256), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created', TIME, nullable=False),
    sa.Column('updated', TIME, nullable=False),
    sa.Column('last_event_id', EVENT_ID, nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('failing_since', TIME, nullable=True),
    sa.Column('last_success', TIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    op.create_table('deliveries',
    sa.Column('id', EVENT_ID, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('event_id', EVENT_ID, nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivered', 'failed', name='delivery_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created', TIME, nullable=False),
    sa.Column('next_attempt', TIME, nullable=True),
    sa.Column('last_attempt', TIME, nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('delivered', TIME, nullable=True),
    sa.Column('log', JSON, nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_deliveries_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_deliveries_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('subscription_id', 'event_id', name=op.f('uq_deliveries_subscription_id_event_id')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_deliveries_event_id', 'deliveries', ['event_id'], unique=False)
    op.create_index('ix_deliveries_status_next_attempt', 'deliveries', ['status', 'next_attempt'], unique=False)


def downgrade() -> None:
    op.drop_table('deliveries')
    op.drop_table('subscriptions')
    op.drop_table('events')
