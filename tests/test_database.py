"""The schema comes from the migrations, and the database is set up for a CLI beside a daemon."""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import DateTime, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from monitor.database import (
    SCHEMA_HEAD,
    SCHEMA_REVISIONS,
    create_db_engine,
    ensure_schema,
    migrate,
    migrations_path,
    open_database,
    transaction,
)
from monitor.errors import EmptyDatabaseFile, NotJtmDatabase, StoreError
from monitor.schema import METADATA, UTCDateTime
from monitor.sqlite_path import database_name, sqlite_file, with_file
from monitor.states import TaskKind
from monitor.store import Registration, Store
from monitor.store.queries import Filters, Queries
from monitor.taskref import TaskRef


def test_tables_and_migrations_agree(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    engine.dispose()
    assert diff == []


def test_revision_list_matches_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    scripts = ScriptDirectory.from_config(config)
    walked = [rev.revision for rev in scripts.walk_revisions("base", "heads")]
    assert tuple(reversed(walked)) == SCHEMA_REVISIONS
    assert scripts.get_current_head() == SCHEMA_HEAD


def test_new_database_is_created_at_head_with_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "monitor.db"
    engine = open_database(f"sqlite:///{path}")
    with transaction(engine) as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        busy_timeout = conn.execute(text("PRAGMA busy_timeout")).scalar()
        assert busy_timeout is not None and busy_timeout >= 1000
    engine.dispose()
    assert path.exists()


def test_a_writer_takes_the_write_lock_up_front(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    other = sqlite3.connect(tmp_path / "monitor.db", timeout=0, isolation_level=None)
    # No statement has run yet in the write transaction, and still nobody else may write.
    with transaction(engine, write=True), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    with transaction(engine):  # a reader does not block writers
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    other.close()
    engine.dispose()


def test_a_newer_database_is_refused(db_url: str) -> None:
    engine = open_database(db_url)
    with transaction(engine, write=True) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this jtm"):
        ensure_schema(engine, "upgrade")
    engine.dispose()


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotJtmDatabase, match="not a jtm database"):
        open_database(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # left untouched
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]


def test_an_empty_file_is_refused_by_its_type(tmp_path: Path) -> None:
    # `jtm check` tells the fix by the error's type, so the type is part of the contract.
    path = tmp_path / "monitor.db"
    path.touch()
    with pytest.raises(EmptyDatabaseFile, match="empty file"):
        create_db_engine(f"sqlite:///{path}")
    assert path.stat().st_size == 0


@pytest.mark.parametrize(
    ("url", "name", "file", "moved"),
    [
        ("sqlite:///rel/a.db", "rel/a.db", "rel/a.db", "sqlite:////base/rel/a.db"),
        ("sqlite+pysqlite:////abs/a.db", "/abs/a.db", "/abs/a.db", None),
        ("sqlite:///a.db?timeout=5", "a.db", None, "sqlite:////base/a.db?timeout=5"),
        ("sqlite:///file:a.db?mode=ro&uri=true", "file:a.db", None, None),
        ("sqlite:///:memory:", None, None, None),
        ("sqlite://", None, None, None),
        ("postgresql://jtm:secret@db/jtm", None, None, None),
    ],
)
def test_the_file_of_a_sqlite_url(
    url: str, name: str | None, file: str | None, moved: str | None
) -> None:
    from sqlalchemy.engine import make_url

    assert database_name(url) == database_name(make_url(url)) == name
    assert sqlite_file(url) == sqlite_file(make_url(url)) == (file and Path(file))
    assert with_file(url, lambda found: Path("/base") / found) == (moved or url)


def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    with pytest.raises(StoreError, match=r"a-directory\.db"):
        open_database(f"sqlite:///{tmp_path / 'a-directory.db'}")


def test_a_password_in_the_url_never_shows(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        open_database("postgresql://jtm:hunter2-secret@127.0.0.1:1/nothing")
    assert "hunter2-secret" not in str(caught.value)


def test_opening_twice_is_harmless(db_url: str) -> None:
    for _ in range(2):
        engine = create_db_engine(db_url)
        assert ensure_schema(engine, "create") in (None, SCHEMA_HEAD)
        engine.dispose()


def test_an_older_database_is_upgraded_only_when_allowed_and_keeps_its_rows(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, SCHEMA_REVISIONS[0])
    with transaction(engine, write=True) as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, state, registered_at, updated_at, polls,"
                " consecutive_errors, not_found_count)"
                " VALUES ('42', 'watching', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 3, 0, 0)"
            )
        )
    with pytest.raises(StoreError, match="jtm db upgrade"):
        ensure_schema(engine, "create")
    assert ensure_schema(engine, "upgrade") == SCHEMA_REVISIONS[0]
    with transaction(engine) as conn:
        row = conn.execute(text("SELECT task_id, polls, cancel_attempts FROM tasks")).one()
        assert tuple(row) == ("42", 3, 0)
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    engine.dispose()


