"""Suggestions: indexes for the review queue (its default order, its totals and its filter choices).

The Review page and /api/v1/suggestions open on the pending suggestions sorted by the size of the
change. Without an index that is a sort of every pending row for each page (172,800 of them: 80 ms
of CPU on SQLite, more under load); with it, a page reads its 50 index entries. The expression is
exactly `monitor.store.models.suggestion_change_size()`, which both backends need to match it to a query.

Each page also shows how many rows its filters select and which strategies have rows: without
ix_suggestions_review_cover both read every pending suggestion's whole row (reason and details
included: 2.9 s of wall time for `SELECT DISTINCT strategy` at 172,800 on a busy machine); with it
SQLite answers them from the index alone.

Revision ID: 0009_review_idx
Revises: 0008_matching
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_review_idx"
down_revision = "0008_matching"
branch_labels = None
depends_on = None

CHANGE_SIZE = "abs((CAST(suggested_price AS FLOAT) - CAST(current_price AS FLOAT)) / CAST(current_price AS FLOAT))"


def upgrade() -> None:
    op.create_index("ix_suggestions_review_change", "suggestions", ["status", sa.text(CHANGE_SIZE), "id"])
    op.create_index(
        "ix_suggestions_review_cover",
        "suggestions",
        ["status", "product_id", "current_price", "suggested_price", "strategy"],
    )


def downgrade() -> None:
    op.drop_index("ix_suggestions_review_cover", table_name="suggestions")
    # IF EXISTS: on SQLite a later downgrade that rebuilt the table (0010_profit's drop_column in
    # batch mode) cannot carry this expression index over, so it may be gone already.
    op.execute("DROP INDEX IF EXISTS ix_suggestions_review_change")
