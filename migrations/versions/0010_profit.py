"""Expected profit impact of each suggestion: the change in expected profit per day under the
product's demand model, where one was usable (the rest of the expectation lives in `details`).

A column of its own, so reports can order suggestions by it and add it up in SQL.

Revision ID: 0010_profit
Revises: 0009_review_idx
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0010_profit"
down_revision = "0009_review_idx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expected_profit_change", monitor.store.models.Money(precision=14, scale=4), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        batch_op.drop_column("expected_profit_change")
