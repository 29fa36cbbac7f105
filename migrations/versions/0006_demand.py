"""Our own sales and traffic per product and day, and the fitted demand models.

`sales_days` and `traffic_days` hold one row per (product, date), so re-importing a file
updates in place; `demand_estimates` holds each product's latest fit.

Revision ID: 0006_demand
Revises: 0005_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0006_demand"
down_revision = "0005_tokens"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = monitor.store.models.Money(precision=14, scale=4)


def upgrade() -> None:
    op.create_table(
        "sales_days",
        sa.Column("id", BigId, nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("revenue", Money, nullable=False),
        sa.Column("price", Money, nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_sales_days_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_days")),
        sa.UniqueConstraint("product_id", "date", name=op.f("uq_sales_days_product_id")),
    )
    op.create_table(
        "traffic_days",
        sa.Column("id", BigId, nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_traffic_days_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traffic_days")),
        sa.UniqueConstraint("product_id", "date", name=op.f("uq_traffic_days_product_id")),
    )
    op.create_table(
        "demand_estimates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("elasticity", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("cross_elasticity", sa.Float(), nullable=True),
        sa.Column("conversion_rate", sa.Float(), nullable=True),
        sa.Column("conversion_elasticity", sa.Float(), nullable=True),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("base_units", sa.Float(), nullable=True),
        sa.Column("ref_price", Money, nullable=True),
        sa.Column("ref_index", sa.Float(), nullable=True),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("fitted_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_demand_estimates_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand_estimates")),
        sa.UniqueConstraint("product_id", name=op.f("uq_demand_estimates_product_id")),
    )


def downgrade() -> None:
    op.drop_table("demand_estimates")
    op.drop_table("traffic_days")
    op.drop_table("sales_days")
