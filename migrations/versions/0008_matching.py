"""Matching: discovered competitor pages, match candidates, and our products' MPN and brand.

Revision ID: 0008_matching
Revises: 0004_lease
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0008_matching"
down_revision = "0005_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mpn", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("brand", sa.String(length=200), nullable=True))
    op.create_table(
        "discovered_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("competitor_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("found_via", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("mpn", sa.String(length=100), nullable=True),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("shop_sku", sa.String(length=100), nullable=True),
        sa.Column("price", monitor.store.models.Money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("image_url", sa.String(length=2048), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=True),
        sa.Column("needs_matching", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["competitor_id"],
            ["competitors.id"],
            name=op.f("fk_discovered_pages_competitor_id_competitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovered_pages")),
        sa.UniqueConstraint("competitor_id", "url", name=op.f("uq_discovered_pages_competitor_id")),
    )
    op.create_index("ix_discovered_pages_gtin", "discovered_pages", ["gtin"], unique=False)
    op.create_table(
        "match_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("competitor_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("why", sa.JSON(), nullable=False),
        sa.Column("rematch", sa.String(length=500), nullable=True),
        sa.Column("created_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["page_id"], ["discovered_pages.id"], name=op.f("fk_match_candidates_page_id_discovered_pages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_match_candidates_product_id_products"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["competitor_id"], ["competitors.id"], name=op.f("fk_match_candidates_competitor_id_competitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_candidates")),
        sa.UniqueConstraint("page_id", "product_id", name=op.f("uq_match_candidates_page_id")),
    )
    op.create_index("ix_match_candidates_status", "match_candidates", ["status", "competitor_id"], unique=False)
    op.create_index("ix_match_candidates_product", "match_candidates", ["product_id", "competitor_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_match_candidates_product", table_name="match_candidates")
    op.drop_index("ix_match_candidates_status", table_name="match_candidates")
    op.drop_table("match_candidates")
    op.drop_index("ix_discovered_pages_gtin", table_name="discovered_pages")
    op.drop_table("discovered_pages")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("brand")
        batch_op.drop_column("mpn")
