"""Notifications are never lost: a daemon SIGKILLed between recording and delivering, and a
receiver down for a long time (2 minutes under `make test-long`, a few seconds by default)."""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from monitor.simulator import Simulator, TaskScript
from tests.helpers import Daemon, jtm, wait_for
from tests.receiver import Receiver, fast, notify_config, outbox
from tests.test_notify import ENV

pytestmark = pytest.mark.slow

KILLS = 5
TASKS = 50
OUTAGE_S = float(os.environ.get("NOTIFY_OUTAGE_S", "4"))
"""How long the receiver is down in the default suite; `make test-long` runs 120 s."""


def test_sigkill_at_random_points_loses_no_notification(
    sim: Simulator,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261202)
    ids = [str(700 + i) for i in range(TASKS)]
    for task_id in ids:
        outcome = rng.choice(["COMPLETE", "FAILED", "DEAD"])
        sim.add_task(TaskScript(task_id, queued_s=0, run_s=rng.uniform(0.3, 8.0), outcome=outcome))
    receiver.delay_s = 0.15  # each delivery in flight for a while: a kill lands in some
    config = notify_config(tmp_path, sim, [fast("hook", receiver.url)])
    assert jtm(config, "add", *ids, env=ENV).returncode == 0
    runs = []
    for _ in range(KILLS):
        daemon = Daemon(config, ENV)
        runs.append(daemon)
        daemon.wait_event("daemon.started")
        time.sleep(rng.uniform(0.3, 2.0))
        daemon.stop(signal.SIGKILL)
    final = Daemon(config, ENV)
    runs.append(final)
    try:
        final.wait_event("daemon.started")
        wait_for(
            lambda: (
                len(rows := outbox(tmp_path)) == TASKS and all(r["state"] == "sent" for r in rows)
            ),
            90,
            "every task's notification delivered",
        )
    finally:
        assert final.stop() == 0
    rows = outbox(tmp_path)
    assert sorted(r["task_id"] for r in rows) == sorted(ids)  # one decision per task, ever
    got = receiver.delivered()
    assert {r.event["task_id"] for r in got} == set(ids)  # none lost
    keys: dict[str, set[str | None]] = defaultdict(set)
    for item in got:
        keys[item.event["event_id"]].add(item.key)
    assert all(len(k) == 1 for k in keys.values())  # a duplicate carries the same key
    stored = {r["event_id"]: r["key"] for r in rows}
    assert all(keys[e] == {stored[e]} for e in stored)
    statuses = {r.event["task_id"]: r.event["status"] for r in got}
    assert set(statuses.values()) <= {"COMPLETE", "FAILED", "DEAD"}


def _receiver_down_then_back(
    sim: Simulator, receiver: Receiver, tmp_path: Path, outage_s: float
) -> None:
    """Tasks finish while the receiver is down; it gets them all once back, and the polls of
    a running task kept their interval all along."""
    ids = [str(800 + i) for i in range(10)]
    for i, task_id in enumerate(ids):
        run_s = 0.3 + i * outage_s / len(ids)
        sim.add_task(TaskScript(task_id, queued_s=0, run_s=run_s, outcome="FAILED"))
    sim.add_task(TaskScript("899", queued_s=0, run_s=outage_s + 60, message_every_pct=1))
    receiver.mode = "down"
    # Short waits, as many attempts as the outage takes (the defaults, 5s to 5m and 20
    # attempts, keep trying for about 75 minutes)
    channel = fast(
        "hook", receiver.url, retry_backoff="200ms", retry_max_backoff="2s", max_attempts=1000
    )
    config = notify_config(tmp_path, sim, [channel])
    assert jtm(config, "add", *ids, "899", env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        daemon.wait_event("daemon.started")
        down_from = time.monotonic()
        daemon.wait_event("task.finished", len(ids), timeout=outage_s + 30)
        time.sleep(max(down_from + outage_s - time.monotonic(), 0))
        assert not receiver.delivered()
        receiver.mode = "ok"
        back = time.monotonic()
        wait_for(lambda: len(receiver.events()) >= len(ids), 20, "everything, once back")
        assert time.monotonic() - back < 2 + 5  # within the capped backoff, and a margin
    finally:
        assert daemon.stop() == 0
    assert sorted(e["task_id"] for e in receiver.events()) == ids
    assert all(r["state"] == "sent" for r in outbox(tmp_path))
    polls = [r.monotonic for r in sim.requests_log() if r.task_id == "899" and r.method == "GET"]
    during = [t for t in polls if down_from <= t <= back]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= outage_s / 2 - 1
    assert max(gaps) < 2 * 1.1 + 1  # poll.max_interval with its jitter, and a margin


def test_a_receiver_down_for_a_while_gets_everything_once_it_returns(
    sim: Simulator,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    _receiver_down_then_back(sim, receiver, tmp_path, OUTAGE_S)


@pytest.mark.long
def test_a_receiver_down_for_two_minutes_gets_everything_once_it_returns(
    sim: Simulator,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    _receiver_down_then_back(sim, receiver, tmp_path, 120.0)
