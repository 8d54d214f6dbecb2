"""A database that cannot be written: the schedule holds, nothing is lost, the trouble shows.

In process, one tick at a time: `PRAGMA max_page_count` caps the database at its current
size, and SQLite answers SQLITE_FULL ("database or disk is full") to the first write that
needs a new page, as it does on a full disk; raising the cap is the space coming back.
`PRAGMA query_only` makes every write fail at once, as a read-only remount does. Both are set
on each connection the engine hands out. Then the real daemon on a real tmpfs that fills up,
in a user namespace of its own (no root needed).
"""

from __future__ import annotations

import errno
import json
import random
import subprocess
import time
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from structlog.testing import capture_logs

from monitor.backlog import Backlog
from monitor.config import JiraSettings, PollSettings, Secret, Settings, TimeoutSettings
from monitor.daemon import Daemon
from monitor.database import open_database
from monitor.jira import JiraClient
from monitor.jira.pacing import SiteGate
from monitor.logs import get_logger
from monitor.poller import Poller
from monitor.simulator import Simulator, TaskScript
from monitor.store import Registration, Store
from tests.conftest import SIM_EMAIL, SIM_TOKEN, RunCli
from tests.helpers import Daemon as HelperDaemon
from tests.helpers import base_env, jtm, snapshots, write_config
from tests.notify import NotifyListener

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL_S = 10.0
STEP_S = 2.5  # the daemon's tick: a quarter of the poll interval
TASKS = [str(n) for n in range(1, 21)]
UNLIMITED = 1_073_741_823  # SQLite's default max_page_count


class Clock:
    """One clock for the simulator, the ticks and the backlog's log limiter."""

    def __init__(self) -> None:
        self.now = T0

    def epoch(self) -> float:
        return self.now.timestamp()

    def monotonic(self) -> float:
        return (self.now - T0).total_seconds()


class Storage:
    """Per-connection limits on the database, applied as each connection is checked out."""

    def __init__(self, engine: Engine) -> None:
        self.max_pages = UNLIMITED
        self.read_only = False
        event.listen(engine, "checkout", self._apply)
        self.engine = engine

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {self.max_pages}")
        cursor.execute(f"PRAGMA query_only = {int(self.read_only)}")
        cursor.close()

    def fill(self) -> None:
        """Cap the database at the pages it has: the next write that needs one fails."""
        self.max_pages = 1  # SQLite never caps below the current size


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked_sim(clock: Clock) -> Iterator[Simulator]:
    with Simulator(auth="basic", email=SIM_EMAIL, token=SIM_TOKEN, clock=clock.epoch) as sim:
        yield sim


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    engine = open_database(db_url)
    yield Storage(engine)
    engine.dispose()


def named(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == name]


