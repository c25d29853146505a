"""catching up: an index for "publications changed since"; publication.state wide enough for
"withdrawal_queued" (17 characters: PostgreSQL refused it, SQLite does not check)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:50:00
"""

from __future__ import annotations

import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=32), existing_nullable=False)
    # A worker that keeps its cross-over index between passes reads only the publications
    # changed since its last look (crossovers.CrossoverIndex.catch_up).
    op.create_index('ix_publication_updated_at', 'publication', ['updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_publication_updated_at', table_name='publication')
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=16), existing_nullable=False)
