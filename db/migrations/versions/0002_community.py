"""community: comments, cross-overs, subscriptions, digests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 07:45:00.127563
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('cross_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_number', sa.Integer(), nullable=False),
    sa.Column('to_number', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cross_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cross_link_from_number'), ['from_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_cross_link_to_number'), ['to_number'], unique=False)

    op.create_table('digest_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('digest_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_run_sent_at'), ['sent_at'], unique=False)

    op.create_table('comment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('interview_id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('verified_number', sa.Integer(), nullable=True),
    sa.Column('sender_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_on', sa.Date(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_message.id'], ),
    sa.ForeignKeyConstraint(['interview_id'], ['interview.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('inbound_id')
    )
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_interview_id'), ['interview_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comment_sender_hash'), ['sender_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_comment_state'), ['state'], unique=False)

    op.create_table('subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('interview_id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('pending_json', sa.Text(), nullable=False),
    sa.Column('last_notified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['interview_id'], ['interview.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('interview_id')
    )
    with op.batch_alter_table('interview', schema=None) as batch_op:
        batch_op.add_column(sa.Column('related_json', sa.Text(), nullable=False, server_default='[]'))

    


def downgrade() -> None:
    
    with op.batch_alter_table('interview', schema=None) as batch_op:
        batch_op.drop_column('related_json')

    op.drop_table('subscription')
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_state'))
        batch_op.drop_index(batch_op.f('ix_comment_sender_hash'))
        batch_op.drop_index(batch_op.f('ix_comment_interview_id'))

    op.drop_table('comment')
    with op.batch_alter_table('digest_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_digest_run_sent_at'))

    op.drop_table('digest_run')
    with op.batch_alter_table('cross_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cross_link_to_number'))
        batch_op.drop_index(batch_op.f('ix_cross_link_from_number'))

    op.drop_table('cross_link')
    
