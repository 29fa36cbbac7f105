"""Engines, sessions and schema migrations: the only code that opens database connections."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import DatabaseError
from monitor.settings import redact_url

logger = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the report and `pricemon status` read while a sweep writes; the busy timeout
    # turns short lock waits into waits instead of errors.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite's pragmas set on every connection."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise DatabaseError(f"invalid database URL {redact_url(url)!r}: {error}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise DatabaseError(f"database folder {folder} does not exist (database URL {url!r})")
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise DatabaseError(f"cannot use database URL {redact_url(url)!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> Config:
    """Alembic's config pointing at the bundled `migrations` package and at `engine`."""
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` through the Alembic migrations."""
    logger.info("migrating %s to %s", redact_url(str(engine.url)), revision)
    command.upgrade(alembic_config(engine), revision)


def downgrade_to_base(engine: Engine) -> None:
    """Undo every migration (tests and `pricemon db downgrade` only)."""
    command.downgrade(alembic_config(engine), "base")


class Store:
    """A database: its engine and the factory of its sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool | None = None) -> Store:
    """Open the database at `url`, checking that its schema is pricemon's current one.

    `migrate=None` (the default) upgrades an SQLite database by itself, so a fresh SQLite file
    just works; other databases must be upgraded explicitly with `pricemon db upgrade`.
    """
    engine = make_engine(url)
    shown = redact_url(url)
    try:
        current = current_revision(engine)
        head = head_revision()
        if current != head:
            if migrate or (migrate is None and engine.dialect.name == "sqlite"):
                if current is None and _has_foreign_tables(engine):
                    raise DatabaseError(
                        f"{shown}: the database has tables but no pricemon schema version; "
                        "point pricemon at an empty database"
                    )
                upgrade(engine)
            elif current is None:
                raise DatabaseError(f"{shown}: no pricemon schema here yet; run `pricemon db upgrade`")
            else:
                raise DatabaseError(
                    f"{shown}: schema is at revision {current}, this pricemon needs {head}; run `pricemon db upgrade`"
                )
    except exc.OperationalError as error:
        engine.dispose()
        raise DatabaseError(f"cannot open database {shown}: {error.orig}") from None
    except exc.DatabaseError as error:
        engine.dispose()
        raise DatabaseError(f"{shown}: not a usable database: {error.orig}") from None
    return Store(engine)


def _has_foreign_tables(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return bool(names - {"alembic_version"})
