"""Crash safety: SIGKILL at arbitrary moments loses nothing and repeats nothing."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.simulator import Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config

pytestmark = pytest.mark.slow

KILLS = 6
HOURS = 3600.0


def _script(task_id: str, rng: random.Random) -> TaskScript:
    if int(task_id) % 4 == 0:  # overruns its one-hour run limit: one cancel, confirmed
        return TaskScript(
            task_id, queued_s=0, run_s=100 * HOURS, started_ago_s=2 * HOURS, cancel_delay_s=0.3
        )
    outcome = rng.choice(["COMPLETE", "FAILED", "DEAD"])
    return TaskScript(
        task_id, queued_s=rng.uniform(0.1, 1.0), run_s=rng.uniform(1.0, 5.0), outcome=outcome
    )


def test_repeated_sigkill_loses_no_registration_and_repeats_no_cancel_or_finish(
    sim: Simulator, tmp_path: Path
) -> None:
    rng = random.Random(20261129)
    config = write_config(tmp_path, sim, SIM_EMAIL, timeouts={"run": "1h", "cancel_grace": "3s"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    registered: list[str] = []

    def register(count: int) -> None:
        ids = [str(100 + len(registered) + i) for i in range(count)]
        for task_id in ids:
            sim.add_task(_script(task_id, rng))
        assert jtm(config, "add", *ids, env=env).returncode == 0
        registered.extend(ids)

    register(12)
    runs: list[Daemon] = []
    for _ in range(KILLS):
        daemon = Daemon(config, env)
        runs.append(daemon)
        daemon.wait_event("daemon.started")
        register(3)  # registrations keep arriving while the daemon works and dies
        time.sleep(rng.uniform(0.0, 1.2))  # an arbitrary moment to die at
        daemon.stop(signal.SIGKILL)

    final = Daemon(config, env)
    runs.append(final)
    try:
        # Started before it is asked to stop, even when the runs before it ended every task.
        final.wait_event("daemon.started")
        wait_for(lambda: _unfinished(tmp_path) == 0, timeout=60, what="every task to end")
    finally:
        assert final.stop() == 0

    with sqlite3.connect(tmp_path / "monitor.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = dict(db.execute("SELECT task_id, status FROM tasks"))
    assert sorted(rows) == sorted(registered)  # no registration lost

    finished = Counter(e["task_id"] for run in runs for e in run.events("task.finished"))
    assert max(finished.values()) == 1  # never twice, across every restart
    for task_id in registered:
        if int(task_id) % 4 == 0:
            assert sim.cancel_count(task_id) == 1, task_id
            assert rows[task_id] == "CANCELLED"
        else:
            assert sim.cancel_count(task_id) == 0


def _unfinished(directory: Path) -> int:
    with sqlite3.connect(directory / "monitor.db", timeout=30) as db:
        (count,) = db.execute("SELECT count(*) FROM tasks WHERE state = 'watching'").fetchone()
    return int(count)
