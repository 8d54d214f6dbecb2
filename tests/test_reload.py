"""SIGHUP: the daemon re-reads its config, applies a good one whole and refuses a bad one whole.

The real daemon runs against the simulator; the test edits the config file and signals it, as
`systemctl reload` does (`ExecReload=/bin/kill -HUP $MAINPID`).
"""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import DatabaseSettings, PollSettings, Settings, TimeoutSettings
from monitor.settings import changed_keys
from monitor.simulator import Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config
from tests.notify import NotifyListener

LONG = TaskScript("long", queued_s=0.1, run_s=600, outcome="COMPLETE")


def test_changed_keys_names_config_keys() -> None:
    old = Settings(database=DatabaseSettings("sqlite:///a.db"))
    new = Settings(
        database=DatabaseSettings("sqlite:///b.db"),
        poll=PollSettings(interval_s=5.0, concurrency=8),
        timeouts=TimeoutSettings(stall_s=60.0),
    )
    assert changed_keys(old, old) == []
    assert changed_keys(old, new) == [
        "database.url",
        "poll.interval",
        "poll.concurrency",
        "timeouts.stall",
    ]


def _reload(
    daemon: Daemon, listener: NotifyListener, config: Path, text: str, *, logs: str | None
) -> None:
    """Rewrite the config and send SIGHUP; wait until the daemon has answered READY=1 again,
    and the event `logs` (if any) has come through its stdout (a different channel)."""
    readies = len(listener.with_key("READY"))
    logged = len(daemon.events(logs)) if logs else 0
    config.write_text(text)
    daemon.proc.send_signal(signal.SIGHUP)
    listener.wait("READY", "1", count=readies + 1)
    if logs:
        daemon.wait_event(logs, count=logged + 1)


def _config_text(tmp_path: Path, sim: Simulator, **sections: dict[str, Any]) -> str:
    # write_config writes config.toml; render elsewhere and hand back the text.
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    path = write_config(scratch, sim, SIM_EMAIL, **sections)
    text = path.read_text()
    return text.replace(str(scratch / "monitor.db"), str(tmp_path / "monitor.db"))


def _poll_row(db_path: Path, task_id: str) -> tuple[int, str | None, str | None]:
    """Polls so far, when the first poll was due (registration), and when the next one is."""
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT polls, registered_at, next_poll_at FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
    return (int(row[0]), row[1], row[2]) if row else (0, None, None)


