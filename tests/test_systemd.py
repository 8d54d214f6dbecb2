"""The daemon's side of the systemd protocol, against a $NOTIFY_SOCKET the test listens on.

The real daemon runs as a subprocess against the simulator; the test plays systemd: it binds
the notification socket, sets $WATCHDOG_USEC, and reads the journal stream.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sqlite3
import stat
import tempfile
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from monitor import logs
from monitor.daemon_status import status_line
from monitor.database import SCHEMA_HEAD
from monitor.pollreport import TickReport
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import LogFormat, LogLevel
from monitor.systemd import Notifier, Watchdog, is_journal_stream, notify_address
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config
from tests.notify import JournalDaemon, NotifyListener

LONG = TaskScript("long", queued_s=0.1, run_s=600, outcome="COMPLETE")


def _register(config: Path, env: dict[str, str], *ids: str) -> None:
    result = jtm(config, "add", *ids, env=env)
    assert result.returncode == 0, result.stderr


# -- units: the protocol pieces --------------------------------------------------------------


def test_notify_address_is_a_path_or_the_abstract_namespace() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@/org/freedesktop/systemd1/notify/42") == (
        "\0/org/freedesktop/systemd1/notify/42"
    )
    assert notify_address("") is None
    assert notify_address("@") is None
    assert notify_address("relative/path") is None
    assert notify_address("vsock:2:1234") is None


def test_without_notify_socket_nothing_is_sent_and_nothing_breaks() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert Watchdog(notifier, {"WATCHDOG_USEC": "1000000"}, os.getpid()).enabled is False


def test_watchdog_honours_watchdog_usec_and_pid(listener: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "4000000"}
    now = [100.0]
    dog = Watchdog(Notifier(env), env, pid=42, clock=lambda: now[0])
    assert (dog.timeout_s, dog.interval_s) == (4.0, 2.0)
    assert dog.feed()  # the first completed tick pings at once
    now[0] += 1.9
    assert not dog.feed()  # not yet half the timeout
    now[0] += 0.1
    assert dog.feed()
    listener.wait("WATCHDOG", "1", count=2)
    # Variables inherited by another process are not ours to honour.
    assert not Watchdog(Notifier(env), {**env, "WATCHDOG_PID": "41"}, pid=42).enabled
    assert Watchdog(Notifier(env), {**env, "WATCHDOG_PID": "42"}, pid=42).enabled
    assert not Watchdog(Notifier(env), {**env, "WATCHDOG_USEC": "0"}, pid=42).enabled
    assert not Watchdog(Notifier(env), {**env, "WATCHDOG_USEC": "soon"}, pid=42).enabled


def test_a_journal_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert is_journal_stream(a, env)
        assert not is_journal_stream(b, env)  # inherited, but this stream goes elsewhere
        assert not is_journal_stream(a, {})
        assert not is_journal_stream(a, {"JOURNAL_STREAM": "garbage"})


def test_status_line_has_the_live_counts_and_the_last_tick() -> None:
    counts = {"watching": 3, "finished": 12, "removed": 1}
    assert status_line(counts, None, None) == "watching 3, finished 12, gone 0; no tick yet"
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    report = TickReport(due=4, polled=3)
    assert status_line(counts, report, at) == (
        "watching 3, finished 12, gone 0; last tick 2026-01-02 03:04:05 UTC, polled 3/4"
    )
    assert status_line(None, report, at).startswith("task counts unavailable")


def test_the_priority_prefix_marks_every_line_even_of_a_multi_line_rendering() -> None:
    out = io.StringIO()
    logs.configure_logging(LogFormat.CONSOLE, LogLevel.INFO, stream=out, level_prefix=True)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logs.get_logger().exception("daemon.tick_failed")
        logs.get_logger().warning("jira.error")
        logs.get_logger().debug("below the level")
    finally:
        logs.configure_logging(LogFormat.JSON, LogLevel.INFO, stream=io.StringIO())
    lines = out.getvalue().splitlines()
    assert len(lines) > 3  # the traceback spans lines
    assert all(line.startswith("<3>") for line in lines[:-1])
    assert lines[-1].startswith("<4>") and "jira.error" in lines[-1]
    assert logs.syslog_priority(logging.DEBUG) == 7
    assert logs.syslog_priority(logging.CRITICAL) == 2


# -- the daemon under a simulated systemd ----------------------------------------------------


@pytest.mark.slow
def test_daemon_sends_ready_status_watchdog_at_half_the_timeout_and_stopping(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    sim.add_task(TaskScript("11", queued_s=0.1, run_s=0.5, outcome="COMPLETE"))
    sim.add_task(LONG)
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(
        JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="2400000"
    )
    _register(config, env, "11", "long")
    daemon = Daemon(config, env)
    try:
        listener.wait("READY", "1")
        [ready] = listener.with_key("READY")
        assert ready.fields["MAINPID"] == str(daemon.proc.pid)
        assert "watching 2" in ready.fields["STATUS"]
        # READY comes after the migrations and the start: the schema is in place by then.
        daemon.wait_event("daemon.started")
        with sqlite3.connect(tmp_path / "monitor.db") as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
                SCHEMA_HEAD,
            )
        status = listener.wait_status(r"watching 1, finished 1, gone 0; last tick \S+ \S+ UTC")
        assert "polled" in status.string
        listener.wait("WATCHDOG", "1", count=4, timeout=30)
    finally:
        returncode = daemon.stop()
    assert returncode == 0, daemon.stderr
    listener.wait("STOPPING", "1")

    pings = [m.at for m in listener.with_key("WATCHDOG")]
    gaps = [b - a for a, b in pairwise(pings)]
    # Half of WATCHDOG_USEC apart (never more often), and always well inside the timeout.
    assert all(1.2 * 0.9 <= gap < 2.4 for gap in gaps), gaps
    [stopping] = listener.with_key("STOPPING")
    assert stopping.at >= pings[-1]
    assert daemon.events()[-1]["event"] == "daemon.stopped"


@pytest.mark.slow
def test_a_stuck_tick_stops_the_watchdog_pings(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    # The first tick hangs in an HTTP call the simulator answers only after `hang` seconds
    # (well inside jira.timeout, so the client does not give up first).
    hang = 3.0
    sim.add_task(LONG)
    sim.add_fault(Fault(kind="slow", delay_s=hang, task_id="long"))
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"timeout": "30s"})
    env = base_env(
        JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="1000000"
    )
    _register(config, env, "long")
    daemon = Daemon(config, env)
    try:
        listener.wait("READY", "1")
        ready_at = listener.with_key("READY")[0].at
        wait_for(lambda: len(sim.requests_log()) >= 1, timeout=hang + 10, what="the slow answer")
        [request] = sim.requests_log()
        answered_at = request.monotonic + hang  # same clock as the listener's
        # A healthy daemon pings every 0.5 s: it would have pinged at least twice by now.
        assert answered_at - ready_at > 1.0
        # This one sent nothing while its tick hung, so systemd (WatchdogSec=1s) would have
        # killed and restarted it.
        assert [m.at for m in listener.with_key("WATCHDOG") if m.at < answered_at] == []
        # Once the tick completes the pings resume.
        listener.wait("WATCHDOG", "1", count=3, timeout=15)
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert daemon.events("daemon.tick_skipped")  # the scheduler noticed, too


@pytest.mark.slow
def test_sigterm_finishes_the_tick_in_flight_then_says_stopping_and_exits_0(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_task(LONG)
    sim.add_fault(Fault(kind="slow", delay_s=2.0, task_id="long"))
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"timeout": "30s"})
    # A filesystem socket this time (short path: sun_path holds 108 bytes).
    with tempfile.TemporaryDirectory(prefix="jtm-") as short:
        listener = NotifyListener(Path(short) / "notify")
        try:
            env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address)
            _register(config, env, "long")
            daemon = Daemon(config, env)
            listener.wait("READY", "1")
            wait_for(lambda: sim.in_flight >= 1, what="the poll in flight")
            assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr
            listener.wait("STOPPING", "1", timeout=5)
        finally:
            listener.close()
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        (polls, status) = db.execute("SELECT polls, status FROM tasks").fetchone()
    assert (polls, status) == (1, "RUNNING")  # the slow poll was finished and recorded
    assert _task_requests(sim) == 1
    assert daemon.events()[-1]["event"] == "daemon.stopped"
    assert daemon.events()[-1]["signal"] == "SIGTERM"


# -- logs under journald ---------------------------------------------------------------------


@pytest.mark.slow
def test_on_the_journal_stream_each_line_carries_its_priority(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_task(TaskScript("ok", queued_s=0.1, run_s=0.3, outcome="COMPLETE"))
    sim.add_task(TaskScript("bad", queued_s=0.1, run_s=0.3, outcome="FAILED"))
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    _register(config, env, "ok", "bad")
    daemon = JournalDaemon(config, env)
    try:
        wait_for(lambda: len(_finished(daemon)) == 2, what="both tasks finished")
        config.write_text(config.read_text() + "[bogus]\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_event("daemon.reload_failed")
    finally:
        assert daemon.stop() == 0
    entries = daemon.entries()
    # Every line had a prefix; what journald keeps is the bare JSON object.
    assert all(priority is not None for priority, _ in entries)
    by_event = {(e["event"], e.get("task_id")): p for p, e in entries}
    assert by_event[("daemon.started", None)] == 6  # info
    assert by_event[("task.finished", "ok")] == 6
    assert by_event[("task.finished", "bad")] == 4  # warning: `journalctl -p warning` finds it
    assert by_event[("daemon.reload_failed", None)] == 3  # error
    assert all(p == {"info": 6, "warning": 4, "error": 3}[e["level"]] for p, e in entries)


def _finished(daemon: JournalDaemon) -> list[str]:
    return [e["task_id"] for _, e in daemon.entries() if e["event"] == "task.finished"]


@pytest.mark.slow
def test_a_redirected_stdout_gets_no_prefix_even_with_journal_stream_set(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    # As `jtm run | jq` in a shell inside a service: the variable is inherited, the stream is
    # not the journal's.
    daemon = JournalDaemon(
        config,
        base_env(JTM_JIRA_TOKEN=SIM_TOKEN),
        journal_stream=lambda st: f"{st.st_dev}:{st.st_ino + 1}",
    )
    try:
        daemon.wait_event("daemon.started")
    finally:
        assert daemon.stop() == 0
    assert daemon.lines and all(line.startswith("{") for line in daemon.lines)


# -- the state directory shared with operators -----------------------------------------------


@pytest.mark.slow
def test_under_umask_0007_the_database_files_are_group_read_write(
    sim: Simulator, tmp_path: Path
) -> None:
    # The unit's UMask=0007: operators in the service's group use the live database, which
    # needs write access to the database, its -wal and its -shm (even for reading).
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    old = os.umask(0o007)  # inherited by the daemon
    try:
        daemon = Daemon(config, env)
    finally:
        os.umask(old)
    try:
        daemon.wait_event("daemon.started")
        files = [tmp_path / f"monitor.db{suffix}" for suffix in ("", "-wal", "-shm")]
        wait_for(lambda: all(f.exists() for f in files), what="database, WAL and shm files")
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        assert daemon.stop() == 0
    assert modes == {"monitor.db": 0o660, "monitor.db-wal": 0o660, "monitor.db-shm": 0o660}


@pytest.mark.slow
def test_a_rate_limit_pause_is_not_a_hang_and_does_not_hold_up_a_stop(
    sim: Simulator, tmp_path: Path, listener: NotifyListener
) -> None:
    # One worker: the first poll earns a 429 with Retry-After: 30, which pauses the site; the
    # second poll waits in the same tick for the pause to end. Restarting the daemon then
    # would only forget the pause, so the watchdog is fed while the site is paused.
    for task_id in ("a", "b"):
        sim.add_task(TaskScript(task_id, queued_s=0.1, run_s=600, outcome="COMPLETE"))
    sim.add_fault(Fault(kind="rate_limit", retry_after="30", task_id="a"))
    config = write_config(tmp_path, sim, SIM_EMAIL, poll={"concurrency": 1})
    env = base_env(
        JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address, WATCHDOG_USEC="2000000"
    )
    _register(config, env, "a", "b")
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("jira.rate_limited")
        paused_at = len(listener.with_key("WATCHDOG"))
        listener.wait("WATCHDOG", "1", count=paused_at + 3, timeout=10)
        assert _task_requests(sim) == 1  # the tick is still waiting out the pause
        stop_at = listener.messages[-1].at
    finally:
        returncode = daemon.stop(timeout=15)  # not the 30 s of the pause
    assert returncode == 0, daemon.stderr
    pings = [m.at for m in listener.with_key("WATCHDOG")]
    assert all(b - a < 2.0 for a, b in pairwise(pings)), pings
    assert daemon.events("daemon.stop_during_rate_limit_pause")
    assert listener.with_key("STOPPING")[0].at - stop_at < 5


def _task_requests(sim: Simulator) -> int:
    """Requests about tasks (the daemon's credentials check at start is not one)."""
    return sum(1 for record in sim.requests_log() if record.task_id is not None)
