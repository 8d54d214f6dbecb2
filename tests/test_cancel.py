"""Timeouts and the two-phase cancel, against the real simulator, one tick at a time."""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from monitor.canceller import MAX_ATTEMPTS
from monitor.cli import cli
from monitor.config import PollSettings, Secret, Settings, TimeoutSettings
from monitor.jira import JiraClient
from monitor.outcome import CancelStep
from monitor.poller import Poller
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import CancelOutcome, CancelSource, EventKind, TaskState, TimeoutAction
from monitor.store import Registration, Store
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, events, polled, write_config

NOW = datetime.now(UTC)
HOURS = 3600.0


class Phases(TypedDict):
    """The `TaskScript` fields that place a task in its lifecycle."""

    queued_s: float
    run_s: float
    started_ago_s: float


RUNNING_FOR_2H: Phases = {"queued_s": 0, "run_s": 100 * HOURS, "started_ago_s": 2 * HOURS}


class Timeouts(TypedDict, total=False):
    """The fields of `TimeoutSettings`, as keyword arguments."""

    total_s: float | None
    queued_s: float | None
    run_s: float | None
    stall_s: float | None
    action: TimeoutAction
    cancel_grace_s: float


class MakePoller(Protocol):
    def __call__(self, **timeouts: Unpack[Timeouts]) -> Poller: ...


class FakeClock:
    """A simulator clock that moves only when told."""

    def __init__(self) -> None:
        self.start = self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance_to(self, value: float) -> None:
        self.now = value


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture
def make_poller(store: Store, client: JiraClient) -> Iterator[MakePoller]:
    with ThreadPoolExecutor(4) as workers:

        def make(**timeouts: Unpack[Timeouts]) -> Poller:
            settings = TimeoutSettings(**timeouts)
            poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=4)
            return Poller(store, client, poll, settings, workers, rng=random.Random(3))

        yield make


def named(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == event]


def test_a_run_limit_cancels_and_the_cancel_is_confirmed(
    sim: Simulator, store: Store, make_poller: MakePoller
) -> None:
    sim.add_task(TaskScript("1", cancel_delay_s=0, **RUNNING_FOR_2H))
    store.register(["1"], Registration(run_s=HOURS), NOW)
    poller = make_poller()
    with capture_logs() as logs:
        report = poller.tick(NOW)  # the first sight is already past the limit
        assert (report.timeouts, report.cancels_sent) == (1, 1)
        assert sim.cancel_count("1") == 1
        task = store.get("1")
        assert (task.timed_out, task.cancel_requested_by) == ("run", CancelSource.MONITOR)
        assert task.cancel_requested_at == NOW
        for second in range(1, 6):
            poller.tick(at(second))
    [timeout] = named(logs, "task.timeout")
    assert (timeout["kind"], timeout["limit_s"], timeout["action"]) == ("run", HOURS, "cancel")
    assert float(str(timeout["observed_s"])) >= 2 * HOURS
    assert [line["task_id"] for line in named(logs, "task.cancel_requested")] == ["1"]
    [finished] = named(logs, "task.finished")
    assert (finished["status"], finished["cancelled_by_monitor"], finished["timed_out"]) == (
        "CANCELLED", True, "run",
    )  # fmt: skip
    task = store.get("1")
    assert (task.state, task.cancel_outcome) == (TaskState.FINISHED, CancelOutcome.CONFIRMED)
    assert sim.cancel_count("1") == 1
    kinds = [e.kind for e in events(store, "1")]
    assert kinds == [
        "registered", "first_seen", "timeout", "cancel_requested", "cancel_sent",
        "status_changed", "finished", "cancel_confirmed",
    ]  # fmt: skip


def test_a_stall_limit_cancels(sim: Simulator, store: Store, make_poller: MakePoller) -> None:
    # Started an hour ago, frozen at 10% since 12 minutes in: 48 minutes without a change.
    sim.add_task(
        TaskScript("2", queued_s=0, run_s=2 * HOURS, started_ago_s=HOURS, stall_at=10,
                   cancel_delay_s=0)
    )  # fmt: skip
    store.register(["2"], Registration(), NOW)
    poller = make_poller(stall_s=600.0, run_s=3 * HOURS)
    with capture_logs() as logs:
        poller.tick(NOW)
        poller.tick(at(2))
    [timeout] = named(logs, "task.timeout")
    assert timeout["kind"] == "stall"
    assert 2800 < float(str(timeout["observed_s"])) < 2900
    assert store.get("2").status == "CANCELLED"
    assert sim.cancel_count("2") == 1


