"""The daemon's heartbeat moves during a long tick, not only after it (in-process, no sleeps)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import Secret, Settings
from monitor.daemon import Daemon
from monitor.health import DaemonState, daemon_health
from monitor.heartbeat import BEAT_EVERY_S, HeartbeatWriter
from monitor.jira.pacing import SiteGate
from monitor.simulator import Simulator, TaskScript
from monitor.store import Registration, Store
from tests.conftest import SIM_TOKEN


@pytest.fixture
def daemon(settings: Settings) -> Daemon:
    return Daemon(settings, env={})


@pytest.fixture
def heartbeat(daemon: Daemon) -> HeartbeatWriter:
    return daemon.heartbeat


def test_a_heartbeat_is_written_once_the_last_is_beat_every_s_old(
    heartbeat: HeartbeatWriter, store: Store
) -> None:
    last = heartbeat.written_at
    assert not heartbeat.write_if_due(store, last + BEAT_EVERY_S - 0.001)
    assert store.heartbeats() == []
    assert heartbeat.write_if_due(store, last + BEAT_EVERY_S)
    [beat] = store.heartbeats()
    assert beat.stopped_at is None and beat.last_tick_at is None  # alive, mid-tick
    assert daemon_health([beat], datetime.now(UTC)).state == DaemonState.ALIVE
    assert not heartbeat.write_if_due(store, last + 2 * BEAT_EVERY_S - 0.001)
    assert heartbeat.write_if_due(store, last + 2 * BEAT_EVERY_S)


def test_a_write_after_a_tick_restarts_the_count(heartbeat: HeartbeatWriter, store: Store) -> None:
    last = heartbeat.written_at
    heartbeat.write(store)  # what the end of a tick writes
    assert not heartbeat.write_if_due(store, last + BEAT_EVERY_S - 0.001)


@pytest.fixture
def runtime_daemon(daemon: Daemon, settings: Settings, store: Store) -> Iterator[Daemon]:
    gate = SiteGate(settings.jira.max_rps)
    runtime = daemon.install(store, Secret(SIM_TOKEN), gate)
    yield daemon
    runtime.close()
    gate.close()


def test_the_polls_of_a_tick_refresh_a_heartbeat_that_is_due(
    runtime_daemon: Daemon, sim: Simulator, store: Store
) -> None:
    now = datetime.now(UTC)
    for task_id in ("1", "2", "3"):
        sim.add_task(TaskScript(task_id, run_s=60.0))
    store.register(["1", "2", "3"], Registration(), now)
    poller = runtime_daemon.runtime.poller

    poller.tick(now)  # the heartbeat was just written (the daemon's start): none is due
    assert store.heartbeats() == []

    runtime_daemon.heartbeat.written_at = time.monotonic() - BEAT_EVERY_S  # a tick of 30 s
    report = poller.tick(now + timedelta(hours=1))  # everything is due again
    assert report.polled == 3
    [beat] = store.heartbeats()
    assert beat.last_tick_at is None  # written by a poll, not by the end of a tick
    assert daemon_health([beat], datetime.now(UTC)).alive
