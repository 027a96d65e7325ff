"""llm_calls.cost_usd: the exact cost of every LLM call

Revision ID: 0002_cost
Revises: 0001
Create Date: 2026-11-27 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ecl.store.models

revision = "0002_cost"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_usd", ecl.store.models.Money(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.drop_column("cost_usd")
