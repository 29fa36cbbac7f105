"""PostgreSQL: statistics on the expressions the review queue filters products by.

The Review page's tag filter is `CAST(tags AS VARCHAR) LIKE '%"kitchen"%'` and its text search
`lower(sku|name) LIKE '%cordless%'`. Without statistics on those expressions PostgreSQL guesses that
such a LIKE keeps a handful of the 172,800 products (it estimated 10 rows; 21,600 matched), so it
reads every matching product's suggestion, details included, and sorts them for a page of 50
(~100 ms), instead of walking the queue's order index and stopping after 50 matches (~6 ms).
Extended statistics on the expressions (PostgreSQL 14 and later) give it the real proportions;
autovacuum's ANALYZE keeps them current. SQLite's planner takes the index by itself: nothing to do.

Revision ID: 0012_review_stats
Revises: 0011_review_totals
"""

from __future__ import annotations

from alembic import op

revision = "0012_review_stats"
down_revision = "0011_review_totals"
branch_labels = None
depends_on = None

STATISTICS = {
    "st_products_tags_text": "CAST(tags AS VARCHAR)",
    "st_products_lower_name": "lower(name)",
    "st_products_lower_sku": "lower(sku)",
}


def _supported() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (14,)


def upgrade() -> None:
    if not _supported():
        return
    for name, expression in STATISTICS.items():
        op.execute(f"CREATE STATISTICS IF NOT EXISTS {name} ON ({expression}) FROM products")
    op.execute("ANALYZE products")


def downgrade() -> None:
    if not _supported():
        return
    for name in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
