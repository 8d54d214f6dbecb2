"""Engine, transactions and schema version: the database's one front door.

SQLite sits beside a CLI that writes while the daemon writes, so the connect hook sets WAL,
a busy timeout, `synchronous=NORMAL` and foreign keys, and takes transaction control away from
the sqlite3 driver: a writer says so up front and gets `BEGIN IMMEDIATE` (a deferred
transaction that reads and then writes fails with SQLITE_BUSY at once in WAL mode, whatever the
busy timeout). Everything SQLite-specific lives in `_sqlite_hooks`; the rest is portable.

The schema comes only from the Alembic migrations. `SCHEMA_REVISIONS` lists them so that
commands can compare versions without importing Alembic (a test keeps the two in step).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import monitor
from monitor.errors import StoreError

SCHEMA_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]
BUSY_TIMEOUT_MS = 30_000

SchemaPolicy = Literal["create", "upgrade"]


def migrations_path() -> Path:
    """The Alembic script folder: inside the installed package, or the repository's."""
    package = Path(monitor.__file__).resolve().parent
    bundled = package / "_migrations"
    return bundled if bundled.is_dir() else package.parent / "migrations"


def describe_url(url: str) -> str:
    """The database URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: `_on_begin` does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("jtm_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _create_sqlite_file(path: Path) -> None:
    """Create an empty database file whose mode follows the umask, as any new file's does.

    SQLite itself creates a database 0644 (less the umask), so no umask can make it group-
    writable; its -wal and -shm files then copy the database's mode. Under systemd the unit's
    `UMask=0007` thus gives 0660 to all three, and operators in the service's group can use
    the live database with the CLI (even a reader needs to write the -shm file). An empty file
    is a valid, empty SQLite database.
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; for a SQLite file, its folder (and the file) are created if missing."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError, or ValueError for some inputs
        raise StoreError(f"database.url is not a valid SQLAlchemy URL: {exc}") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not parsed.database.startswith("file:") and not parsed.query:
                _create_sqlite_file(path)
        except OSError as exc:
            raise StoreError(f"cannot create {describe_url(url)}: {exc}") from None
    try:
        engine = create_engine(parsed, pool_pre_ping=not is_sqlite)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use database {describe_url(url)}: {exc}") from None
    if is_sqlite:
        _sqlite_hooks(engine)
    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """One transaction on its own connection; commits on success, rolls back on error.

    `write=True` takes the write lock up front. Never hold one across a network call.
    Database failures (locked past the busy timeout, unreadable file, ...) become StoreError.
    """
    try:
        with engine.connect() as conn:
            if write:
                conn.execution_options(jtm_write=True)
            with conn.begin():
                yield conn
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreError(f"database {describe_url(str(engine.url))}: {reason}") from None


def current_revision(conn: Connection) -> str | None:
    """The schema revision stamped in the database; None for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError("the database has tables but no schema version: not a jtm database")
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def migrate(engine: Engine, target: str = "head") -> None:
    """Run the Alembic migrations up to `target`, in one write transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    with transaction(engine, write=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, target)


def ensure_schema(engine: Engine, policy: SchemaPolicy) -> str | None:
    """Bring the database to the current schema as `policy` allows; returns the old revision.

    A new, empty database is always created at the current schema. An older one is upgraded
    only under "upgrade" (the daemon, `jtm db upgrade`); other commands ask for the upgrade.
    A database newer than this code is always refused.
    """
    with transaction(engine) as conn:
        revision = current_revision(conn)
    if revision == SCHEMA_HEAD:
        return revision
    where = describe_url(str(engine.url))
    if revision is not None and revision not in SCHEMA_REVISIONS:
        raise StoreError(
            f"database {where} has schema {revision}, newer than this jtm knows "
            f"(up to {SCHEMA_HEAD}): upgrade jira-task-monitor"
        )
    if revision is not None and policy != "upgrade":
        raise StoreError(
            f"database {where} has schema {revision}, this jtm needs {SCHEMA_HEAD}: "
            "run `jtm db upgrade` (the daemon also upgrades at start)"
        )
    migrate(engine)
    return revision


def open_database(url: str, policy: SchemaPolicy = "create") -> Engine:
    """An engine on a database at the current schema (see `ensure_schema`)."""
    engine = create_db_engine(url)
    try:
        ensure_schema(engine, policy)
    except BaseException:
        engine.dispose()
        raise
    return engine
