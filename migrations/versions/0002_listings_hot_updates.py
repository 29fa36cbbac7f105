"""Listings: no index on a column every check writes, and room for in-place updates.

Every check of a listing updates its row. While `next_check_at` was indexed (ix_listings_due),
each of those updates added an entry to all four indexes of the table on PostgreSQL; now the
due-check query reads one competitor's listings through ix_listings_competitor_id and filters,
the redundant ix_listings_product_id (covered by the unique (product_id, competitor_id)) is
gone, and a fillfactor leaves room in each page so updates can stay in place (HOT).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FILLFACTOR = 85


def upgrade() -> None:
    op.drop_index("ix_listings_due", table_name="listings")
    op.drop_index("ix_listings_product_id", table_name="listings")
    op.create_index("ix_listings_competitor_id", "listings", ["competitor_id"])
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; existing rows move as they are updated.
        op.execute(f"ALTER TABLE listings SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE listings RESET (fillfactor)")
    op.drop_index("ix_listings_competitor_id", table_name="listings")
    op.create_index("ix_listings_product_id", "listings", ["product_id"])
    op.create_index("ix_listings_due", "listings", ["competitor_id", "next_check_at"])
