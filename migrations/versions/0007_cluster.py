"""Cluster sweeps: the chunks a sweep was cut into and their state, the workers seen, and each
listing's latest run (so a chunk run again after its worker died skips what it stored).

Revision ID: 0007_cluster
Revises: 0006_demand
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import monitor.store.models

revision = "0007_cluster"
down_revision = "0006_demand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("competitor", sa.String(length=100), nullable=False),
        sa.Column("listing_ids", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("queued_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", monitor.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scrape_runs.id"], name=op.f("fk_cluster_chunks_run_id_scrape_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_chunks")),
    )
    op.create_index("ix_cluster_chunks_run_state", "cluster_chunks", ["run_id", "state"], unique=False)
    op.create_index(op.f("ix_cluster_chunks_state"), "cluster_chunks", ["state"], unique=False)
    op.create_table(
        "cluster_workers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", monitor.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("chunks_failed", sa.Integer(), nullable=False),
        sa.Column("listings_checked", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_workers")),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_column("last_run_id")
    op.drop_table("cluster_workers")
    op.drop_index(op.f("ix_cluster_chunks_state"), table_name="cluster_chunks")
    op.drop_index("ix_cluster_chunks_run_state", table_name="cluster_chunks")
    op.drop_table("cluster_chunks")
