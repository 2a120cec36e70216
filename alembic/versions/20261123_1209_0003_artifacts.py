"""artifacts: blobs, artifacts, test cases and dstat timelines

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:09:52.012146
"""
from alembic import op
import sqlalchemy as sa
import paddles.models.base
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created', paddles.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('content_encoding', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.Enum('subunit', 'junit', 'dstat', 'log', 'binary', name='artifact_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('created', paddles.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('parse_status', sa.Enum('ok', 'error', name='artifact_parse_status', native_enum=False, create_constraint=True, length=16), nullable=True),
    sa.Column('parse_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_artifacts_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_artifacts_run_id_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sha256'], ['blobs.sha256'], name=op.f('fk_artifacts_sha256_blobs'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifacts'))
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index('ix_artifacts_created', ['created'], unique=False)
        batch_op.create_index('ix_artifacts_sha256', ['sha256'], unique=False)
        batch_op.create_index('uq_artifacts_job_id_name', ['job_id', 'name'], unique=True, postgresql_where=sa.text('job_id IS NOT NULL'), sqlite_where=sa.text('job_id IS NOT NULL'))
        batch_op.create_index('uq_artifacts_run_id_name', ['run_id', 'name'], unique=True, postgresql_where=sa.text('job_id IS NULL'), sqlite_where=sa.text('job_id IS NULL'))

    op.create_table('test_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('artifact_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('test_id', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('pass', 'fail', 'skip', 'error', 'xfail', 'uxsuccess', name='test_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('start', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stop', paddles.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('worker', sa.String(length=64), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], name=op.f('fk_test_cases_artifact_id_artifacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_test_cases_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_test_cases_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_cases'))
    )
    with op.batch_alter_table('test_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_test_cases_artifact_id'), ['artifact_id'], unique=False)
        batch_op.create_index('ix_test_cases_job_id_status', ['job_id', 'status'], unique=False)
        batch_op.create_index('ix_test_cases_run_id_status', ['run_id', 'status'], unique=False)

    op.create_table('timelines',
    sa.Column('artifact_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rows', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], name=op.f('fk_timelines_artifact_id_artifacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_timelines_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_timelines_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('artifact_id', name=op.f('pk_timelines'))
    )
    with op.batch_alter_table('timelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timelines_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('timelines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timelines_job_id'))

    op.drop_table('timelines')
    with op.batch_alter_table('test_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_test_cases_run_id_status')
        batch_op.drop_index('ix_test_cases_job_id_status')
        batch_op.drop_index(batch_op.f('ix_test_cases_artifact_id'))

    op.drop_table('test_cases')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index('uq_artifacts_run_id_name', postgresql_where=sa.text('job_id IS NULL'), sqlite_where=sa.text('job_id IS NULL'))
        batch_op.drop_index('uq_artifacts_job_id_name', postgresql_where=sa.text('job_id IS NOT NULL'), sqlite_where=sa.text('job_id IS NOT NULL'))
        batch_op.drop_index('ix_artifacts_sha256')
        batch_op.drop_index('ix_artifacts_created')

    op.drop_table('artifacts')
    op.drop_table('blobs')
