"""Suggestions: the review queue's totals (how many, and the expected profit change) from indexes.

Every Review page, and every /api/v1/suggestions list that asks for totals, counts the filtered
set and sums its expected profit change per currency. Neither column of the sum was in an index,
so the sum read every pending suggestion's whole row, details JSON included: 295 ms of CPU on
SQLite at 172,505 pending suggestions, on every page.

- ix_suggestions_review_cover gains currency and expected_profit_change at its end, so that a
  filtered count or sum that joins the products (tag, text) looks each product's suggestion up in
  the index alone (PostgreSQL: an index-only scan instead of a heap fetch per product).
- ix_suggestions_review_profit (status, expected_profit_change, currency) holds just the rows with a
  figure in one range, so the sum reads those and no others.

Revision ID: 0011_review_totals
Revises: 0010_profit
"""

from __future__ import annotations

from alembic import op

revision = "0011_review_totals"
down_revision = "0010_profit"
branch_labels = None
depends_on = None

COVER = ["status", "product_id", "current_price", "suggested_price", "strategy"]


def upgrade() -> None:
    op.drop_index("ix_suggestions_review_cover", table_name="suggestions")
    op.create_index("ix_suggestions_review_cover", "suggestions", [*COVER, "currency", "expected_profit_change"])
    op.create_index("ix_suggestions_review_profit", "suggestions", ["status", "expected_profit_change", "currency"])


def downgrade() -> None:
    op.drop_index("ix_suggestions_review_profit", table_name="suggestions")
    op.drop_index("ix_suggestions_review_cover", table_name="suggestions")
    op.create_index("ix_suggestions_review_cover", "suggestions", COVER)