def test_a_full_database_holds_the_schedule_and_loses_no_snapshot(
    clocked_sim: Simulator, storage: Storage, clock: Clock
) -> None:
    store = Store(storage.engine)
    for n, task_id in enumerate(TASKS):  # every poll sees a change, so every poll writes
        run_s = 100 if n < len(TASKS) / 2 else 500  # half of them finish while the disk is full
        clocked_sim.add_task(TaskScript(task_id, queued_s=0, run_s=run_s))
    store.register(TASKS, Registration(), T0)
    jira = JiraSettings(url=clocked_sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
    poll = PollSettings(interval_s=INTERVAL_S, max_interval_s=60.0, concurrency=4)
    backlog = Backlog(get_logger(), clock=clock.monotonic)
    with (
        JiraClient(jira, Secret(SIM_TOKEN), pool_size=4) as client,
        ThreadPoolExecutor(max_workers=4) as workers,
        capture_logs() as logs,
    ):
        poller = Poller(
            store, client, poll, TimeoutSettings(), workers, rng=random.Random(7), backlog=backlog
        )

        def run_for(seconds: float) -> None:
            end = clock.now + timedelta(seconds=seconds)
            while clock.now < end:
                poller.tick(clock.now)
                clock.now += timedelta(seconds=STEP_S)

        run_for(30)
        assert backlog.state() is None
        storage.fill()
        full_at = clock.now
        run_for(120)
        space_at = clock.now
        assert backlog.state() is not None and len(backlog) == len(TASKS)
        storage.max_pages = UNLIMITED
        run_for(30)
    assert backlog.state() is None and len(backlog) == 0

    # Jira saw each task at the configured interval, full disk or not: each poll is due an
    # interval (less 10% jitter) after the last was due, and is made at the next tick.
    gets = [r for r in clocked_sim.requests_log() if r.method == "GET"]
    for task_id in TASKS:
        times = [r.at for r in gets if r.path.endswith(f"/task/{task_id}")]
        gaps = [b - a for a, b in pairwise(times)]
        assert min(gaps) >= INTERVAL_S * 0.9 - STEP_S, (task_id, gaps)
        assert len(times) <= 180 / (INTERVAL_S * 0.9) + 1

    # One line per interval while it lasted, none per task, no traceback; then one recovery.
    failed = named(logs, "store.write_failed")
    outage_s = (space_at - full_at).total_seconds()
    assert 1 <= len(failed) <= outage_s / INTERVAL_S + 1
    assert all("database or disk is full" in line["error"] for line in failed)
    assert failed[-1]["tasks_waiting"] == len(TASKS)
    assert not named(logs, "poller.task_failed") and not named(logs, "poller.backoff_failed")
    assert not [line for line in logs if "exc_info" in line]
    [recovered] = named(logs, "store.recovered")
    assert recovered["tasks_written"] == len(TASKS)

    # Every poll is in the database, each change a snapshot at the time it was observed.
    for task_id in TASKS:
        polled_at = sorted(r.at for r in gets if r.path.endswith(f"/task/{task_id}"))
        task = store.get(task_id)
        assert task.polls == len(polled_at)
        observed = sorted(s.observed_at.timestamp() for s in snapshots(store, task_id))
        assert observed == pytest.approx(polled_at)
        if task.state == "watching":
            assert task.next_poll_at is not None and task.next_poll_at > clock.now - timedelta(
                seconds=STEP_S
            )
    # What was held is logged once written, a task's finish exactly once.
    finished = named(logs, "task.finished")
    assert sorted(line["task_id"] for line in finished) == sorted(TASKS[:10])
    assert logs.index(finished[0]) > logs.index(recovered)
    assert all(store.get(task_id).state == "finished" for task_id in TASKS[:10])
    changed = named(logs, "task.status_changed")  # RUNNING, then COMPLETE for half
    assert sorted(line["task_id"] for line in changed) == sorted(TASKS + TASKS[:10])


def test_polls_that_change_nothing_are_held_as_one_and_keep_backing_off(
    clocked_sim: Simulator, storage: Storage, clock: Clock
) -> None:
    store = Store(storage.engine)
    clocked_sim.add_task(TaskScript("1", queued_s=1e9))  # ENQUEUED for ever: nothing changes
    store.register(["1"], Registration(), T0)
    jira = JiraSettings(url=clocked_sim.url, email=SIM_EMAIL, timeout_s=2.0, max_rps=1000.0)
    poll = PollSettings(interval_s=INTERVAL_S, max_interval_s=60.0, concurrency=1)
    with (
        JiraClient(jira, Secret(SIM_TOKEN), pool_size=1) as client,
        ThreadPoolExecutor(max_workers=1) as workers,
    ):
        poller = Poller(store, client, poll, TimeoutSettings(), workers, rng=random.Random(7))
        poller.tick(T0)
        storage.read_only = True
        while clock.now < T0 + timedelta(seconds=120):
            clock.now += timedelta(seconds=STEP_S)
            poller.tick(clock.now)
        gets = [r.at for r in clocked_sim.requests_log() if r.method == "GET"]
        assert len(gets) >= 4  # the first, then 10 s, 15 s, 22.5 s, ... apart
        assert poller.backlog.writes() == 1
        storage.read_only = False
        poller.tick(clock.now)
    task = store.get("1")
    assert task.polls == len(gets)
    assert task.poll_interval_s == pytest.approx(min(INTERVAL_S * 1.5 ** (len(gets) - 1), 60.0))
    [snapshot] = snapshots(store, "1")
    assert snapshot.observed_at == T0
    assert snapshot.last_seen_at.timestamp() == pytest.approx(gets[-1])


# -- the daemon: STATUS= and `jtm status` while it cannot write -----------------------------


@pytest.fixture
def outage_daemon(
    settings: Settings, storage: Storage, listener: NotifyListener, tmp_path: Path
) -> Iterator[Daemon]:
    env = {"NOTIFY_SOCKET": listener.address, "RUNTIME_DIRECTORY": str(tmp_path / "run")}
    daemon = Daemon(settings, env=env)
    gate = SiteGate(settings.jira.max_rps)
    runtime = daemon.install(Store(storage.engine), Secret(SIM_TOKEN), gate)
    yield daemon
    runtime.close()
    gate.close()


def status(run: RunCli) -> tuple[int, list[str], dict[str, Any]]:
    table, as_json = run("status"), run("status", "--json")
    return table.exit_code, table.output.splitlines(), json.loads(as_json.output)


def test_status_and_systemd_say_the_database_cannot_be_written(
    outage_daemon: Daemon,
    storage: Storage,
    sim: Simulator,
    listener: NotifyListener,
    run: RunCli,
) -> None:
    store = Store(storage.engine)
    sim.add_task(TaskScript("1", run_s=600))
    store.register(["1"], Registration(), datetime.now(UTC))
    assert outage_daemon.tick(store) is not None  # all is well: the heartbeat names its file
    code, lines, data = status(run)
    assert code == 0 and "trouble    none" in lines and data["store"] is None

    with storage.engine.begin() as conn:  # the last heartbeat is long past, the task due
        conn.execute(text("UPDATE heartbeats SET heartbeat_at = '2026-01-01 00:00:00.000000'"))
        conn.execute(text("UPDATE tasks SET next_poll_at = '2026-01-01 00:00:00.000000'"))
    storage.read_only = True  # and every write fails, the heartbeat's too
    with capture_logs() as logs:
        report = outage_daemon.tick(store)
    assert report is not None and report.held == 1
    [failed] = named(logs, "store.write_failed")
    assert "attempt to write a readonly database" in failed["error"]
    assert not named(logs, "daemon.tick_failed") and not named(logs, "daemon.heartbeat_failed")
    listener.wait_status(r"^cannot write the database since .* \(1 task waiting\): .*readonly")

    code, lines, data = status(run)
    assert code == 0, lines  # alive: the state file is fresh though the row is not
    assert data["daemon"]["alive"] is True
    assert data["store"]["tasks_waiting"] == 1
    assert "readonly database" in data["store"]["error"]
    [trouble] = [line for line in lines if line.startswith("trouble")]
    assert "database: cannot write the database since" in trouble

    storage.read_only = False  # writable again: the held poll goes in, the file goes away
    with capture_logs() as logs:
        outage_daemon.tick(store)
    assert named(logs, "store.recovered")
    assert store.get("1").polls >= 2
    assert outage_daemon.heartbeat.state.path is not None
    assert not outage_daemon.heartbeat.state.path.exists()
    code, lines, data = status(run)
    assert code == 0 and "trouble    none" in lines and data["store"] is None


def test_a_stop_writes_what_it_can(outage_daemon: Daemon, storage: Storage, sim: Simulator) -> None:
    store = Store(storage.engine)
    sim.add_task(TaskScript("1", run_s=600))
    store.register(["1"], Registration(), datetime.now(UTC))
    storage.read_only = True
    outage_daemon.tick(store)
    state_file = outage_daemon.heartbeat.state.path
    assert len(outage_daemon.backlog) == 1 and state_file is not None and state_file.exists()

    with capture_logs() as logs:  # still read-only: the poll is lost, and said to be
        assert outage_daemon.last_writes(store) == 1
    [failed] = named(logs, "store.write_failed")
    assert failed["tasks_waiting"] == 1
    assert not state_file.exists()

    storage.read_only = False  # a stop once it can write: the held poll goes in
    assert outage_daemon.last_writes(store) == 0
    assert store.get("1").polls == 1
    [beat] = store.heartbeats()
    assert beat.stopped_at is not None


# -- the real thing: a daemon on a small tmpfs that fills up --------------------------------


def fill(path: Path) -> None:
    """Write to `path` until its file system is full."""
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(bytes(4096))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def test_the_daemon_rides_out_a_full_tmpfs(sim: Simulator, tmp_path: Path) -> None:
    """A real full disk: a small tmpfs in a user and mount namespace of the daemon's own (no
    root needed). The test fills it through /proc/PID/root, as anything on the host would,
    then frees it; the daemon carries on at its interval and writes what it held."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here: {probe.stderr.decode().strip()}")
    seed, mount = tmp_path / "seed", tmp_path / "state"
    seed.mkdir()
    mount.mkdir()
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, RUNTIME_DIRECTORY=str(tmp_path / "run"))
    added = jtm(write_config(seed, sim, SIM_EMAIL), "add", "1", "2", "3", env=env)
    assert added.returncode == 0, added.stderr
    for task_id in ("1", "2", "3"):
        sim.add_task(TaskScript(task_id, queued_s=0, run_s=600))
    config = write_config(
        tmp_path, sim, SIM_EMAIL, database={"url": f"sqlite:///{mount / 'monitor.db'}"}
    )
    script = f'mount -t tmpfs -o size=4m tmpfs {mount}; cp {seed}/monitor.db {mount}; exec "$@"'
    daemon = HelperDaemon(config, env, wrapper=["unshare", "-rm", "sh", "-ec", script, "sh"])
    filler = Path(f"/proc/{daemon.proc.pid}/root") / mount.relative_to("/") / "filler"
    try:
        daemon.wait_event("task.status_changed", count=3)
        fill(filler)
        full_at = time.time()
        daemon.wait_event("store.write_failed", count=3)  # one a poll interval: ~2 s
        filler.unlink()
        daemon.wait_event("store.recovered")
        space_at = time.time()
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    # Jira saw each task once a poll interval (1 s, less 10% jitter), the disk full or not.
    gets = [r for r in sim.requests_log() if r.method == "GET" and full_at <= r.at <= space_at]
    for task_id in ("1", "2", "3"):
        times = [r.at for r in gets if r.path.endswith(f"/task/{task_id}")]
        assert len(times) <= (space_at - full_at) / 0.9 + 2, times
    assert "Traceback" not in daemon.stderr, daemon.stderr
    assert not daemon.events("poller.task_failed") and not daemon.events("daemon.tick_failed")
    failed = daemon.events("store.write_failed")
    assert all("database or disk is full" in line["error"] for line in failed), failed
    assert len(failed) <= space_at - full_at + 2  # poll.interval is 1 s
    [recovered] = daemon.events("store.recovered")
    assert recovered["tasks_written"] >= 1
