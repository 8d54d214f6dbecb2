"""The typed records are the tables' rows: the same columns, the same nullability, and a
round trip through the database gives back what was written."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table

from monitor.records import Heartbeat, Task
from monitor.schema import HEARTBEATS, TASKS
from monitor.states import TaskState
from monitor.store import Registration, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("record", "table"), [(Task, TASKS), (Heartbeat, HEARTBEATS)])
def test_a_record_has_one_field_per_column_with_the_same_nullability(
    record: type[Any], table: Table
) -> None:
    assert sorted(record._fields) == sorted(table.c.keys())
    for name, annotation in record.__annotations__.items():
        assert ("None" in str(annotation)) == table.c[name].nullable, name


def test_a_task_read_back_is_the_task_written(store: Store) -> None:
    store.register(["10001"], Registration(label="nightly", run_s=90.0, action="warn"), T0)
    task = store.get("10001")
    assert task == Task(
        task_id="10001",
        state=TaskState.WATCHING,
        registered_at=T0,
        updated_at=T0,
        label="nightly",
        limit_run_s=90.0,
        timeout_action="warn",
        next_poll_at=T0,
    )
    assert task.registered_at.tzinfo is UTC


ORM_PROBE = """
import atexit, sys
atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.orm"))))
sys.argv = ["jtm", *sys.argv[1:]]
from monitor.cli import main
main()
"""


@pytest.mark.parametrize(
    "command", [["list", "--json"], ["history", "10001"], ["show", "10001"], ["status"]]
)
def test_read_commands_do_not_import_the_orm(
    command: list[str], store: Store, db_url: str, tmp_path: Path
) -> None:
    """The ORM's import alone costs a read command more than its query (docs/benchmarks.md)."""
    store.register(["10001"], Registration(), T0)
    config = tmp_path / "jtm.toml"
    config.write_text(
        f'[jira]\nurl = "http://127.0.0.1:9"\nemail = "a@example.com"\n'
        f'[database]\nurl = "{db_url}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", ORM_PROBE, "--config", str(config), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # `status` exits 1: no daemon ever ran
    assert done.stdout.strip().splitlines()[-1] == "[]"
