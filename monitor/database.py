"""Engine, transactions and schema version: the database's one front door.

SQLite sits beside a CLI that writes while the daemon writes, so the connect hook sets WAL,
a busy timeout, `synchronous=NORMAL` and foreign keys, and takes transaction control away from
the sqlite3 driver: a writer says so up front and gets `BEGIN IMMEDIATE` (a deferred
transaction that reads and then writes fails with SQLITE_BUSY at once in WAL mode, whatever the
busy timeout). Everything SQLite-specific lives in `_sqlite_hooks`; the rest is portable.
PostgreSQL (`postgresql+psycopg://`, the `postgresql` extra) needs no hook; what is its own
(the advisory lock that serialises migrations of instances starting together, the driver's
absence) is in `monitor.postgresql`.

Failures are translated once, in `transaction`: a failure of the storage (disk full, read-only
file system, I/O error, locked) is a `StoreUnavailable`, which the daemon rides out; a read-only
file system is named as such, since SQLite only says "unable to open database file". An empty
(0-byte) file where the database should be is refused: SQLite would take it for a new, empty
database and the history it once held would silently start over.

The schema comes only from the Alembic migrations. `SCHEMA_REVISIONS` lists them so that
commands can compare versions without importing Alembic (a test keeps the two in step).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

import monitor
from monitor.errors import (
    EmptyDatabaseFile,
    NotJtmDatabase,
    ReadOnlyStorage,
    ReadOnlyUnavailable,
    StoreError,
    StoreUnavailable,
)
from monitor.postgresql import is_postgresql, migration_lock, require_driver
from monitor.sqlite_path import database_name, sqlite_file

SCHEMA_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]
BUSY_TIMEOUT_MS = 30_000

SchemaPolicy = Literal["create", "upgrade"]

_STORAGE_ERRORS = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""SQLite's primary result codes that say the storage failed, not the statement or the data."""


def migrations_path() -> Path:
    """The Alembic script folder: inside the installed package, or the repository's."""
    package = Path(monitor.__file__).resolve().parent
    bundled = package / "_migrations"
    return bundled if bundled.is_dir() else package.parent / "migrations"


def describe_url(url: str) -> str:
    """The database URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def read_only_filesystem(path: Path, error: OSError | None = None) -> bool:
    """True if `error` is EROFS, or if the file system holding `path` (or, while `path` does
    not exist, its nearest existing folder) is mounted read-only (`statvfs`'s ST_RDONLY)."""
    if error is not None and error.errno == errno.EROFS:
        return True
    for candidate in (path, *path.parents):
        try:
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False


def storage_failed(exc: DBAPIError) -> bool:
    """True if `exc` is a failure of the storage (see `StoreUnavailable`), not of the data."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _STORAGE_ERRORS
    return isinstance(exc, OperationalError)


def _read_only_text(path: Path) -> str:
    folder = next((p for p in path.parents if p.exists()), path.parent)
    return f"the file system holding {folder} is mounted read-only"


def _denied_text(path: Path) -> str | None:
    """Why this user may not use the database's folder, naming who may; None when the folder
    is not the obstacle.

    The service's state directory is its user's and its group's only (2770): an operator
    outside the group cannot even see whether the database is there.
    """
    folder = path.parent
    try:
        st = folder.stat()
    except OSError:
        return None
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    owner, group = _user_name(st.st_uid), _group_name(st.st_gid)
    mode = st.st_mode & 0o7777
    text = f"permission denied on {folder} (owner {owner}, group {group}, mode {mode:o})"
    if st.st_mode & 0o070 == 0o070:
        return f"{text}: join the group {group} (then log in again) to use this database"
    return text


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


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
    """Create a new, empty database file whose mode follows the umask, as any new file's does.

    SQLite itself creates a database 0644 (less the umask), so no umask can make it group-
    writable; its -wal and -shm files then copy the database's mode. Under systemd the unit's
    `UMask=0007` thus gives 0660 to all three, and operators in the service's group can use
    the live database with the CLI (even a reader needs to write the -shm file).

    The file is set up beside its place (switched to WAL, which writes SQLite's header) and
    linked into place only then, so no other process ever finds it empty: an empty file at
    the database's path means something went wrong (`_refuse_empty`).
    """
    if path.exists():
        return
    scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
    os.close(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666))
    try:
        conn = sqlite3.connect(scratch)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        with suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _is_read_only(path: Path, exc: Exception) -> bool:
    return read_only_filesystem(path, exc if isinstance(exc, OSError) else None)


def _refuse_empty(path: Path, url: str) -> None:
    """Refuse an empty (0-byte) file at the database's path, leaving it untouched.

    Every database jtm creates has SQLite's header from its first moment, so an empty file
    is a truncated or misplaced one (a failed restore, a `> monitor.db`), not a new database.
    """
    try:
        empty = path.stat().st_size == 0
        wal = path.with_name(path.name + "-wal")
        empty = empty and (not wal.exists() or wal.stat().st_size == 0)
    except OSError:
        return  # not there, or not ours to look at: SQLite reports what is wrong
    if empty:
        raise EmptyDatabaseFile(
            f"database {describe_url(url)} is an empty file (0 bytes), not a jtm database: "
            "restore it from a backup, or run `jtm db upgrade` to start a new one there"
        )


def create_db_engine(url: str, *, adopt_empty: bool = False) -> Engine:
    """An engine for `url`; for a SQLite file, its folder (and the file) are created if missing.

    An empty (0-byte) file at a SQLite database's path is refused, untouched, unless
    `adopt_empty` (`jtm db upgrade`, the operator's explicit word) makes a database of it.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError, or ValueError for some inputs
        raise StoreError(f"database.url is not a valid SQLAlchemy URL: {exc}") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if (name := database_name(parsed)) is not None:
        path = Path(name).expanduser()
        plain = sqlite_file(parsed)
        if plain is not None:  # the file SQLite will open: it resolves symbolic links itself
            plain = Path(os.path.realpath(plain))
        if plain is not None and not adopt_empty:
            _refuse_empty(plain, url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if plain is not None:
                _create_sqlite_file(plain)
        except (OSError, sqlite3.Error) as exc:
            if _is_read_only(path, exc):
                message = f"cannot create {describe_url(url)}: {_read_only_text(path)}"
                raise ReadOnlyStorage(message) from None
            if isinstance(exc, PermissionError) and (denied := _denied_text(plain or path)):
                raise StoreError(f"cannot use {describe_url(url)}: {denied}") from None
            raise StoreError(f"cannot create {describe_url(url)}: {exc}") from None
    if is_postgresql(parsed):
        require_driver(parsed)
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
        where = describe_url(str(engine.url))
        if not storage_failed(exc):
            raise StoreError(f"database {where}: {reason}") from None
        path = sqlite_file(engine.url)
        if path is not None and read_only_filesystem(path):
            message = f"database {where}: {_read_only_text(path)} ({reason})"
            raise ReadOnlyUnavailable(message) from None
        raise StoreUnavailable(f"database {where}: {reason}") from None


def current_revision(conn: Connection) -> str | None:
    """The schema revision stamped in the database; None for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise NotJtmDatabase(
                "the database has tables but no schema version: not a jtm database"
            )
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def migrate(engine: Engine, target: str = "head") -> None:
    """Run the Alembic migrations up to `target`, in one write transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    with transaction(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":
            migration_lock(conn)  # instances starting together migrate one after the other
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
