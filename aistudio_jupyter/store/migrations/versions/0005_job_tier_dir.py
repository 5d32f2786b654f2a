"""jobs: the owner's tier at submission and the job's directory

The scheduler's per-user and per-tier limits need the tier a job was submitted under (hub
groups are known only at request time), and a server taking over a job after a restart needs
to find its logs and exit record.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('job_dir', sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('job_dir')
        batch_op.drop_column('tier')
