"""Sweep leases: which run sweeps each competitor now, and until when its claim holds.

One row per competitor being swept (or swept by a process that died, until its lease expires
or is taken over). `scrape_runs.holder` says which process a run belongs to, so a run left
`running` by a dead process can be told from a live one.

Revision ID: 0004_lease
Revises: 0003_once
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0004_lease"
down_revision = "0003_once"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep_leases",
        sa.Column("competitor", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("competitor", name=op.f("pk_sweep_leases")),
    )
    with op.batch_alter_table("scrape_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scrape_runs", schema=None) as batch_op:
        batch_op.drop_column("holder")
    op.drop_table("sweep_leases")
