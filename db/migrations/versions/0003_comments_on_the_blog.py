"""comments on the blog: where the blog keeps each comment, with bounded retries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:24:12.190901
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remote_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False,
                                      server_default=sa.text('CURRENT_TIMESTAMP')))


def downgrade() -> None:
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('attempts')
        batch_op.drop_column('remote_id')
