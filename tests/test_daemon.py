"""The real daemon as a subprocess, registered through the real CLI, against the simulator."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.simulator import Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.databases import db_url_on_both  # noqa: F401 (the `db_url` fixture, on both databases)
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config

pytestmark = pytest.mark.slow


def test_run_polls_registered_tasks_to_the_end_and_logs_each_finish_once(
    sim: Simulator, tmp_path: Path, db_url: str
) -> None:
    scripts = {
        # Long enough that even a busy machine polls each task before it ends.
        "101": TaskScript("101", queued_s=1.0, run_s=5.0, outcome="COMPLETE"),
        "102": TaskScript("102", queued_s=1.0, run_s=6.0, outcome="FAILED"),
        "103": TaskScript("103", queued_s=1.0, run_s=2.0, outcome="DEAD"),
    }
    config = write_config(tmp_path, sim, SIM_EMAIL, database={"url": db_url})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)

    added = jtm(config, "add", "101", f"{sim.url}/rest/api/3/task/102", "--label", "e2e", env=env)
    assert added.returncode == 0, added.stderr
    # Created on Jira once registered (the first command also creates the database).
    for script in (scripts["101"], scripts["102"]):
        sim.add_task(script)
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        # Registered while the daemon runs: picked up without a restart.
        sim.add_task(scripts["103"])
        assert jtm(config, "add", "-", env=env, stdin="103\n").returncode == 0
        daemon.wait_event("task.finished", count=3)
    finally:
        returncode = daemon.stop()
    assert returncode == 0, daemon.stderr

    events = daemon.events()  # every stdout line is one JSON object
    assert all({"timestamp", "level", "event"} <= set(e) for e in events)
    assert all(e["timestamp"].endswith("Z") or "+00:00" in e["timestamp"] for e in events)
    finished = Counter(e["task_id"] for e in daemon.events("task.finished"))
    assert finished == {"101": 1, "102": 1, "103": 1}
    outcome = {e["task_id"]: e["status"] for e in daemon.events("task.finished")}
    assert outcome == {"101": "COMPLETE", "102": "FAILED", "103": "DEAD"}
    assert [e["event"] for e in events][-1] == "daemon.stopped"
    assert SIM_TOKEN not in "\n".join(daemon.lines) + daemon.stderr

    engine = create_engine(db_url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT task_id, state || ':' || status FROM tasks"))
        states: dict[str, str] = {row[0]: row[1] for row in rows}
        statuses = {
            task_id: list(
                db.scalars(
                    text("SELECT status FROM snapshots WHERE task_id = :id ORDER BY id"),
                    {"id": task_id},
                )
            )
            for task_id in scripts
        }
    engine.dispose()
    assert states == {"101": "finished:COMPLETE", "102": "finished:FAILED", "103": "finished:DEAD"}
    for task_id, seen in statuses.items():
        assert seen[-1] == scripts[task_id].outcome
        assert "RUNNING" in seen or "ENQUEUED" in seen

    listed = jtm(config, "list", "--all", "--json", env=env)
    assert listed.returncode == 0
    assert '"state": "finished"' in listed.stdout

    # A restart neither polls finished tasks again nor logs their finish a second time.
    def task_polls() -> int:
        return sum(1 for r in sim.requests_log() if r.task_id is not None)

    polls_before = task_polls()
    again = Daemon(config, env)
    try:
        again.wait_event("daemon.started")
        wait_for(lambda: _heartbeats(db_url) >= 1, what="a completed tick")
    finally:
        assert again.stop(signal.SIGINT) == 0
    assert again.events("task.finished") == []
    assert task_polls() == polls_before


def _heartbeats(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as db:
            return int(
                db.scalar(
                    text(
                        "SELECT count(*) FROM heartbeats"
                        " WHERE last_tick_at IS NOT NULL AND stopped_at IS NULL"
                    )
                )
                or 0
            )
    finally:
        engine.dispose()


def test_run_with_a_bad_config_exits_78_without_a_traceback(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL, poll={"intervall": "5s"})
    result = jtm(config, "run", env=base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    assert result.returncode == 78
    assert "poll.intervall" in result.stderr and "poll.interval" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_without_a_token_exits_78(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    result = jtm(config, "run", env=base_env())
    assert result.returncode == 78
    assert "token" in result.stderr
