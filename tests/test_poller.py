"""One tick at a time, with a chosen `now`, against the real simulator and real SQLite."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event
from structlog.testing import capture_logs

from monitor.config import PollSettings, TimeoutSettings
from monitor.jira import JiraClient, TaskInfo
from monitor.observation import GONE_AFTER_404S, UNCHANGED_BACKOFF, observe
from monitor.poller import DUE_BATCH, WRITE_GROUP, Poller
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import ErrorKind, EventKind, TaskState
from monitor.store import Registration, Store
from monitor.taskref import TaskRef, as_ref
from tests.helpers import events, snapshots

NOW = datetime.now(UTC)
FOREVER = 1_000_000.0


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def events_named(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == name]


def test_first_poll_records_a_snapshot_and_the_status(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    with capture_logs() as logs:
        report = poller.tick(NOW)
    assert (report.due, report.polled, report.changed) == (1, 1, 1)
    task = store.get("1")
    assert (task.status, task.progress, task.polls) == ("ENQUEUED", 0, 1)
    assert task.first_seen_at == NOW
    assert task.jira_submitted_at is not None
    [snap] = snapshots(store, "1")
    assert (snap.status, snap.observed_at) == ("ENQUEUED", NOW)
    assert [e.kind for e in events(store, "1")] == [EventKind.REGISTERED, EventKind.FIRST_SEEN]
    [changed] = events_named(logs, "task.status_changed")
    assert (changed["from"], changed["to"], changed["task_id"]) == (None, "ENQUEUED", "1")


def test_tasks_not_yet_due_are_not_polled(sim: Simulator, store: Store, poller: Poller) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    poller.tick(NOW)
    assert poller.tick(later(0.5)).due == 0
    assert len(sim.requests_log()) == 1
    assert poller.tick(later(2)).due == 1


def test_unchanged_polls_write_no_rows_and_back_off(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    poll = poller.poll
    at = NOW
    intervals = []
    for _ in range(6):
        poller.tick(at)
        task = store.get("1")
        intervals.append(task.poll_interval_s)
        assert task.next_poll_at is not None
        at = task.next_poll_at
    expected = [poll.interval_s]
    for _ in range(5):
        expected.append(min(expected[-1] * UNCHANGED_BACKOFF, poll.max_interval_s))
    assert intervals == pytest.approx(expected)
    [snap] = snapshots(store, "1")  # six polls, one row
    assert snap.observed_at == NOW
    last_seen_at = store.get("1").last_seen_at
    assert last_seen_at is not None
    assert snap.last_seen_at == last_seen_at > NOW
    assert store.get("1").polls == 6


def test_finished_task_is_logged_once_and_never_polled_again(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=0, run_s=0, outcome="FAILED", result={"why": "x"}))
    store.register(["1"], Registration(label="field delete"), NOW)
    with capture_logs() as logs:
        first = poller.tick(NOW)
        for i in range(1, 4):
            poller.tick(later(60 * i))
    assert first.finished == 1
    [finished] = events_named(logs, "task.finished")
    assert finished["status"] == "FAILED"
    assert finished["polls"] == 1
    assert finished["result"] == {"why": "x"}
    assert finished["cancelled_by_monitor"] is False
    assert finished["timed_out"] is None
    assert finished["log_level"] == "warning"
    task = store.get("1")
    assert (task.state, task.finished_at, task.next_poll_at) == (TaskState.FINISHED, NOW, None)
    assert len(sim.requests_log()) == 1


def test_progress_changes_are_snapshots(sim: Simulator, store: Store, poller: Poller) -> None:
    # Started 30 s ago with 60 s to run: progress moves with the wall clock between polls.
    sim.add_task(TaskScript("1", queued_s=0, run_s=60, started_ago_s=30, message_every_pct=1))
    store.register(["1"], Registration(), NOW)
    poller.tick(NOW)
    sim.add_task(TaskScript("1", queued_s=0, run_s=60, started_ago_s=45, message_every_pct=1))
    poller.tick(later(1.5))
    newest, oldest = snapshots(store, "1")
    assert oldest.progress is not None and newest.progress is not None
    assert newest.progress > oldest.progress
    assert store.get("1").poll_interval_s == poller.poll.interval_s


def test_repeated_404s_make_a_task_gone(sim: Simulator, store: Store, poller: Poller) -> None:
    store.register(["nope"], Registration(), NOW)
    at = NOW
    with capture_logs() as logs:
        for _ in range(GONE_AFTER_404S):
            poller.tick(at)
            assert store.get("nope").state in (TaskState.WATCHING, TaskState.GONE)
            at = store.get("nope").next_poll_at or at
    task = store.get("nope")
    assert (task.state, task.not_found_count) == (TaskState.GONE, GONE_AFTER_404S)
    [gone] = events_named(logs, "task.gone")
    assert gone["reason"] == "not_found"
    assert poller.tick(later(3600)).due == 0


def test_a_task_jira_forgot_is_gone_as_expired(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    poller.tick(NOW)
    sim.reset()  # Jira's retention ran out: the task now answers 404
    at = store.get("1").next_poll_at
    with capture_logs() as logs:
        for _ in range(GONE_AFTER_404S):
            assert at is not None
            poller.tick(at)
            at = store.get("1").next_poll_at or at
    assert store.get("1").state == TaskState.GONE
    assert events_named(logs, "task.gone")[0]["reason"] == "expired"


def test_a_transient_error_backs_off_and_records_no_status(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    sim.add_fault(Fault(kind="status", status=503, count=2))
    with capture_logs() as logs:
        poller.tick(NOW)
        first = store.get("1")
        assert first.next_poll_at is not None
        poller.tick(first.next_poll_at)
    task = store.get("1")
    assert (task.status, task.consecutive_errors, task.last_error_transient) == (None, 2, True)
    assert task.next_poll_at is not None and first.next_poll_at is not None
    assert task.next_poll_at - first.next_poll_at > first.next_poll_at - NOW  # growing waits
    errors = events_named(logs, "jira.error")
    assert [(e["status"], e["transient"]) for e in errors] == [(503, True), (503, True)]
    assert snapshots(store, "1") == []
    poller.tick(task.next_poll_at)
    recovered = store.get("1")
    assert (recovered.status, recovered.consecutive_errors) == ("ENQUEUED", 0)
    kinds = [e.kind for e in events(store, "1")]
    assert kinds.count(EventKind.POLL_FAILED) == 1  # one per streak, not one per poll
    assert EventKind.POLL_RECOVERED in kinds


def test_a_task_whose_processing_raises_does_not_stop_the_others(
    sim: Simulator, store: Store, client: JiraClient, poll_settings: PollSettings
) -> None:
    for task_id in ("good", "bad"):
        sim.add_task(TaskScript(task_id, queued_s=FOREVER))
    store.register(["good", "bad"], Registration(), NOW)

    class BuggyFor:
        """The real client, but processing task "bad" raises."""

        def get_task(self, ref: TaskRef) -> TaskInfo:
            if ref.task_id == "bad":
                raise RuntimeError("a bug in processing this one task")
            return client.get_task(ref)

        def cancel_task(self, task_id: str) -> None:
            client.cancel_task(task_id)

    with ThreadPoolExecutor(2) as workers, capture_logs() as logs:
        poller = Poller(store, BuggyFor(), poll_settings, TimeoutSettings(), workers)
        report = poller.tick(NOW)
    assert (report.polled, report.failed) == (1, 1)
    assert store.get("good").status == "ENQUEUED"
    assert [line["task_id"] for line in events_named(logs, "poller.task_failed")] == ["bad"]
    bad = store.get("bad")  # backed off, not retried on every tick
    assert bad.consecutive_errors == 1
    assert bad.last_error is not None and "RuntimeError" in bad.last_error
    assert bad.next_poll_at is not None and bad.next_poll_at > NOW


@pytest.fixture
def poll_settings() -> PollSettings:
    return PollSettings(interval_s=1.0, max_interval_s=4.0, concurrency=2)


def test_a_large_result_is_truncated_in_the_log(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=0, run_s=0, result={"ids": list(range(5000))}))
    store.register(["1"], Registration(), NOW)
    with capture_logs() as logs:
        poller.tick(NOW)
    [finished] = events_named(logs, "task.finished")
    assert isinstance(finished["result"], str)
    assert finished["result"].endswith("...(truncated)")
    assert len(finished["result"]) < 1100
    stored = store.get("1").result
    assert stored is not None and len(stored) > 20_000  # the database keeps it whole


def test_one_tick_polls_every_due_task_in_batches(store: Store, poller: Poller) -> None:
    ids = [f"t{i}" for i in range(DUE_BATCH + 20)]  # unknown to the simulator: quick 404s
    store.register(ids, Registration(), NOW)
    report = poller.tick(NOW)
    assert report.due == len(ids)
    assert {store.get(i).polls for i in (ids[0], ids[-1])} == {1}
    assert poller.tick(NOW).due == 0


def test_the_next_poll_is_counted_from_when_it_was_due(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    poll = PollSettings(interval_s=10.0, max_interval_s=10.0, concurrency=1)
    [task] = store.due_tasks(NOW, 1)
    info = poller.api.get_task(as_ref("1"))
    late = observe(task, info, NOW + timedelta(seconds=3), poll)  # a late tick
    assert late.next_poll_at == NOW + timedelta(seconds=10)
    very_late = observe(task, info, NOW + timedelta(seconds=25), poll)
    assert very_late.next_poll_at == NOW + timedelta(seconds=35)


class Inline(Executor):
    """Runs each request as it is submitted: every answer is back before the first is written."""

    def submit(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def count_write_transactions(store: Store) -> list[int]:
    """A counter of the write transactions begun on `store`'s engine from now on."""
    counter = [0]

    @event.listens_for(store.engine, "begin")
    def _count(conn: Connection) -> None:
        counter[0] += conn.get_execution_options().get("jtm_write", False)

    return counter


