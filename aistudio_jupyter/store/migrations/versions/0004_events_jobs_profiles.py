"""events, job supervision and dataset profiles

- event_topics + events: the per-topic seq counter and the event history a WebSocket client
  replays from with ``since`` (DESIGN §7);
- jobs: progress, result, GPU assignment, the supervisor's lease with its fencing token, and
  cancel/heartbeat times (DESIGN §8);
- validation_reports: summary and error;
- dataset_profiles: one cached profile per (immutable) dataset version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'event_topics',
        sa.Column('topic', sa.String(length=160), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('topic', name=op.f('pk_event_topics')),
    )
    op.create_table(
        'events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('topic', sa.String(length=160), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('data', JSON, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
        sa.UniqueConstraint('topic', 'seq', name=op.f('uq_events_topic_seq')),
    )
    op.create_index(op.f('ix_events_created_at'), 'events', ['created_at'], unique=False)
    op.create_table(
        'dataset_profiles',
        sa.Column('version_id', sa.String(length=40), nullable=False),
        sa.Column('profile', JSON, nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], name=op.f('fk_dataset_profiles_version_id_dataset_versions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('version_id', name=op.f('pk_dataset_profiles')),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('result', JSON, nullable=True))
        batch_op.add_column(sa.Column('gpu_ids', JSON, nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', TS, nullable=True))
        batch_op.add_column(sa.Column('fencing_token', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('cancel_requested_at', TS, nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', TS, nullable=True))
    with op.batch_alter_table('validation_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summary', JSON, nullable=True))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('validation_reports', schema=None) as batch_op:
        batch_op.drop_column('error')
        batch_op.drop_column('summary')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for column in ('heartbeat_at', 'cancel_requested_at', 'fencing_token', 'lease_expires_at', 'lease_owner', 'host', 'gpu_ids', 'result', 'progress'):
            batch_op.drop_column(column)
    op.drop_table('dataset_profiles')
    op.drop_index(op.f('ix_events_created_at'), table_name='events')
    op.drop_table('events')
    op.drop_table('event_topics')