def test_a_task_that_cannot_be_cancelled_gets_one_refused_cancel_and_stays_watched(
    sim: Simulator, store: Store, make_poller: MakePoller
) -> None:
    sim.add_task(TaskScript("3", cancellable=False, **RUNNING_FOR_2H))
    store.register(["3"], Registration(run_s=HOURS), NOW)
    poller = make_poller(cancel_grace_s=5.0)
    with capture_logs() as logs:
        for second in range(0, 60, 2):
            poller.tick(at(second))
    [failed] = named(logs, "task.cancel_failed")
    assert failed["final"] is True
    assert "not possible" in str(failed["error"])
    assert sim.cancel_count("3") == 1
    task = store.get("3")
    assert (task.state, task.cancel_outcome) == (TaskState.WATCHING, CancelOutcome.REFUSED)
    assert len(named(logs, "task.timeout")) == 1


def test_a_cancel_never_confirmed_is_retried_then_reported(
    sim: Simulator, store: Store, make_poller: MakePoller
) -> None:
    sim.add_task(TaskScript("4", ignore_cancel=True, **RUNNING_FOR_2H))
    store.register(["4"], Registration(run_s=HOURS), NOW)
    poller = make_poller(cancel_grace_s=10.0)
    with capture_logs() as logs:
        for second in range(0, 61):
            poller.tick(at(second))
    assert sim.cancel_count("4") == MAX_ATTEMPTS
    assert len(named(logs, "task.cancel_requested")) == MAX_ATTEMPTS
    [unconfirmed] = named(logs, "task.cancel_unconfirmed")
    assert unconfirmed["attempts"] == MAX_ATTEMPTS
    sent = [e.at for e in events(store, "4") if e.kind == EventKind.CANCEL_SENT]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    assert len(gaps) == MAX_ATTEMPTS - 1
    assert all(gap >= 10.0 for gap in gaps)  # each retry only after the grace period
    task = store.get("4")
    assert (task.state, task.cancel_outcome) == (TaskState.WATCHING, CancelOutcome.UNCONFIRMED)


def test_a_warn_only_task_is_warned_once_per_kind_and_never_cancelled(
    sim: Simulator, store: Store, make_poller: MakePoller
) -> None:
    sim.add_task(TaskScript("5", **RUNNING_FOR_2H))
    store.register(["5"], Registration(run_s=HOURS, action="warn"), NOW)
    poller = make_poller(total_s=1.5 * HOURS)
    with capture_logs() as logs:
        for second in range(0, 30, 3):
            poller.tick(at(second))
    warned = named(logs, "task.timeout")
    assert sorted(str(w["kind"]) for w in warned) == ["run", "total"]
    assert {w["action"] for w in warned} == {"warn"}
    assert sim.cancel_count("5") == 0
    task = store.get("5")
    assert (task.state, task.timed_out, task.cancel_requested_at) == (
        TaskState.WATCHING, "total", None,
    )  # fmt: skip
    assert task.timeouts_fired == "total,run"


def test_no_limit_no_timeout(sim: Simulator, store: Store, make_poller: MakePoller) -> None:
    sim.add_task(TaskScript("6", **RUNNING_FOR_2H))
    store.register(["6"], Registration(), NOW)
    with capture_logs() as logs:
        make_poller().tick(NOW)
    assert named(logs, "task.timeout") == []
    assert store.get("6").next_poll_at is not None


def test_the_next_poll_is_no_later_than_the_nearest_deadline(
    store: Store, settings: Settings
) -> None:
    # Jira's clock must move with `now` here: the simulator runs on a clock the test turns.
    clock = FakeClock()
    with (
        Simulator(email=SIM_EMAIL, token=SIM_TOKEN, clock=clock) as sim,
        JiraClient(replace(settings.jira, url=sim.url), Secret(SIM_TOKEN)) as client,
        ThreadPoolExecutor(2) as workers,
    ):
        sim.add_task(TaskScript("7", queued_s=0, run_s=100 * HOURS, started_ago_s=100))
        store.register(["7"], Registration(run_s=110), NOW)
        poll = PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=2)
        poller = Poller(store, client, poll, TimeoutSettings(), workers, rng=random.Random(3))
        polled_at: list[float] = []
        when = NOW
        while store.get("7").timed_out is None and len(polled_at) < 20:
            clock.advance_to(clock.start + (when - NOW).total_seconds())
            poller.tick(when)
            polled_at.append((when - NOW).total_seconds())
            next_poll = store.get("7").next_poll_at
            assert next_poll is not None
            when = next_poll
    # Backing off (1 s, 1.5 s, 2.25 s, ...) would next land at about 12 s; the limit falls
    # at 10 s, and the poll that finds it passed comes right after, not at the backoff.
    assert store.get("7").timed_out == "run"
    assert 10.0 < polled_at[-1] < 10.5
    assert polled_at[-2] < 10.0
    assert polled_at[-1] - polled_at[-2] < 0.9 * 4.0  # shorter than any backoff would give


