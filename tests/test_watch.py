"""`jtm watch`: the estimates, the frame, and the real command on and off a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import TimeoutSettings
from monitor.database import open_database
from monitor.deadlines import nearest_limit
from monitor.health import DaemonHealth, DaemonState
from monitor.simulator import Simulator, TaskScript
from monitor.store import Registration, Store
from monitor.watch import Look, Row, View, bar, eta_seconds, render
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import JTM, Daemon, base_env, record, write_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- estimates ------------------------------------------------------------------------------


def test_eta_follows_the_progress_slope() -> None:
    points = [(T0, 10), (T0 + timedelta(seconds=30), 25), (T0 + timedelta(seconds=60), 40)]
    # 30 points in 60 s: 0.5 %/s, 60 % to go
    assert eta_seconds(points, T0 + timedelta(seconds=60)) == pytest.approx(120)


def test_eta_grows_while_a_task_stops_moving() -> None:
    points = [(T0, 10), (T0 + timedelta(seconds=60), 40)]
    soon = eta_seconds(points, T0 + timedelta(seconds=60))
    later = eta_seconds(points, T0 + timedelta(seconds=600))
    assert soon is not None and later is not None and later > soon * 5


@pytest.mark.parametrize(
    "points",
    [[], [(T0, 10)], [(T0, 40), (T0 + timedelta(seconds=9), 40)], [(T0, 50), (T0, 40)]],
)
def test_no_eta_without_progress(points: list[tuple[datetime, int]]) -> None:
    assert eta_seconds(points, T0 + timedelta(seconds=10)) is None


def task(**values: Any) -> Any:
    base = {
        "kind": "task", "state": "watching", "status": "RUNNING", "registered_at": T0,
        "jira_submitted_at": T0, "jira_started_at": T0 + timedelta(minutes=1),
        "jira_last_update_at": T0 + timedelta(minutes=5), "last_change_at": None,
        "limit_total_s": None, "limit_queued_s": None, "limit_run_s": None, "limit_stall_s": None,
        "timeout_action": None, "elapsed_runtime_ms": None, "last_seen_at": None,
    }  # fmt: skip
    return SimpleNamespace(**(base | values))


def test_nearest_limit_is_the_first_to_run_out() -> None:
    defaults = TimeoutSettings(total_s=3600, run_s=1800, stall_s=600)
    now = T0 + timedelta(minutes=10)
    seen = {"last_seen_at": now, "elapsed_runtime_ms": 9 * 60_000}  # Jira's clock: T0 + 10m
    # total at 60m, run at 1m+30m, stall at 5m+10m: stall is next, 5 minutes away
    assert nearest_limit(task(**seen), defaults, now) == ("stall", 300)
    # a per-task limit overrides the config's
    assert nearest_limit(task(limit_run_s=60, **seen), defaults, now) == ("run", -480)
    assert nearest_limit(task(**seen), TimeoutSettings(), now) is None
    assert nearest_limit(task(), defaults, now) is None  # never polled: nothing is known yet


def test_queued_and_stall_limits_apply_only_in_their_phase() -> None:
    defaults = TimeoutSettings(queued_s=120, stall_s=60)
    queued = task(
        status="ENQUEUED", jira_started_at=None, jira_last_update_at=None, last_seen_at=T0
    )
    assert nearest_limit(queued, defaults, T0 + timedelta(seconds=30)) == ("queued", 90)
    later = T0 + timedelta(minutes=2, seconds=20)
    running = task(
        jira_last_update_at=T0 + timedelta(minutes=2), last_seen_at=later, elapsed_runtime_ms=80_000
    )
    assert nearest_limit(running, defaults, later) == ("stall", 40)
    assert nearest_limit(task(status="COMPLETE", last_seen_at=T0), defaults, T0) is None
    assert nearest_limit(task(state="removed", last_seen_at=T0), defaults, T0) is None


# --- the frame ------------------------------------------------------------------------------


def view(*rows: Row, daemon: DaemonState = DaemonState.ALIVE) -> View:
    health = DaemonHealth(daemon, None, 2.0, 120.0)
    return View(T0, list(rows), health, T0 + timedelta(seconds=5))


ROW = Row("10042", "reindex", "watching", "RUNNING", 40, 250.0, 95.0, ("run", 600.0), None, None)


def test_bar() -> None:
    assert bar(40, 12) == "[####......]"
    assert bar(None, 7) == "[.....]"
    assert bar(100, 4, Look(unicode=True)) == "████"
    assert bar(50, 3, Look(unicode=True)) == "█▌░"


def test_plain_frame() -> None:
    lines = render(view(ROW), width=100)
    assert "1 watching" in lines[0] and "daemon alive" in lines[0] and "next poll in 5s" in lines[0]
    assert lines[1].split() == ["TASK", "PROGRESS", "STATUS", "AGE", "ETA", "LIMIT", "NOTE"]
    assert re.fullmatch(r"10042  \[#+\.+\]  40%  RUNNING  4m10s +~1m35s +run 10m left +reindex",
                        lines[2])  # fmt: skip
    assert all(len(line) <= 100 for line in lines)
    assert all(line.isascii() for line in lines)


def test_frame_says_what_is_wrong() -> None:
    failing = replace(ROW, error="get task 10042: HTTP 401: credentials rejected", limit=None)
    failing = replace(failing, error_kind="credentials")
    late = replace(ROW, task_id="7", limit=("stall", -90.0), eta_s=None)
    done = replace(ROW, task_id="8", state="finished", status="COMPLETE", progress=100)
    lines = render(view(failing, late, done, daemon=DaemonState.STALE), width=140)
    assert "daemon stale" in lines[0] and "nothing is polled" in lines[0]
    assert "1 ended" in lines[0]
    assert "! credentials: HTTP 401: credentials rejected" in lines[2]
    assert "stall over 1m30s" in lines[3] and "  ?  " in lines[3]
    assert "done" in lines[4]


def test_frame_fits_narrow_and_short_terminals() -> None:
    rows = [replace(ROW, task_id=str(i)) for i in range(50)]
    lines = render(view(*rows), width=60, height=12, look=Look(colour=True, unicode=True))
    assert len(lines) <= 12
    assert "and 42 more" in lines[-1]  # a line stays free for the cursor
    assert all(len(ANSI.sub("", line)) <= 60 for line in lines)
    assert "\x1b[36m" in lines[2]  # RUNNING in cyan


def test_frame_with_nothing_to_watch() -> None:
    lines = render(view(daemon=DaemonState.NEVER_RAN), width=80)
    assert "no daemon has run" in lines[0]
    assert "jtm add" in lines[1]


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n[timeouts]\nrun = "1h"\n'
    )
    store = Store(open_database(f"sqlite:///{tmp_path / 'monitor.db'}"))
    now = datetime.now(UTC)
    store.register(["10042", "10043"], Registration(label="reindex"), now)
    for progress, ago in ((20, 60), (30, 30), (40, 0)):
        at = now - timedelta(seconds=ago)
        started, elapsed_ms = now - timedelta(seconds=90), (90 - ago) * 1000
        assert record(store, "10042", at, "RUNNING", progress, started=started,
                      elapsed_runtime_ms=elapsed_ms)  # fmt: skip
    store.engine.dispose()
    return config


def test_watch_once_prints_one_plain_frame(seeded: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(seeded), "watch", "--once"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "2 watching" in lines[0] and "no daemon has run" in lines[0]
    row = next(line for line in lines if line.startswith("10042"))
    assert "[" in row and "#" in row and "40%" in row and "RUNNING" in row
    assert "run 58m" in row and "reindex" in row
    assert "~" in row  # an ETA: 20% a minute, 60% to go
    assert "\x1b[" not in result.output


def test_watch_selects_by_id_label_and_status(seeded: Path) -> None:
    def watched(*args: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--config", str(seeded), "watch", "--once", *args])
        assert result.exit_code == 0, result.output
        return [line.split()[0] for line in result.output.splitlines()[1:]][1:]

    assert watched("10043") == ["10043"]
    assert watched("--status", "running") == ["10042"]
    assert watched("--label", "REINDEX") == ["10042", "10043"]
    assert watched("--label", "other") == []  # "no watched tasks: ..."


def test_watch_without_a_terminal_prints_snapshots_until_interrupted(seeded: Path) -> None:
    proc = subprocess.Popen(
        [*JTM, "--config", str(seeded), "watch", "--interval", "100ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
    )
    assert proc.stdout is not None
    frames = 0
    deadline = time.monotonic() + 30
    while frames < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        frames += "watching" in line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert frames == 3
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "\x1b[" not in out


def _read_until(fd: int, done: Any, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                break
    return data


def _controlling_terminal() -> None:
    # In the child: a new session whose controlling terminal is the pty on stdin, so that a
    # Ctrl-C typed into it is turned into SIGINT by the terminal driver, as for a person.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.slow
def test_watch_on_a_terminal_beside_the_daemon_quits_on_ctrl_c(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_task(TaskScript("501", queued_s=0.2, run_s=60))
    sim.add_task(TaskScript("502", queued_s=0.2, run_s=1))
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, TERM="xterm")
    subprocess.run([*JTM, "--config", str(config), "add", "501", "502", "--label", "e2e"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    daemon = Daemon(config, env)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        daemon.wait_event("task.finished")  # 502
        watch = subprocess.Popen(
            [*JTM, "--config", str(config), "watch", "--interval", "200ms"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_controlling_terminal,  # noqa: PLW1509 - no threads in the child
        )
        os.close(slave)
        screen = _read_until(master, lambda d: d.count(b"\x1b[H") >= 3, timeout=30).decode()
        os.write(master, b"\x03")  # Ctrl-C
        returncode = watch.wait(timeout=30)
        screen += _read_until(master, lambda d: False, timeout=0.5).decode()
    finally:
        os.close(master)
        daemon.stop()
    assert returncode == 0
    frame = ANSI.sub("", screen.split("\x1b[H")[-1])
    assert "daemon alive" in frame
    row = next(line for line in frame.splitlines() if line.startswith("501"))
    assert re.search("[█▏▎▍▌▋▊▉]+░+ +[0-9]+% +RUNNING", row) and "e2e" in row
    assert "\x1b[36m" in screen  # colour on a terminal
    done = next(line for line in frame.splitlines() if line.startswith("502"))
    assert "COMPLETE" in done and "done" in done
    assert screen.rstrip().endswith("\x1b[?25h")  # the cursor is given back
    assert "Traceback" not in screen