@pytest.mark.slow
def test_sighup_applies_poll_settings_timeouts_and_log_level_without_a_restart(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    sim.add_task(LONG)
    sim.add_task(TaskScript("early", queued_s=0.1, run_s=0.3, outcome="COMPLETE"))
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address)
    assert jtm(config, "add", "long", "early", env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        listener.wait("READY", "1")
        daemon.wait_event("task.finished")

        # 1. Slower polling, fewer workers, a run limit.
        slow = {"interval": "20s", "max_interval": "20s", "concurrency": 2}
        text = _config_text(tmp_path, sim, poll=slow, timeouts={"run": "2h"})
        _reload(daemon, listener, config, text, logs="daemon.reloaded")
        [reloaded] = daemon.events("daemon.reloaded")
        assert reloaded["changed"] == [
            "poll.interval",
            "poll.max_interval",
            "poll.concurrency",
            "timeouts.run",
        ]
        assert reloaded["config"] == str(config)
        assert listener.with_key("RELOADING", "1")
        # A task registered now is polled on the new schedule: its second poll falls due 20 s
        # (+/-10%) after its first one did (the moment it was registered).
        sim.add_task(TaskScript("new", queued_s=0.1, run_s=600, outcome="COMPLETE"))
        assert jtm(config, "add", "new", env=env).returncode == 0
        wait_for(lambda: _poll_row(tmp_path / "monitor.db", "new")[0] >= 1, what="first poll")
        _, first_due, due = _poll_row(tmp_path / "monitor.db", "new")
        assert first_due is not None and due is not None
        gap = (datetime.fromisoformat(due) - datetime.fromisoformat(first_due)).total_seconds()
        assert 18 <= gap <= 22, gap

        # 2. Back to fast polling, and only warnings and errors in the log from now on.
        quiet = _config_text(tmp_path, sim, log={"format": "json", "level": "warning"})
        _reload(daemon, listener, config, quiet, logs=None)  # daemon.reloaded is info: hidden
        since = datetime.now(UTC)
        sim.add_task(TaskScript("late-ok", queued_s=0.1, run_s=0.3, outcome="COMPLETE"))
        sim.add_task(TaskScript("late-bad", queued_s=0.1, run_s=0.3, outcome="FAILED"))
        assert jtm(config, "add", "late-ok", "late-bad", env=env).returncode == 0
        wait_for(
            lambda: any(e.get("task_id") == "late-bad" for e in daemon.events("task.finished")),
            what="late-bad finished (a warning)",
        )
        wait_for(lambda: _state(tmp_path, "late-ok") == "finished", what="late-ok finished")
    finally:
        assert daemon.stop() == 0, daemon.stderr
    after = [e for e in daemon.events() if datetime.fromisoformat(e["timestamp"]) > since]
    assert after and {e["level"] for e in after} <= {"warning", "error"}
    assert [e["task_id"] for e in after if e["event"] == "task.finished"] == ["late-bad"]
    # One process all along: no restart, no state lost.
    assert len(daemon.events("daemon.started")) == 1
    assert _state(tmp_path, "early") == "finished"
    assert _state(tmp_path, "long") == "watching"


def _state(tmp_path: Path, task_id: str) -> str | None:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        row = db.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


@pytest.mark.slow
def test_sighup_with_a_bad_config_keeps_the_old_one_and_says_why(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    sim.add_task(LONG)
    config = write_config(tmp_path, sim, SIM_EMAIL)
    good = config.read_text()
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address)
    assert jtm(config, "add", "long", env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        listener.wait("READY", "1")
        # A misspelt key, a bad value, a new database, a new site: each refused, with a reason.
        misspelt = good.replace("interval =", "intervall =", 1)
        bad_value = good.replace('"1s"', '"soon"', 1)
        moved = good.replace("monitor.db", "elsewhere.db")
        other_site = _config_text(tmp_path, sim, jira={"url": "http://127.0.0.2:9"})
        endpoint = good + '[metrics]\nlisten = "127.0.0.1:9464"\n'
        for text in (misspelt, bad_value, moved, other_site, endpoint):
            _reload(daemon, listener, config, text, logs="daemon.reload_failed")
        errors = [e["error"] for e in daemon.events("daemon.reload_failed")]
        assert len(errors) == 5, errors
        assert "poll.intervall" in errors[0] and "poll.interval" in errors[0]
        assert "soon" in errors[1]
        assert "database.url" in errors[2] and "restart" in errors[2]
        assert "jira.url" in errors[3] and "restart" in errors[3]
        assert "metrics.listen" in errors[4] and "restart" in errors[4]
        assert all("\n" not in error for error in errors)
        assert daemon.events("daemon.reloaded") == []
        assert "reload failed, old config kept" in listener.with_key("READY")[-1].fields["STATUS"]

        # Still running on the old config: a task registered now is polled and finished.
        sim.add_task(TaskScript("after", queued_s=0.1, run_s=0.3, outcome="COMPLETE"))
        assert jtm(config, "add", "after", env=env).returncode == 0
        wait_for(lambda: _state(tmp_path, "after") == "finished", what="after finished")

        # And a good config is accepted again.
        better = good.replace('max_interval = "2s"', 'max_interval = "3s"')
        _reload(daemon, listener, config, better, logs="daemon.reloaded")
        assert daemon.events("daemon.reloaded")[0]["changed"] == ["poll.max_interval"]
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert not (tmp_path / "elsewhere.db").exists()
    assert len(daemon.events("daemon.started")) == 1


@pytest.mark.slow
def test_sighup_rereads_the_token_file(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    token = tmp_path / "token"
    token.write_text(SIM_TOKEN + "\n")
    token.chmod(0o600)
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"token_file": str(token)})
    env = base_env(NOTIFY_SOCKET=listener.address)
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        token.write_text("a-revoked-token\n")  # the site's token was revoked and replaced...
        _reload(daemon, listener, config, config.read_text(), logs="daemon.reloaded")
        sim.add_task(TaskScript("t1", queued_s=0.1, run_s=0.3, outcome="COMPLETE"))
        assert jtm(config, "add", "t1", env=env).returncode == 0
        wait_for(lambda: any(e.get("status") == 401 for e in daemon.events("jira.error")))
        token.write_text(SIM_TOKEN + "\n")  # ...and the new one put in place
        _reload(daemon, listener, config, config.read_text(), logs="daemon.reloaded")
        changes = [e["changed"] for e in daemon.events("daemon.reloaded")]
        assert changes == [["jira.token"], ["jira.token"]]
        daemon.wait_event("task.finished")
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert SIM_TOKEN not in "\n".join(daemon.lines) + daemon.stderr
