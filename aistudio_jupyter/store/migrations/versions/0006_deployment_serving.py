"""deployments: what the serving supervisor needs

- desired_state: what the owner asked for ("running" | "stopped"); ``state`` is what is;
- replica_status: the replicas as the supervisor last saw them (index, state, pid, restarts,
  model_version, last_error), shown by the API and published as events;
- host, lease_owner, lease_expires_at: the one server that runs the deployment's replicas, so
  that two servers on one PostgreSQL never both do; another takes over once the lease expires.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('desired_state', sa.String(length=16), nullable=False, server_default='running'))
        batch_op.add_column(sa.Column('replica_status', JSON, nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('host')
        batch_op.drop_column('replica_status')
        batch_op.drop_column('desired_state')
