"""workflows.trace_context (the run's W3C traceparent, journaled at its first start) and
llm_calls.prompt / llm_calls.reply (stored only with observability.capture_content)

Revision ID: 0004_trace
Revises: 0003_waiting
Create Date: 2026-11-27 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_trace"
down_revision = "0003_waiting"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_context", sa.String(length=64), nullable=True))
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reply", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.drop_column("reply")
        batch_op.drop_column("prompt")
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("trace_context")
