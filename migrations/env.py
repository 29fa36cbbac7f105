"""Alembic environment: runs migrations on the engine pricemon hands over (or on -x url=...)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from monitor.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        x_args = context.get_x_argument(as_dictionary=True)
        url = x_args.get("url") or config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("pass the database with: alembic -x url=sqlite:///pricemon.db ...")
        engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `pricemon db upgrade`")
run_migrations_online()
