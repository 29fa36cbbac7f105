"""API tokens of the web workspace: name, role, the token's SHA-256 (never the token), use and revocation.

Revision ID: 0005_tokens
Revises: 0004_lease
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0005_tokens"
down_revision = "0004_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
