"""Both kinds side by side: the real daemon and CLI against the simulator, a task and a bulk
operation with the same ID, a bulk operation finishing with failed issues, one stalling past
its limit (warned once, never cancelled), and one expiring (gone)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.simulator import Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config

pytestmark = pytest.mark.slow

FAILURES = (("10087", "The issue is locked"), ("10093", "Field 'Team' is required"))


def test_tasks_and_bulk_operations_side_by_side(sim: Simulator, tmp_path: Path) -> None:
    sim.add_task(TaskScript("500", queued_s=0.5, run_s=2.0))
    sim.add_task(
        TaskScript("500", kind="bulk", queued_s=0.5, run_s=3.0, issues=12, invalid_issues=1,
                   failures=FAILURES, iso_times=True)
    )  # fmt: skip
    sim.add_task(TaskScript("501", kind="bulk", queued_s=0.2, run_s=20.0, stall_at=30))
    expiring = TaskScript("502", kind="bulk", queued_s=0.2, run_s=60.0)
    sim.add_task(expiring)
    config = write_config(tmp_path, sim, SIM_EMAIL, timeouts={"action": "cancel"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)

    added = jtm(config, "add", "500", "bulk:500", f"{sim.url}/rest/api/3/bulk/queue/502", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout == "added: 500 bulk:500 bulk:502\n"
    refused = jtm(config, "add", "--bulk", "501", "--stall", "2s", "--action", "cancel", env=env)
    assert refused.returncode == 2
    assert "Jira has no cancel for bulk operations" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert jtm(config, "add", "--bulk", "501", "--stall", "2s", env=env).returncode == 0

    daemon = Daemon(config, env)
    try:
        # Jira forgets bulk:502 once the monitor has seen it (its ~14-day retention, in short).
        wait_for(lambda: _answered(sim, "/bulk/queue/502"), what="a poll of bulk:502")
        sim.add_task(replace(expiring, expire_after_s=0.0))
        daemon.wait_event("task.finished", count=2)
        daemon.wait_event("task.gone")
        wait_for(lambda: bool(daemon.events("task.timeout")), what="the stall of bulk:501")
    finally:
        assert daemon.stop() == 0, daemon.stderr

    finished = {(e["kind"], e["task_id"]): e for e in daemon.events("task.finished")}
    assert set(finished) == {("task", "500"), ("bulk", "500")}
    task, bulk = finished["task", "500"], finished["bulk", "500"]
    assert (task["level"], "failed_issues" in task) == ("info", False)
    # COMPLETE, but two issues failed: a warning naming the count and the first reasons.
    assert bulk["level"] == "warning"
    assert (bulk["status"], bulk["progress"]) == ("COMPLETE", 100)
    counts = {k: bulk[k] for k in ("total_issues", "succeeded_issues", "failed_issues")}
    assert counts == {"total_issues": 12, "succeeded_issues": 9, "failed_issues": 2}
    assert bulk["invalid_issues"] == 1
    assert bulk["first_failures"] == {"10087": ["The issue is locked"],
                                      "10093": ["Field 'Team' is required"]}  # fmt: skip

    [timeout] = daemon.events("task.timeout")  # warned once
    assert (timeout["task_id"], timeout["task_kind"], timeout["kind"]) == ("501", "bulk", "stall")
    assert (timeout["action"], timeout["cancel"]) == ("warn", False)
    assert not [r for r in sim.requests_log() if r.method == "POST"]  # nothing to cancel
    [gone] = daemon.events("task.gone")
    assert (gone["task_id"], gone["kind"], gone["reason"]) == ("502", "bulk", "expired")

    with sqlite3.connect(tmp_path / "monitor.db") as db:
        rows = set(db.execute("SELECT kind, task_id, state, cancel_requested_at FROM tasks"))
        kinds = set(db.execute("SELECT DISTINCT task_kind, task_id FROM snapshots"))
    assert rows == {
        ("task", "500", "finished", None),
        ("bulk", "500", "finished", None),
        ("bulk", "501", "watching", None),
        ("bulk", "502", "gone", None),
    }
    assert kinds == {("task", "500"), ("bulk", "500"), ("bulk", "501"), ("bulk", "502")}

    shown = json.loads(jtm(config, "show", "bulk:500", "--json", env=env).stdout)
    assert (shown["task_id"], shown["kind"], shown["failed_issues"]) == ("500", "bulk", 2)
    plain = json.loads(jtm(config, "show", "500", "--json", env=env).stdout)
    assert (plain["kind"], "failed_issues" in plain) == ("task", False)
    failures = json.loads(jtm(config, "show", "bulk:500", "--failures", "--json", env=env).stdout)
    assert failures["failures"] == {"10087": ["The issue is locked"],
                                    "10093": ["Field 'Team' is required"]}  # fmt: skip
    as_csv = jtm(config, "show", "bulk:500", "--failures", "--csv", env=env).stdout
    assert list(csv.DictReader(io.StringIO(as_csv))) == [
        {"issue_id": "10087", "reason": "The issue is locked"},
        {"issue_id": "10093", "reason": "Field 'Team' is required"},
    ]
    listed = jtm(config, "list", "--all", env=env).stdout
    assert "bulk:500" in listed and "9/12 issues done, 2 failed, 1 invalid" in listed
    history = json.loads(jtm(config, "history", "bulk:500", "--json", env=env).stdout)
    assert {h["kind"] for h in history} == {"bulk"}
    assert history[0]["succeeded_issues"] == 9

    cancel = jtm(config, "cancel", "bulk:501", env=env)
    assert cancel.returncode == 1
    assert "bulk operation: Jira has no cancel for those" in cancel.stderr
    removed = jtm(config, "remove", "bulk:501", env=env)
    assert removed.stdout == "removed: bulk:501\n"


def _answered(sim: Simulator, path: str) -> bool:
    return any(r.path.endswith(path) and r.status == 200 for r in sim.requests_log())
