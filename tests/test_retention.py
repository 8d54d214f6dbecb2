"""Retention: old snapshots go in batches, each task's newest stays; `jtm prune`; the daemon."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from structlog.testing import capture_logs

from monitor.cli import cli
from monitor.config import DatabaseSettings, Settings
from monitor.daemon import Daemon as MonitorDaemon
from monitor.logs import get_logger
from monitor.retention import PRUNE_BATCH, apply_retention
from monitor.simulator import Simulator
from monitor.store import Registration, Store
from monitor.store.queries import Queries
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, events, record, snapshots, write_config

NOW = datetime.now(UTC)
COPIED = "task_id, observed_at, last_seen_at, status, progress"


def seed(store: Store, task_id: str, days_ago: list[float]) -> None:
    """One snapshot per entry, oldest first, as successive polls would write them."""
    store.register([task_id], Registration(), NOW - timedelta(days=max(days_ago)))
    for i, ago in enumerate(days_ago):
        at = NOW - timedelta(days=ago)
        assert record(store, task_id, at, "RUNNING", i)


def progress_left(store: Store, task_id: str) -> list[int | None]:
    return [s.progress for s in snapshots(store, task_id)]


def test_prune_keeps_recent_snapshots_and_each_tasks_newest(store: Store) -> None:
    seed(store, "old", [100, 95, 91])  # all old: only the newest stays
    seed(store, "mixed", [120, 100, 50, 10, 1])  # the two recent ones stay
    seed(store, "new", [5, 1])
    assert Queries(store.engine).prunable_snapshots(NOW - timedelta(days=90)) == 4
    assert store.prune_snapshots(NOW - timedelta(days=90), batch=3) == 4
    assert progress_left(store, "old") == [2]
    assert progress_left(store, "mixed") == [4, 3, 2]
    assert progress_left(store, "new") == [1, 0]
    assert store.prune_snapshots(NOW - timedelta(days=90), batch=3) == 0
    assert store.get("old").state == "watching"  # tasks and timelines are kept
    assert [e.kind for e in events(store, "old")] == ["registered", "first_seen"]


@pytest.mark.parametrize("batch", [1, 2, 7, 1000])
def test_prune_deletes_every_batch(store: Store, batch: int) -> None:
    seed(store, "t", [float(200 - i) for i in range(20)])  # 181..200 days ago
    assert apply_retention(store, 90 * 86400, NOW, batch=batch) == 19
    assert len(snapshots(store, "t")) == 1


def test_a_prune_stops_between_batches_when_told(store: Store) -> None:
    seed(store, "t", [float(200 - i) for i in range(20)])  # 19 prunable
    asked: list[int] = []

    def keep_going() -> bool:
        asked.append(len(snapshots(store, "t")))
        return False  # the daemon is stopping

    with capture_logs() as logs:
        pruned = apply_retention(
            store, 90 * 86400, NOW, batch=5, log=get_logger(), keep_going=keep_going
        )
    assert pruned == 5 and asked == [15]  # asked once, after the first batch
    assert len(snapshots(store, "t")) == 15  # the rest waits for the next run
    [line] = [e for e in logs if e["event"] == "retention.pruned"]
    assert (line["snapshots"], line["complete"]) == (5, False)
    with capture_logs() as logs:
        assert apply_retention(store, 90 * 86400, NOW, batch=5, log=get_logger()) == 14
    assert [(e["snapshots"], e["complete"]) for e in logs] == [(14, True)]


def test_a_prune_is_not_asked_after_its_last_batch(store: Store) -> None:
    seed(store, "t", [float(200 - i) for i in range(9)])  # 8 prunable: 5, then 3
    with capture_logs() as logs:
        pruned = apply_retention(
            store, 90 * 86400, NOW, batch=5, log=get_logger(), keep_going=iter([True]).__next__
        )
    assert pruned == 8 and len(snapshots(store, "t")) == 1  # a second question would raise
    assert [e["complete"] for e in logs] == [True]


def test_a_stopping_daemon_cuts_its_prune_short(store: Store, db_url: str) -> None:
    seed(store, "t", [200, 1])
    with store.engine.begin() as conn:
        for _ in range(11):  # 2048 old snapshots: more than one PRUNE_BATCH
            conn.execute(
                text(
                    f"INSERT INTO snapshots ({COPIED}) SELECT {COPIED} FROM snapshots"
                    " WHERE progress = 0"
                )
            )
    daemon = MonitorDaemon(Settings(DatabaseSettings(db_url)), env={})
    daemon.stop(signal.SIGTERM)
    with capture_logs() as logs:
        daemon.prune(store)
    assert [(e["snapshots"], e["complete"]) for e in logs] == [(PRUNE_BATCH, False)]
    assert len(snapshots(store, "t")) == 2049 - PRUNE_BATCH


def test_prune_command(tmp_path: Path, store: Store, db_url: str) -> None:
    seed(store, "t", [40, 35, 20, 1])
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[retention]\nsnapshots = "30d"\n')

    def prune(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), "prune", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert prune("--dry-run").startswith("would prune 2 snapshots observed before ")
    assert len(snapshots(store, "t")) == 4
    dry = json.loads(prune("--older-than", "10d", "--dry-run", "--json"))
    assert (dry["snapshots"], dry["dry_run"]) == (3, True)
    assert prune().startswith("pruned 2 snapshots")  # retention.snapshots = 30d
    assert json.loads(prune("--older-than", "10d", "--batch", "1", "--json"))["snapshots"] == 1
    assert progress_left(store, "t") == [3]


@pytest.mark.slow
def test_the_daemon_applies_retention_when_it_starts(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL, retention={"snapshots": "7d"})
    from monitor.database import open_database

    store = Store(open_database(f"sqlite:///{tmp_path / 'monitor.db'}"))
    seed(store, "t", [30, 20, 10, 3])
    store.remove(["t"], NOW)  # not polled: only retention touches it
    store.engine.dispose()
    daemon = Daemon(config, base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    try:
        daemon.wait_event("retention.pruned")
    finally:
        assert daemon.stop() == 0
    [event] = daemon.events("retention.pruned")
    assert event["snapshots"] == 3
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        assert db.execute("SELECT count(*) FROM snapshots").fetchone() == (1,)
