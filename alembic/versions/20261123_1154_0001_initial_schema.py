"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:54:01.444358
"""
from alembic import op
import sqlalchemy as sa
import paddles.models.base
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('up', sa.Boolean(), nullable=True),
    sa.Column('machine_type', sa.String(length=32), nullable=True),
    sa.Column('is_vm', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('vm_host_id', sa.Integer(), nullable=True),
    sa.Column('os_type', sa.String(length=32), nullable=True),
    sa.Column('os_version', sa.String(length=16), nullable=True),
    sa.Column('arch', sa.String(length=16), nullable=True),
    sa.Column('locked', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('locked_since', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('locked_by', sa.String(length=64), nullable=True),
    sa.Column('mac_address', sa.String(length=17), nullable=True),
    sa.Column('ssh_pub_key', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['vm_host_id'], ['nodes.id'], name=op.f('fk_nodes_vm_host_id_nodes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('name', name=op.f('uq_nodes_name'))
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodes_locked'), ['locked'], unique=False)
        batch_op.create_index(batch_op.f('ix_nodes_locked_by'), ['locked_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_nodes_machine_type'), ['machine_type'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('user', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('empty', 'queued', 'running', 'waiting', 'unknown', 'finished pass', 'finished dead', 'finished fail', name='run_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('posted', paddles.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('scheduled', paddles.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('branch', sa.String(length=128), nullable=True),
    sa.Column('suite', sa.String(length=256), nullable=True),
    sa.Column('machine_type', sa.String(length=32), nullable=True),
    sa.Column('count_queued', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_pass', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_running', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_waiting', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_fail', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_dead', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_unknown', sa.Integer(), server_default='0', nullable=False),
    sa.Column('count_total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sha1', sa.String(length=40), nullable=True),
    sa.Column('flavor', sa.String(length=128), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('name', name=op.f('uq_runs_name'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_branch_scheduled', ['branch', 'scheduled'], unique=False)
        batch_op.create_index('ix_runs_machine_type_scheduled', ['machine_type', 'scheduled'], unique=False)
        batch_op.create_index('ix_runs_posted', ['posted'], unique=False)
        batch_op.create_index('ix_runs_scheduled', ['scheduled'], unique=False)
        batch_op.create_index('ix_runs_status_scheduled', ['status', 'scheduled'], unique=False)
        batch_op.create_index('ix_runs_suite_scheduled', ['suite', 'scheduled'], unique=False)
        batch_op.create_index('ix_runs_user_scheduled', ['user', 'scheduled'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('sort_key', sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql'), nullable=False),
    sa.Column('archive_path', sa.String(length=512), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('duration', sa.BigInteger(), nullable=True),
    sa.Column('email', sa.String(length=128), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('flavor', sa.String(length=128), nullable=True),
    sa.Column('kernel', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('last_in_suite', sa.Boolean(), nullable=True),
    sa.Column('machine_type', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=512), nullable=True),
    sa.Column('nuke_on_error', sa.Boolean(), nullable=True),
    sa.Column('os_type', sa.String(length=32), nullable=True),
    sa.Column('os_version', sa.String(length=16), nullable=True),
    sa.Column('overrides', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('pid', sa.String(length=32), nullable=True),
    sa.Column('roles', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('sentry_event', sa.String(length=128), nullable=True),
    sa.Column('status', sa.Enum('pass', 'fail', 'queued', 'running', 'dead', 'unknown', 'waiting', name='job_status', native_enum=False, create_constraint=True, length=16), nullable=True),
    sa.Column('success', sa.Boolean(), nullable=True),
    sa.Column('branch', sa.String(length=128), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('sha1', sa.String(length=40), nullable=True),
    sa.Column('subset', sa.String(length=32), nullable=True),
    sa.Column('suite', sa.String(length=256), nullable=True),
    sa.Column('suite_branch', sa.String(length=128), nullable=True),
    sa.Column('suite_path', sa.String(length=256), nullable=True),
    sa.Column('suite_relpath', sa.String(length=256), nullable=True),
    sa.Column('suite_repo', sa.String(length=256), nullable=True),
    sa.Column('suite_sha1', sa.String(length=40), nullable=True),
    sa.Column('targets', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('tasks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('timestamp', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('teuthology_branch', sa.String(length=64), nullable=True),
    sa.Column('verbose', sa.Boolean(), nullable=True),
    sa.Column('pcp_grafana_url', sa.Text(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('user', sa.String(length=64), nullable=True),
    sa.Column('queue', sa.String(length=32), nullable=True),
    sa.Column('package_source', sa.String(length=32), nullable=True),
    sa.Column('posted', paddles.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_jobs_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('run_id', 'job_id', name=op.f('uq_jobs_run_id_job_id'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_flavor', ['flavor'], unique=False)
        batch_op.create_index('ix_jobs_posted', ['posted'], unique=False)
        batch_op.create_index('ix_jobs_queue_status_priority', ['queue', 'status', 'priority'], unique=False)
        batch_op.create_index('ix_jobs_run_id_posted', ['run_id', 'posted'], unique=False)
        batch_op.create_index('ix_jobs_run_id_sort_key', ['run_id', 'sort_key'], unique=False)
        batch_op.create_index('ix_jobs_sha1', ['sha1'], unique=False)
        batch_op.create_index('ix_jobs_status', ['status'], unique=False)

    op.create_table('job_nodes',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_nodes_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_job_nodes_node_id_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'node_id', name=op.f('pk_job_nodes'))
    )
    with op.batch_alter_table('job_nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_nodes_node_id'), ['node_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job_nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_nodes_node_id'))

    op.drop_table('job_nodes')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status')
        batch_op.drop_index('ix_jobs_sha1')
        batch_op.drop_index('ix_jobs_run_id_sort_key')
        batch_op.drop_index('ix_jobs_run_id_posted')
        batch_op.drop_index('ix_jobs_queue_status_priority')
        batch_op.drop_index('ix_jobs_posted')
        batch_op.drop_index('ix_jobs_flavor')

    op.drop_table('jobs')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_user_scheduled')
        batch_op.drop_index('ix_runs_suite_scheduled')
        batch_op.drop_index('ix_runs_status_scheduled')
        batch_op.drop_index('ix_runs_scheduled')
        batch_op.drop_index('ix_runs_posted')
        batch_op.drop_index('ix_runs_machine_type_scheduled')
        batch_op.drop_index('ix_runs_branch_scheduled')

    op.drop_table('runs')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_machine_type'))
        batch_op.drop_index(batch_op.f('ix_nodes_locked_by'))
        batch_op.drop_index(batch_op.f('ix_nodes_locked'))

    op.drop_table('nodes')
