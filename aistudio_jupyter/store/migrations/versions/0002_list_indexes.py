"""list indexes: each visibility branch of a list walks an index in (created_at, id) order

The list query runs one keyset-ordered branch per way of seeing a row (own, public, each
team's) and merges them; (visibility, created_at, id) serves the public branch and
(visibility, team, created_at, id) the team branches, replacing (visibility, team), which
is its prefix.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLES = ('agents', 'datasets', 'jobs', 'models', 'agent_runs', 'deployments', 'validation_reports')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_visibility_created', ['visibility', 'created_at', 'id'], unique=False)
            batch_op.create_index(f'ix_{table}_visibility_team_created', ['visibility', 'team', 'created_at', 'id'], unique=False)
            batch_op.drop_index(f'ix_{table}_visibility_team')


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_visibility_team', ['visibility', 'team'], unique=False)
            batch_op.drop_index(f'ix_{table}_visibility_team_created')
            batch_op.drop_index(f'ix_{table}_visibility_created')
