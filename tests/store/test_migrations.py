"""The Alembic migrations are the schema: they must agree with the models, up and down."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from monitor.store.database import current_revision, downgrade_to_base, head_revision, make_engine, upgrade
from monitor.store.models import Base


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration for: {diff}"


def test_downgrade_removes_everything(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade_to_base(engine)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert "price_history" in inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_postgresql_has_statistics_on_the_review_filters_expressions(database_url: str) -> None:
    """Without them PostgreSQL guesses a tag or text filter keeps ~10 products and sorts every match
    for a page of the queue (0012_review_stats); with them it walks the queue's order index."""
    engine = make_engine(database_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("extended statistics are PostgreSQL's (SQLite's planner takes the index by itself)")
    upgrade(engine)
    with engine.connect() as connection:
        names = set(
            connection.exec_driver_sql(
                "SELECT stxname FROM pg_statistic_ext WHERE stxrelid = 'products'::regclass"
            ).scalars()
        )
    engine.dispose()
    assert {"st_products_tags_text", "st_products_lower_name", "st_products_lower_sku"} <= names
