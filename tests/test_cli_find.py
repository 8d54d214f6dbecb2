"""Finding tasks and exporting history: every filter and format of list, show and history."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.cli.output import TASK_CSV_FIELDS
from monitor.database import open_database
from monitor.store import Registration, Store
from tests.helpers import JTM, base_env, record

Run = Callable[..., Result]
NOW = datetime.now(UTC).replace(microsecond=0)


def poll(store: Store, task_id: str, at: datetime, status: str, progress: int | None) -> None:
    """Record one poll that saw `status` and `progress`, with its events, as the daemon would."""
    assert record(store, task_id, at, status, progress)


@pytest.fixture
def seeded(config: Path) -> Iterator[Store]:
    """Four tasks registered an hour apart (newest: 4), in different states and statuses.

    1 reindex-a  finished FAILED       snapshots at -4h (RUNNING 10), -3h (FAILED 40)
    2 reindex-b  watching RUNNING 50   snapshots at -3h (ENQUEUED), -2h (RUNNING 50)
    3 cleanup    finished COMPLETE     snapshot  at -90m (COMPLETE 100)
    4 (no label) removed
    """
    store = Store(open_database(f"sqlite:///{config.parent / 'monitor.db'}"))
    for i, label in enumerate(["reindex-a", "Reindex-B", "cleanup", None], start=1):
        store.register([str(i)], Registration(label=label), NOW - timedelta(hours=5 - i))
    poll(store, "1", NOW - timedelta(hours=4), "RUNNING", 10)
    poll(store, "1", NOW - timedelta(hours=3), "FAILED", 40)
    poll(store, "2", NOW - timedelta(hours=3), "ENQUEUED", None)
    poll(store, "2", NOW - timedelta(hours=2), "RUNNING", 50)
    poll(store, "3", NOW - timedelta(minutes=90), "COMPLETE", 100)
    store.remove(["4"], NOW)
    yield store
    store.engine.dispose()


def ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["task_id"] for row in json.loads(result.output)]


def test_list_defaults_to_watched_tasks_newest_first(run: Run, seeded: Store) -> None:
    assert ids(run("list", "--json")) == ["2"]
    assert ids(run("list", "--all", "--json")) == ["4", "3", "2", "1"]
    assert ids(run("list", "--all", "--limit", "2", "--json")) == ["4", "3"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "finished"], ["3", "1"]),
        (["--state", "finished", "--state", "removed"], ["4", "3", "1"]),
        # --status alone looks at every state: a FAILED task is never "watching"
        (["--status", "failed"], ["1"]),
        (["--status", "FAILED", "--status", "COMPLETE"], ["3", "1"]),
        (["--status", "COMPLETE", "--state", "watching"], []),
        (["--all", "--label", "reindex-b"], ["2"]),  # any case
        (["--all", "--label", "reindex*"], ["2", "1"]),
        (["--all", "--label", "*a*"], ["3", "1"]),  # "cleanup", "reindex-a"
        (["--all", "--label", "reindex_a"], []),  # _ and % are not wildcards
        (["--all", "--since", "150m"], ["4", "3"]),
        (["--all", "--until", "150m"], ["2", "1"]),
        (["--all", "--since", "3h30m", "--until", "2h30m"], ["2"]),
        (["--all", "--label", "reindex*", "--since", "3h30m"], ["2"]),
    ],
)
def test_list_filters_combine(
    run: Run, seeded: Store, args: list[str], expected: list[str]
) -> None:
    assert ids(run("list", *args, "--json")) == expected


def test_list_since_and_until_take_iso_times(run: Run, seeded: Store) -> None:
    since = (NOW - timedelta(hours=3, minutes=30)).isoformat()
    until = (NOW - timedelta(hours=1, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(run("list", "--all", "--since", since, "--until", until, "--json")) == ["3", "2"]
    naive = (NOW - timedelta(hours=3, minutes=30)).replace(tzinfo=None).isoformat()
    assert ids(run("list", "--all", "--since", naive, "--json")) == ["4", "3", "2"]


def test_list_csv_has_stable_columns(run: Run, seeded: Store) -> None:
    result = run("list", "--all", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == TASK_CSV_FIELDS
    assert TASK_CSV_FIELDS[:6] == ("task_id", "state", "status", "progress", "label", "message")
    assert [(r["task_id"], r["state"], r["status"]) for r in rows] == [
        ("4", "removed", ""),
        ("3", "finished", "COMPLETE"),
        ("2", "watching", "RUNNING"),
        ("1", "finished", "FAILED"),
    ]
    assert rows[1]["registered_at"].endswith("Z") and rows[1]["finished_at"].endswith("Z")


def test_list_json_is_the_contract_shape_and_an_empty_list_is_valid(
    run: Run, seeded: Store
) -> None:
    tasks = json.loads(run("list", "--all", "--json").output)
    assert all("events" not in task for task in tasks)
    assert {"task_id", "state", "status", "progress", "label", "registered_at"} <= set(tasks[0])
    assert json.loads(run("list", "--state", "gone", "--json").output) == []


def test_list_table_is_aligned_and_has_no_colour_off_a_terminal(run: Run, seeded: Store) -> None:
    lines = run("list", "--all").output.splitlines()
    assert lines[0].split() == ["TASK", "STATE", "STATUS", "PROGRESS", "AGE", "SEEN", "TIMEOUT",
                                "LABEL"]  # fmt: skip
    assert "\x1b[" not in "".join(lines)
    status_at = lines[0].index("STATUS")
    assert [line[status_at:].split()[0] for line in lines[1:]] == ["-", "COMPLETE", "RUNNING",
                                                                   "FAILED"]  # fmt: skip
    assert run("list", "--state", "gone").output.splitlines()[0].startswith("TASK")


def test_list_table_is_coloured_on_a_terminal(config: Path, seeded: Store) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config), "list", "--all"], color=True)
    assert "\x1b[31mFAILED" in result.output and "\x1b[32mCOMPLETE" in result.output


def test_history_filters(run: Run, seeded: Store) -> None:
    def progress(*args: str) -> list[tuple[str, int | None]]:
        result = run("history", *args, "--json")
        assert result.exit_code == 0, result.output
        return [(r["task_id"], r["progress"]) for r in json.loads(result.output)]

    assert progress() == [("3", 100), ("2", 50), ("2", None), ("1", 40), ("1", 10)]
    assert progress("2") == [("2", 50), ("2", None)]
    assert progress("--status", "running") == [("2", 50), ("1", 10)]
    assert progress("--state", "finished") == [("3", 100), ("1", 40), ("1", 10)]
    assert progress("--label", "REINDEX*", "--status", "FAILED") == [("1", 40)]
    assert progress("--since", "3h30m") == [("3", 100), ("2", 50), ("2", None), ("1", 40)]
    assert progress("--since", "3h30m", "--until", "2h30m") == [("2", None), ("1", 40)]
    assert progress("--limit", "2") == [("3", 100), ("2", 50)]
    assert progress("1", "--status", "COMPLETE") == []


def test_history_csv_streams_every_row(run: Run, seeded: Store) -> None:
    result = run("history", "--csv", "--limit", "0")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == ["task_id", "observed_at", "status", "progress", "message",
                             "elapsed_runtime_ms", "last_seen_at", "kind", "total_issues",
                             "succeeded_issues", "failed_issues", "invalid_issues"]  # fmt: skip
    assert len(rows) == 5
    assert rows[2]["progress"] == ""  # None is an empty cell


def test_history_table(run: Run, seeded: Store) -> None:
    lines = run("history", "1").output.splitlines()
    assert lines[0].split()[:4] == ["OBSERVED", "TASK", "STATUS", "PROGRESS"]
    assert "FAILED" in lines[1] and "40%" in lines[1]


def test_show_timeline_filters(run: Run, seeded: Store) -> None:
    def kinds(*args: str) -> list[str]:
        result = run("show", "1", *args, "--json")
        assert result.exit_code == 0, result.output
        return [event["kind"] for event in json.loads(result.output)["events"]]

    assert kinds() == ["registered", "first_seen", "status_changed", "finished"]  # time order
    assert kinds("--limit", "2") == ["status_changed", "finished"]  # the newest two
    assert kinds("--kind", "registered", "--kind", "finished") == ["registered", "finished"]
    assert kinds("--since", "3h30m") == ["status_changed", "finished"]
    assert kinds("--until", "3h30m") == ["registered", "first_seen"]
    table = run("show", "1", "--limit", "1").output
    assert "timeline" in table and "registered" not in table.split("timeline")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--since", "soon"], "neither a duration"),
        (["list", "--since", "1h", "--until", "2h"], "--since must be earlier"),
        (["list", "--json", "--csv"], "one of --json and --csv"),
        (["list", "--state", "lost"], "lost"),
        (["list", "--limit", "-1"], "-1"),
        (["history", "--status", ""], "empty"),
        (["show", "1", "--kind", "exploded"], "exploded"),
        (["show", "1", "--csv"], "--csv goes with --failures"),
    ],
)
def test_bad_filters_are_usage_errors(
    run: Run, seeded: Store, args: list[str], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_closed_pipe_ends_quietly(config: Path, seeded: Store) -> None:
    # `head -1` leaves after one line; jtm must not print a traceback about it.
    many = [str(100 + i) for i in range(3000)]
    seeded.register(many, Registration(), NOW)
    shell = f"{' '.join(JTM)} --config {config} list --all --csv | head -1"
    result = subprocess.run(
        ["sh", "-c", shell], capture_output=True, text=True, env=base_env(), timeout=60, check=False
    )
    assert result.stdout.startswith("task_id,")
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr
