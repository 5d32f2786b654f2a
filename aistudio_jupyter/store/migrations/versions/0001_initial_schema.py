"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
import aistudio_jupyter.store.types
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('tools', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('planner', sa.String(length=32), nullable=False),
    sa.Column('llm', sa.String(length=128), nullable=True),
    sa.Column('limits', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_agents_owner_name'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index('ix_agents_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_agents_name', ['name'], unique=False)
        batch_op.create_index('ix_agents_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_agents_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_api_tokens_owner', ['owner'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.String(length=40), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor_created', ['actor', 'created_at'], unique=False)
        batch_op.create_index('ix_audit_events_resource', ['resource_type', 'resource_id'], unique=False)

    op.create_table('datasets',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_datasets_owner_name'))
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index('ix_datasets_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_datasets_name', ['name'], unique=False)
        batch_op.create_index('ix_datasets_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_datasets_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('jobs',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('resources', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('process_start_time', sa.Float(), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('exit_reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_jobs_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_jobs_owner_state', ['owner', 'state'], unique=False)
        batch_op.create_index('ix_jobs_state_priority', ['state', 'priority', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('models',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('task', sa.String(length=32), nullable=True),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_models_owner_name'))
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index('ix_models_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_models_name', ['name'], unique=False)
        batch_op.create_index('ix_models_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_models_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('uploads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=True),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('target_dataset_id', sa.String(length=40), nullable=True),
    sa.Column('result_version_id', sa.String(length=40), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index('ix_uploads_expires', ['expires_at'], unique=False)
        batch_op.create_index('ix_uploads_owner_created', ['owner', 'created_at'], unique=False)

    op.create_table('usage_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records'))
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_owner_period', ['owner', 'period', 'kind'], unique=False)

    op.create_table('agent_runs',
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('output', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_runs_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_runs'))
    )
    with op.batch_alter_table('agent_runs', schema=None) as batch_op:
        batch_op.create_index('ix_agent_runs_agent', ['agent_id', 'created_at'], unique=False)
        batch_op.create_index('ix_agent_runs_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_agent_runs_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_agent_runs_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('dataset_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('schema', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_dataset_versions_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('dataset_id', 'version', name=op.f('uq_dataset_versions_dataset_id_version'))
    )
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_versions_sha256', ['sha256'], unique=False)

    op.create_table('deployments',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('replicas', sa.Integer(), nullable=False),
    sa.Column('resources', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('batching', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_deployments_model_id_models'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_deployments_owner_name'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployments_model_id'), ['model_id'], unique=False)
        batch_op.create_index('ix_deployments_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_deployments_state', ['state'], unique=False)
        batch_op.create_index('ix_deployments_visibility_team', ['visibility', 'team'], unique=False)

    op.create_table('metric_points',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('wall_time', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_metric_points_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_points'))
    )
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.create_index('ix_metric_points_job_key_step', ['job_id', 'key', 'step'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('artifact_key', sa.String(length=512), nullable=True),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=True),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('lineage', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('dataset_version_id', sa.String(length=40), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_model_versions_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('model_id', 'version', name=op.f('uq_model_versions_model_id_version'))
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_dataset_version_id'), ['dataset_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_versions_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_model_versions_stage', ['model_id', 'stage'], unique=False)

    op.create_table('agent_steps',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['agent_runs.id'], name=op.f('fk_agent_steps_run_id_agent_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_steps')),
    sa.UniqueConstraint('run_id', 'index', name=op.f('uq_agent_steps_run_id_index'))
    )
    op.create_table('dataset_files',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('version_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], name=op.f('fk_dataset_files_version_id_dataset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_files')),
    sa.UniqueConstraint('version_id', 'path', name=op.f('uq_dataset_files_version_id_path'))
    )
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_files_sha256'), ['sha256'], unique=False)

    op.create_table('validation_reports',
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('version_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('rules', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('findings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('created_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aistudio_jupyter.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_validation_reports_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], name=op.f('fk_validation_reports_version_id_dataset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_reports'))
    )
    with op.batch_alter_table('validation_reports', schema=None) as batch_op:
        batch_op.create_index('ix_validation_reports_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_validation_reports_owner_created', ['owner', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_validation_reports_version', ['version_id'], unique=False)
        batch_op.create_index('ix_validation_reports_visibility_team', ['visibility', 'team'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('validation_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_validation_reports_visibility_team')
        batch_op.drop_index('ix_validation_reports_version')
        batch_op.drop_index('ix_validation_reports_owner_created')
        batch_op.drop_index('ix_validation_reports_created')

    op.drop_table('validation_reports')
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_files_sha256'))

    op.drop_table('dataset_files')
    op.drop_table('agent_steps')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_stage')
        batch_op.drop_index(batch_op.f('ix_model_versions_job_id'))
        batch_op.drop_index(batch_op.f('ix_model_versions_dataset_version_id'))

    op.drop_table('model_versions')
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_points_job_key_step')

    op.drop_table('metric_points')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_visibility_team')
        batch_op.drop_index('ix_deployments_state')
        batch_op.drop_index('ix_deployments_owner_created')
        batch_op.drop_index(batch_op.f('ix_deployments_model_id'))
        batch_op.drop_index('ix_deployments_created')

    op.drop_table('deployments')
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_versions_sha256')

    op.drop_table('dataset_versions')
    with op.batch_alter_table('agent_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_runs_visibility_team')
        batch_op.drop_index('ix_agent_runs_owner_created')
        batch_op.drop_index('ix_agent_runs_created')
        batch_op.drop_index('ix_agent_runs_agent')

    op.drop_table('agent_runs')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_owner_period')

    op.drop_table('usage_records')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_uploads_owner_created')
        batch_op.drop_index('ix_uploads_expires')

    op.drop_table('uploads')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index('ix_models_visibility_team')
        batch_op.drop_index('ix_models_owner_created')
        batch_op.drop_index('ix_models_name')
        batch_op.drop_index('ix_models_created')

    op.drop_table('models')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_visibility_team')
        batch_op.drop_index('ix_jobs_state_priority')
        batch_op.drop_index('ix_jobs_owner_state')
        batch_op.drop_index('ix_jobs_owner_created')
        batch_op.drop_index('ix_jobs_created')

    op.drop_table('jobs')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index('ix_datasets_visibility_team')
        batch_op.drop_index('ix_datasets_owner_created')
        batch_op.drop_index('ix_datasets_name')
        batch_op.drop_index('ix_datasets_created')

    op.drop_table('datasets')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_resource')
        batch_op.drop_index('ix_audit_events_actor_created')

    op.drop_table('audit_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_api_tokens_owner')

    op.drop_table('api_tokens')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index('ix_agents_visibility_team')
        batch_op.drop_index('ix_agents_owner_created')
        batch_op.drop_index('ix_agents_name')
        batch_op.drop_index('ix_agents_created')

    op.drop_table('agents')
