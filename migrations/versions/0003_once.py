"""Exactly once: when an import last set a product's price, and when a feed send claimed a change.

`products.price_imported_at` lets a re-import tell a price pricemon applied since the file was
last imported (kept, unless `--overwrite-prices`) from one the file may change.
`price_changes.feed_claimed_at` is when a feed send took a change to deliver it (state
"sending"), so two sends at once never post the same change, and a claim left by a process
that died is taken again after a while.

Revision ID: 0003_once
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0003_once"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("price_imported_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("price_changes") as batch:
        batch.add_column(sa.Column("feed_claimed_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("price_changes") as batch:
        batch.drop_column("feed_claimed_at")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("price_imported_at")
