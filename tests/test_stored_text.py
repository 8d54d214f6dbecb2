"""Jira's text is stored with a bound: a site that sends huge messages cannot fill the disk."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.config import PollSettings
from monitor.jira import TaskInfo
from monitor.observation import observe
from monitor.outcome import MAX_STORED_TEXT_CHARS, stored_text
from monitor.poller import Poller
from monitor.simulator import Simulator, TaskScript
from monitor.store import Registration, Store
from tests.helpers import snapshots

NOW = datetime.now(UTC)
HUGE = "x" * 300_000
CUT = "x" * MAX_STORED_TEXT_CHARS + f"...(truncated: {300_000 - MAX_STORED_TEXT_CHARS} more chars)"


def test_stored_text_is_cut_with_a_marker() -> None:
    assert stored_text(None) is None
    assert stored_text("short") == "short"
    exact = "y" * MAX_STORED_TEXT_CHARS
    assert stored_text(exact) == exact
    assert stored_text(HUGE) == CUT
    assert len(CUT) < MAX_STORED_TEXT_CHARS + 50


def test_a_huge_message_and_description_are_stored_cut(store: Store) -> None:
    store.register(["1"], Registration(), NOW)
    info = TaskInfo(
        task_id="1", status="RUNNING", progress=5, message=HUGE, description=HUGE,
        result=None, elapsed_runtime_ms=10, submitted=NOW, started=NOW, finished=None,
        last_update=NOW,
    )  # fmt: skip
    poll = PollSettings()
    assert store.record_polls([observe(store.get("1"), info, NOW, poll)])[0]
    task = store.get("1")
    assert (task.message, task.description) == (CUT, CUT)
    [snapshot] = snapshots(store, "1")
    assert snapshot.message == CUT

    # The same huge message again is no change: no snapshot per poll (compared as stored).
    later = NOW + timedelta(seconds=30)
    again = observe(task, replace(info, progress=5), later, poll)
    assert again.seen is not None and not again.seen.changed


def test_a_huge_description_from_the_site_is_stored_cut(
    sim: Simulator, store: Store, poller: Poller
) -> None:
    sim.add_task(TaskScript("7", queued_s=1_000_000, description=HUGE))
    store.register(["7"], Registration(), NOW)
    poller.tick(NOW)
    assert store.get("7").description == CUT