def test_the_task_kind_migration_keeps_every_row_as_kind_task(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, "0005")
    at = "'2026-01-01 00:00:00'"
    with transaction(engine, write=True) as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, state, registered_at, updated_at, polls,"
                " consecutive_errors, not_found_count, status, progress)"
                f" VALUES ('42', 'watching', {at}, {at}, 3, 0, 0, 'RUNNING', 40)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO snapshots (task_id, observed_at, last_seen_at, status, progress)"
                f" VALUES ('42', {at}, {at}, 'RUNNING', 40)"
            )
        )
        conn.execute(
            text(f"INSERT INTO events (task_id, at, kind, detail) VALUES ('42', {at}, 'x', 'y')")
        )
    assert ensure_schema(engine, "upgrade") == "0005"
    with transaction(engine, write=True) as conn:
        assert tuple(conn.execute(text("SELECT kind, task_id, polls FROM tasks")).one()) == (
            "task",
            "42",
            3,
        )
        snapshot = conn.execute(text("SELECT task_kind, task_id, progress FROM snapshots")).one()
        assert tuple(snapshot) == ("task", "42", 40)
        event = conn.execute(text("SELECT task_kind, task_id, kind, detail FROM events")).one()
        assert tuple(event) == ("task", "42", "x", "y")
        # The same ID as a bulk operation is another task; its history hangs on both columns.
        conn.execute(
            text(
                "INSERT INTO tasks (kind, task_id, state, registered_at, updated_at, polls,"
                f" consecutive_errors, not_found_count) VALUES ('bulk', '42', 'watching', {at},"
                f" {at}, 0, 0, 0)"
            )
        )
        conn.execute(text("DELETE FROM tasks WHERE kind = 'bulk'"))
        assert conn.execute(text("SELECT count(*) FROM snapshots")).scalar() == 1
        conn.execute(text("DELETE FROM tasks WHERE kind = 'task'"))
        assert conn.execute(text("SELECT count(*) FROM snapshots")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
    engine.dispose()


def test_the_task_kind_migration_goes_back_without_bulk_operations(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, "0006")
    refs: list[TaskRef | str] = ["1", TaskRef(TaskKind.BULK, "1"), TaskRef(TaskKind.BULK, "2")]
    Store(engine).register(refs, Registration(), datetime(2026, 3, 1, tzinfo=UTC))
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    with transaction(engine, write=True) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    with transaction(engine) as conn:
        assert list(conn.execute(text("SELECT task_id FROM tasks"))) == [("1",)]
        assert list(conn.execute(text("SELECT task_id, kind FROM events"))) == [("1", "registered")]
    migrate(engine, "0006")
    assert [t.ref for t in Queries(engine).tasks(Filters())] == [TaskRef(TaskKind.TASK, "1")]
    engine.dispose()


# -- UTC datetimes on SQLite -----------------------------------------------------------------

SQLITE = sqlite_dialect.dialect()
SA_BIND = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
SA_RESULT = DateTime().dialect_impl(SQLITE).result_processor(SQLITE, None)
UTC_BIND = UTCDateTime().bind_processor(SQLITE)
UTC_RESULT = UTCDateTime().result_processor(SQLITE, None)


@given(st.datetimes(timezones=st.timezones()))
def test_utc_datetimes_are_stored_as_sqlalchemy_stores_them(value: datetime) -> None:
    assume(value.utcoffset() is not None)
    assert SA_BIND is not None and UTC_BIND is not None
    try:
        naive = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # outside the years datetime can hold once in UTC
        return
    text = UTC_BIND(value)
    assert text == SA_BIND(naive)
    assert SA_RESULT is not None and UTC_RESULT is not None
    sa_value = SA_RESULT(text)
    assert sa_value is not None
    assert UTC_RESULT(text) == sa_value.replace(tzinfo=UTC) == value.astimezone(UTC)
    assert UTC_RESULT(text).tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2026-03-01 12:00:00", "2026-03-01 12:00:00.5", "2026-03-01T12:00:00.123456"]
)
def test_utc_datetimes_written_by_hand_are_read_as_sqlalchemy_reads_them(text: str) -> None:
    assert SA_RESULT is not None and UTC_RESULT is not None
    sa_value = SA_RESULT(text)
    assert sa_value is not None
    assert UTC_RESULT(text) == sa_value.replace(tzinfo=UTC)


def test_a_naive_datetime_is_refused() -> None:
    assert UTC_BIND is not None
    with pytest.raises(ValueError, match="naive"):
        UTC_BIND(datetime(2026, 3, 1, 12, 0))


def test_a_utc_datetime_stored_with_an_offset_of_its_own_is_read_in_utc() -> None:
    assert UTC_RESULT is not None
    assert UTC_RESULT("2026-03-01 14:00:00+02:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_an_operator_outside_the_services_group_is_told_which_group() -> None:
    """The state directory is 2770: a user outside its group cannot even see the database,
    and is told whose it is rather than that it "cannot create" it."""
    with tempfile.TemporaryDirectory() as where:  # not under pytest's 0700 folder
        base = Path(where)
        base.chmod(0o755)  # others may pass through, as through /var/lib
        state = base / "state"
        state.mkdir()
        url = f"sqlite:///{state}/monitor.db"
        migrate(create_db_engine(url))
        command = [sys.executable, "-m", "monitor", "list"]
        if os.geteuid() == 0:  # CI: the operator is another user, as in production
            state.chmod(0o2770)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:  # the folder's owner without the owner's rights stands in for an outsider
            state.chmod(0o2070)
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "JTM_DATABASE_URL": url,
            "JTM_JIRA_URL": "https://example.atlassian.net",
            "JTM_JIRA_EMAIL": "ops@example.com",
            "HOME": str(base),
        }
        refused = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        st = state.stat()
        owner, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
        assert (refused.returncode, refused.stdout) == (78, "")
        assert refused.stderr.splitlines() == [
            f"jtm: error: cannot use {url}: permission denied on {state} (owner {owner}, "
            f"group {group}, mode {st.st_mode & 0o7777:o}): join the group {group} (then log "
            "in again) to use this database"
        ]
