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
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import DatabaseError, DatabaseUnavailableError
from monitor.settings import redact_url

logger = logging.getLogger(__name__)


#: how long an SQLite statement waits for another process's lock, unless the URL says `?timeout=S`
SQLITE_BUSY_SECONDS = 30.0


def _sqlite_pragmas(busy_seconds: float) -> Any:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the report and `pricemon status` read while a sweep writes; the busy timeout
        # turns short lock waits into waits instead of errors.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.close()

    return set_pragmas


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
        try:
            busy = float(parsed.query.get("timeout", SQLITE_BUSY_SECONDS))  # type: ignore[arg-type]
        except ValueError:
            raise DatabaseError(f"database URL {redact_url(url)!r}: timeout must be a number of seconds") from None
        event.listen(engine, "connect", _sqlite_pragmas(busy))
    return engine


def alembic_config(engine: Engine) -> Config:
    """Alembic's config pointing at the bundled `migrations` package and at `engine`."""
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.attributes["engine"] = engine
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))


def head_revision() -> str | None:
    return _scripts().get_current_head()


def check_known_revision(revision: str | None, shown: str) -> None:
    """Refuse a schema at a revision this pricemon has no migration for (a newer pricemon's)."""
    if revision is None:
        return
    try:
        known = _scripts().get_revision(revision) is not None
    except AlembicCommandError:
        known = False
    if not known:
        raise DatabaseError(
            f"{shown}: the schema is at revision {revision!r}, which this pricemon does not know (it needs "
            f"{head_revision()}); a newer pricemon probably migrated it: use that one, or restore a backup"
        )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` through the Alembic migrations."""
    shown = redact_url(str(engine.url))
    check_known_revision(current_revision(engine), shown)
    logger.info("migrating %s to %s", shown, revision)
    try:
        command.upgrade(alembic_config(engine), revision)
    except AlembicCommandError as error:  # e.g. an unknown target revision
        raise DatabaseError(f"{shown}: cannot migrate to {revision!r}: {error}") from None


def downgrade_to_base(engine: Engine) -> None:
    """Undo every migration (tests and `pricemon db downgrade` only)."""
    command.downgrade(alembic_config(engine), "base")


def begin_write(session: Session) -> None:
    """On SQLite, take the database's write lock now (BEGIN IMMEDIATE), unless this transaction
    already writes; elsewhere nothing (server databases lock rows instead).

    pysqlite opens a transaction only at the first INSERT/UPDATE/DELETE, so without this what a
    session reads before writing may be changed by another process before the write. The lock
    waits for other writers like any write does (busy_timeout).
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.dbapi_connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, outside a transaction: each statement sees what is committed
        when it runs (what PostgreSQL's READ COMMITTED gives a transaction anyway), without the
        round trips of BEGIN and COMMIT. For the pages and lists read on every click."""
        with self.autocommit() as connection, Session(bind=connection, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection whose every statement is its own transaction: for one read (or one write)
        on every request, such as a token's lookup, without the round trips of BEGIN and COMMIT."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection

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
        check_known_revision(current, shown)
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
        raise database_error(error, f"cannot open database {shown}") from None
    except exc.DatabaseError as error:
        engine.dispose()
        raise DatabaseError(f"{shown}: not a usable database: {error.orig}") from None
    except DatabaseError:
        engine.dispose()
        raise
    return Store(engine)


# SQLite's messages (it has no error codes in pysqlite 3.11) for what waiting does not change.
_SQLITE_LASTING = ("readonly", "read-only", "unable to open database file", "not a database", "no such table")
# PostgreSQL SQLSTATE classes and codes that waiting does not change: bad password or role,
# no such database, no privilege, read-only transaction (a standby), bad schema objects.
_POSTGRES_LASTING = ("28", "3D", "42", "25006")
_READ_ONLY = ("readonly", "read-only", "25006")


def is_outage(error: BaseException) -> bool:
    """Whether a database error may go away by waiting (server down, restarting, locked, full)
    rather than needing a person (read-only, wrong password, no such database or table)."""
    if isinstance(error, DatabaseUnavailableError | exc.TimeoutError):
        return True
    if not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return not str(sqlstate).startswith(_POSTGRES_LASTING)
    text = str(orig).lower()
    return not any(marker in text for marker in _SQLITE_LASTING)


def database_error(error: exc.SQLAlchemyError, what: str) -> DatabaseError:
    """`what` failed because of `error`: a DatabaseUnavailableError when waiting may help."""
    orig = getattr(error, "orig", None) or error
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if is_outage(error):
        return DatabaseUnavailableError(f"{what}: {detail}")
    lowered = f"{detail} {getattr(orig, 'sqlstate', '') or ''}".lower()
    if any(marker in lowered for marker in _READ_ONLY):
        return DatabaseError(f"{what}: the database is read-only ({detail}); pricemon needs to write to it")
    return DatabaseError(f"{what}: {detail}")


def _has_foreign_tables(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names())
    return bool(names - {"alembic_version"})
