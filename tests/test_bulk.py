"""Bulk operations in the store, the poll's decision and the CLI, without the daemon."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.database import open_database
from monitor.jira import BulkCounts
from monitor.states import TaskKind
from monitor.store import Registration, Store
from monitor.taskref import TaskRef
from tests.conftest import RunCli
from tests.helpers import polled, snapshots

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BULK = TaskRef(TaskKind.BULK, "7")
FAILED = {"10087": ["The issue is locked"], "10093": ["=cmd|' /C calc'!A0", "second reason"]}


def _store(config: Path) -> Store:
    return Store(open_database(f"sqlite:///{config.parent / 'monitor.db'}"))


def test_the_same_id_in_both_kinds_is_two_tasks(run: RunCli, config: Path) -> None:
    assert run("add", "7", "bulk:7", "--label", "x").output == "added: 7 bulk:7\n"
    assert run("add", "--bulk", "7").output == "updated: bulk:7\n"
    listed = {(t["kind"], t["task_id"]) for t in json.loads(run("list", "--json").output)}
    assert listed == {("task", "7"), ("bulk", "7")}
    assert run("remove", "7").output == "removed: 7\n"
    assert json.loads(run("show", "bulk:7", "--json").output)["state"] == "watching"


def test_counts_are_a_change_even_when_the_percentage_is_not(tmp_path: Path) -> None:
    store = Store(open_database(f"sqlite:///{tmp_path / 'm.db'}"))
    store.register([BULK], Registration(), T0)
    counts = BulkCounts(total=1000, succeeded=1, failed=0, invalid=0)
    assert store.record_polls([polled(store.get(BULK), T0, progress=0, bulk=counts)])[0]
    more = BulkCounts(total=1000, succeeded=2, failed=0, invalid=0)
    outcome = polled(store.get(BULK), T0 + timedelta(seconds=5), progress=0, bulk=more)
    assert outcome.seen is not None and outcome.seen.changed
    assert store.record_polls([outcome])[0]
    same = polled(store.get(BULK), T0 + timedelta(seconds=9), progress=0, bulk=more)
    assert same.seen is not None and not same.seen.changed
    rows = snapshots(store)
    assert [(r.task_kind, r.succeeded_issues) for r in rows] == [("bulk", 2), ("bulk", 1)]
    task = store.get(BULK)
    assert (task.total_issues, task.succeeded_issues, task.invalid_issues) == (1000, 2, 0)


def test_failures_as_a_table_json_and_csv(run: RunCli, config: Path) -> None:
    run("add", "bulk:7", "5")
    store = _store(config)
    counts = BulkCounts(total=4, succeeded=2, failed=2, invalid=0)
    outcome = polled(store.get(BULK), T0, "COMPLETE", 100, bulk=counts, result=FAILED)
    assert store.record_polls([outcome])[0]
    store.engine.dispose()

    as_json = json.loads(run("show", "bulk:7", "--failures", "--json").output)
    assert as_json == {"task_id": "7", "kind": "bulk", "failures": FAILED}
    as_csv = run("show", "bulk:7", "--failures", "--csv").output.splitlines()
    assert as_csv == [
        "issue_id,reason",
        "10087,The issue is locked",
        "10093,'=cmd|' /C calc'!A0",  # a formula is defused, as in every CSV
        "10093,second reason",
    ]
    table = run("show", "bulk:7", "--failures").output
    assert "10087  The issue is locked" in table
    shown = run("show", "bulk:7").output
    assert "failed_issues" in shown and "kind" in shown
    watched = run("watch", "--once", "bulk:7", "--recent", "1000d").output
    assert "bulk:7" in watched and "2/4 iss" in watched  # cut to the runner's 80 columns

    refused = run("show", "5", "--failures")
    assert refused.exit_code == 2
    assert "--failures is for bulk operations, and 5 is a task" in refused.output


def test_a_bulk_operation_cannot_be_asked_to_cancel(run: RunCli) -> None:
    refused = run("add", "bulk:7", "--action", "cancel")
    assert refused.exit_code == 2
    assert "--action cancel cannot apply to bulk:7" in refused.output
    assert run("add", "bulk:7", "--action", "warn").exit_code == 0
    assert "not registered: 7" in run("show", "7").output
