"""links once a pass: new interviews whose older related pages still await a link to them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Older pages learn of the new interviews related to them once a pass, not once a batch
    # (worker.relink_older_pages); until then each new interview waits here.
    op.create_table('pending_links', sa.Column('number', sa.Integer(), nullable=False), sa.PrimaryKeyConstraint('number'))


def downgrade() -> None:
    op.drop_table('pending_links')