def test_a_crash_between_the_decision_and_the_post_sends_exactly_one_cancel_after_restart(
    sim: Simulator, store: Store, make_poller: MakePoller, tmp_path: Path
) -> None:
    sim.add_task(TaskScript("8", cancel_delay_s=0.3, **RUNNING_FOR_2H))
    store.register(["8"], Registration(run_s=HOURS), NOW)
    # Phase one only (the decision is committed), then the process "dies": nothing was sent.
    make_poller().poll_due(NOW)
    assert store.get("8").cancel_requested_at == NOW
    assert sim.cancel_count("8") == 0

    config = write_config(tmp_path, sim, SIM_EMAIL)
    daemon = Daemon(config, base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    try:
        daemon.wait_event("task.finished")
    finally:
        assert daemon.stop() == 0
    assert sim.cancel_count("8") == 1
    [finished] = daemon.events("task.finished")
    assert (finished["status"], finished["cancelled_by_monitor"]) == ("CANCELLED", True)
    assert daemon.events("task.timeout") == []  # the decision was not taken a second time
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        (outcome,) = db.execute("SELECT cancel_outcome FROM tasks WHERE task_id = '8'").fetchone()
    assert outcome == "confirmed"


@pytest.fixture
def jtm_cancel(sim: Simulator, tmp_path: Path) -> Callable[[str], tuple[int, str]]:
    config = write_config(tmp_path, sim, SIM_EMAIL)

    def invoke(task_id: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli, ["--config", str(config), "cancel", task_id], env={"JTM_JIRA_TOKEN": SIM_TOKEN}
        )
        return result.exit_code, result.output

    return invoke


def test_jtm_cancel_goes_through_the_same_path_as_the_users(
    sim: Simulator, tmp_path: Path, jtm_cancel: Callable[[str], tuple[int, str]]
) -> None:
    sim.add_task(TaskScript("9", cancel_delay_s=0, **RUNNING_FOR_2H))
    CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "add", "9"], env={})
    code, output = jtm_cancel("9")
    assert code == 0, output
    assert "Jira accepted it" in output
    code, output = jtm_cancel("9")
    assert (code, "already in progress" in output) == (0, True)
    assert sim.cancel_count("9") == 1
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        row = db.execute(
            "SELECT cancel_requested_by, cancel_attempts FROM tasks WHERE task_id = '9'"
        ).fetchone()
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE task_id = '9'")]
    assert row == ("user", 1)
    assert kinds == ["registered", "cancel_requested", "cancel_sent"]


def test_jtm_cancel_failures(
    sim: Simulator, tmp_path: Path, jtm_cancel: Callable[[str], tuple[int, str]]
) -> None:
    sim.add_task(TaskScript("10", cancellable=False, **RUNNING_FOR_2H))
    sim.add_task(TaskScript("11", **RUNNING_FOR_2H))
    CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "add", "10", "11"], env={})
    code, output = jtm_cancel("10")
    assert code == 1
    assert "Jira refused" in output and "not possible" in output
    assert "Traceback" not in output
    sim.add_fault(Fault(kind="status", status=503, method="POST"))
    code, output = jtm_cancel("11")
    assert code == 1
    assert "the daemon will retry" in output
    assert jtm_cancel("12")[0] == 3
    assert SIM_TOKEN not in output


def test_a_users_cancel_is_not_overwritten_by_a_monitor_decision(store: Store) -> None:
    store.register(["1"], Registration(), NOW)
    [read] = store.due_tasks(NOW, 10)
    assert store.request_cancel("1", NOW, CancelSource.USER, "by hand")
    decision = replace(polled(read, NOW), cancel=CancelStep(decided="total limit passed"))
    assert not store.record_polls([decision])[0]
    assert store.get("1").cancel_requested_by == CancelSource.USER


def test_the_client_reads_jiras_clock_from_the_date_header(
    sim: Simulator, client: JiraClient
) -> None:
    sim.add_task(TaskScript("13", queued_s=1000))
    server_time = client.get_task("13").server_time
    assert server_time is not None
    assert abs((server_time - datetime.now(UTC)).total_seconds()) < 5