def test_answers_that_came_back_together_are_written_in_one_transaction(
    sim: Simulator, store: Store, client: JiraClient, poll_settings: PollSettings
) -> None:
    ids = [str(i) for i in range(WRITE_GROUP + 3)]
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=FOREVER))
    store.register(ids, Registration(), NOW)
    writes = count_write_transactions(store)
    report = Poller(store, client, poll_settings, TimeoutSettings(), Inline()).poll_due(NOW)
    assert report.polled == len(ids)
    assert writes[0] == 2  # a full group, then the three left
    assert {store.get(i).status for i in ids} == {"ENQUEUED"}
    assert all(len(snapshots(store, i)) == 1 for i in ids)


def test_a_task_whose_write_fails_costs_only_its_own_poll(
    sim: Simulator, store: Store, client: JiraClient, poll_settings: PollSettings
) -> None:
    ids = ["a", "bad", "c"]
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=FOREVER))
    store.register(ids, Registration(), NOW)

    class UnwritableFor:
        """The real client, but the answer for task "bad" holds a message SQLite cannot
        store: a lone surrogate, which is no UTF-8 (the payload parser replaces them)."""

        def get_task(self, ref: TaskRef) -> TaskInfo:
            info = client.get_task(ref)
            return replace(info, message="\ud800") if ref.task_id == "bad" else info

        def cancel_task(self, task_id: str) -> None:
            client.cancel_task(task_id)

    poller = Poller(store, UnwritableFor(), poll_settings, TimeoutSettings(), Inline())
    with capture_logs() as logs:
        report = poller.poll_due(NOW)
    assert (report.polled, report.failed) == (2, 1)
    assert [store.get(i).status for i in ids] == ["ENQUEUED", None, "ENQUEUED"]
    assert [line["task_id"] for line in events_named(logs, "poller.task_failed")] == ["bad"]
    assert store.get("bad").consecutive_errors == 1  # backed off


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("status", status=401), ErrorKind.CREDENTIALS),
        (Fault("rate_limit", retry_after="1"), ErrorKind.RATE_LIMITED),
        (Fault("status", status=503, retry_after="1"), ErrorKind.RATE_LIMITED),
        (Fault("status", status=502), ErrorKind.SERVER_ERROR),
        (Fault("reset"), ErrorKind.UNREACHABLE),
        (Fault("status", status=404), ErrorKind.NOT_FOUND),
        (Fault("malformed"), ErrorKind.OTHER),
    ],
)
def test_a_failed_poll_stores_the_kind_of_its_error(
    fault: Fault, kind: ErrorKind, sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("1", queued_s=FOREVER))
    store.register(["1"], Registration(), NOW)
    sim.add_fault(fault)
    poller.tick(NOW)
    assert store.get("1").last_error_kind == kind
