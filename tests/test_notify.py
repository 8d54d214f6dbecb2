"""Notifications end to end: the real daemon against the simulator, a real loopback receiver
(Apprise's json://), real SQLite."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import DatabaseSettings, JiraSettings, Settings
from monitor.jira.pacing import SiteGate
from monitor.logs import get_logger
from monitor.notify.channels import Channel
from monitor.notify.service import Notifications
from monitor.simulator import Simulator, TaskScript
from monitor.simulator.faults import Fault
from monitor.statefile import StoreTrouble
from monitor.store import Store
from monitor.store.outbox import Outbox
from tests.conftest import SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for
from tests.receiver import Receiver, fast, notify_config, outbox

pytestmark = pytest.mark.slow

FIELDS = {
    "event_id",
    "idempotency_key",
    "event",
    "at",
    "kind",
    "task_id",
    "label",
    "status",
    "progress",
    "message",
    "duration_s",
    "url",
    "reason",
    "timeout_kind",
    "action",
    "title",
    "text",
}


def by_task(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        out.setdefault(event["task_id"], []).append(event["event"])
    return {k: sorted(v) for k, v in out.items()}


ENV = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)


def test_each_trigger_reaches_the_channels_that_take_it(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    hours = 3600.0
    sim.add_task(TaskScript("201", queued_s=0, run_s=0.5, outcome="COMPLETE"))
    sim.add_task(TaskScript("202", queued_s=0, run_s=0.5, outcome="FAILED"))
    # Over its one-hour run limit: warned only (per-task action), keeps running.
    sim.add_task(TaskScript("203", queued_s=0, run_s=100 * hours, started_ago_s=2 * hours))
    # Over the limit and cancelled by the monitor: a timeout, then finished CANCELLED.
    sim.add_task(
        TaskScript(
            "204", queued_s=0, run_s=100 * hours, started_ago_s=2 * hours, cancel_delay_s=0.2
        )
    )
    # Cannot be cancelled: Jira refuses, task.cancel_failed.
    sim.add_task(
        TaskScript("205", queued_s=0, run_s=100 * hours, started_ago_s=2 * hours, cancellable=False)
    )
    # Accepts the cancel and ignores it: task.cancel_unconfirmed after the attempts.
    sim.add_task(
        TaskScript(
            "206", queued_s=0, run_s=100 * hours, started_ago_s=2 * hours, ignore_cancel=True
        )
    )
    # "207" does not exist: task.gone (not_found).
    failures = receiver.url.replace("/hook", "/failures")
    config = notify_config(
        tmp_path,
        sim,
        [
            fast("everything", receiver.url),
            fast("failures", failures, events=["task.finished"], statuses=["FAILED", "dead"]),
            fast("migrations", receiver.url + "?m=1", labels=["migration*"], events=["task.*"]),
        ],
        timeouts={"run": "1h", "cancel_grace": "1s"},
    )
    assert jtm(config, "add", "201", "202", "204", "205", "206", "207", env=ENV).returncode == 0
    assert (
        jtm(config, "add", "203", "--action", "warn", "--label", "Migration B", env=ENV).returncode
        == 0
    )
    daemon = Daemon(config, ENV)
    try:
        daemon.wait_event("daemon.started")
        expected = {
            "201": ["task.finished"],
            "202": ["task.finished"],
            "203": ["task.timeout"],
            "204": ["task.finished", "task.timeout"],
            "205": ["task.cancel_failed", "task.timeout"],
            "206": ["task.cancel_unconfirmed", "task.timeout"],
            "207": ["task.gone"],
        }
        total = sum(len(v) for v in expected.values()) + 1 + 1  # failures + migrations

        wait_for(lambda: len(receiver.delivered()) >= total, 60, "every notification")
    finally:
        assert daemon.stop() == 0

    hook = receiver.delivered()
    assert len(hook) == total  # nothing twice
    keys = [r.key for r in hook]
    assert len(set(keys)) == len(keys)
    for item in hook:
        assert item.key == item.body["idempotency_key"] == item.event["idempotency_key"]
        assert set(item.event) >= FIELDS
        assert item.event["kind"] == "task"
        assert item.body["title"] == item.event["title"]
    events = [r.event for r in hook]
    everything_events = [e for e in events if e["task_id"]]
    counted = by_task(everything_events)
    # the "everything" channel got each event; "failures" one more for 202; "migrations" one
    # more for 203
    assert counted["202"] == ["task.finished", "task.finished"]
    assert counted["203"] == ["task.timeout", "task.timeout"]
    for task_id, names in expected.items():
        if task_id not in ("202", "203"):
            assert counted[task_id] == names, task_id
    finished = {e["task_id"]: e for e in events if e["event"] == "task.finished"}
    assert finished["201"]["status"] == "COMPLETE"
    assert finished["202"]["status"] == "FAILED"
    assert finished["204"]["status"] == "CANCELLED"
    assert finished["204"]["cancelled_by_monitor"] is True
    assert finished["201"]["url"] == f"{sim.url}/rest/api/3/task/201"
    assert finished["201"]["duration_s"] > 0
    assert "finished COMPLETE" in finished["201"]["title"]
    timeouts = {e["task_id"]: e for e in events if e["event"] == "task.timeout"}
    assert timeouts["203"]["timeout_kind"] == "run"
    assert timeouts["203"]["label"] == "Migration B"
    assert "warn" in timeouts["203"]["action"]
    assert timeouts["204"]["action"] == "cancel requested"
    gone = next(e for e in events if e["event"] == "task.gone")
    assert gone["reason"] == "not_found"
    assert all(row["state"] == "sent" for row in outbox(tmp_path))
    assert not daemon.events("notify.sender_failed")
    delivered = daemon.events("notify.delivered")
    assert len(delivered) == total
    assert {"channel", "event_id", "attempts"} <= set(delivered[0])


def test_a_receiver_that_fails_hangs_and_comes_back_gets_everything_once(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.mode = "fail"
    for i in range(6):
        sim.add_task(TaskScript(str(300 + i), queued_s=0, run_s=0.3 + i * 0.3, outcome="FAILED"))
    config = notify_config(tmp_path, sim, [fast("hook", receiver.url)])
    assert jtm(config, "add", *[str(300 + i) for i in range(6)], env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        daemon.wait_event("notify.retrying", 3)
        receiver.mode = "hang"  # held past the channel's 1 s timeout
        daemon.wait_event("notify.retrying", 5)
        receiver.mode = "ok"
        wait_for(lambda: len(receiver.events()) >= 6, 30, "every event")
        wait_for(lambda: all(r["state"] == "sent" for r in outbox(tmp_path)), 10, "all sent")
        # polling kept going meanwhile: each task finished on its own schedule
        assert len(daemon.events("task.finished")) == 6
    finally:
        assert daemon.stop() == 0
    ids = [e["event_id"] for e in receiver.events()]
    assert sorted(set(ids)) == sorted({r["event_id"] for r in outbox(tmp_path)})
    # a hung request may have been answered after the client gave up: then it was sent
    # again under the same key
    by_key: dict[str | None, set[str]] = {}
    for item in receiver.delivered():
        by_key.setdefault(item.key, set()).add(json.dumps(item.event.get("event_ids")))
    assert all(len(v) == 1 for v in by_key.values())
    assert not daemon.events("notify.failed")


def test_after_the_retry_limit_the_failure_is_recorded_logged_once_and_shown(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.mode = "fail"
    sim.add_task(TaskScript("401", queued_s=0, run_s=0.2, outcome="DEAD"))
    config = notify_config(tmp_path, sim, [fast("pager", receiver.url, max_attempts=3)])
    assert jtm(config, "add", "401", env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        daemon.wait_event("notify.failed")
        status = jtm(config, "status", "--json", env=ENV)
        listed = jtm(config, "notify", "list", "--json", env=ENV)
        text = jtm(config, "status", env=ENV)
    finally:
        assert daemon.stop() == 0
    assert len(daemon.events("notify.failed")) == 1
    failed = daemon.events("notify.failed")[0]
    assert failed["attempts"] == 3 and failed["channel"] == "pager"
    assert len(receiver.requests) == 3
    assert json.loads(status.stdout)["notifications"] == {"pending": 0, "failed": 1}
    assert "1 failed" in text.stdout
    (channel,) = json.loads(listed.stdout)
    assert channel["outbox"] == {"pending": 0, "failed": 1, "sent": 0}
    assert channel["url"] == "json://..."  # never the whole URL
    assert "HTTP" in channel["last_error"] or channel["last_error"]
    (row,) = outbox(tmp_path)
    assert row["state"] == "failed" and row["attempts"] == 3


def test_a_burst_becomes_a_bounded_number_of_grouped_messages(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    ids = [str(500 + i) for i in range(40)]
    for task_id in ids:
        sim.add_task(TaskScript(task_id, queued_s=0, run_s=0.2, outcome="FAILED"))
    config = notify_config(tmp_path, sim, [fast("chat", receiver.url, max_per_minute=3)])
    assert jtm(config, "add", *ids, env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        wait_for(lambda: len(receiver.events()) >= 40, 60, "every event, grouped")
    finally:
        assert daemon.stop() == 0
    assert len(receiver.delivered()) <= 3
    groups = [r.event for r in receiver.delivered() if r.event["event"] == "group"]
    assert groups
    assert groups[-1]["count"] == len(groups[-1]["event_ids"]) > 5
    assert len(groups[-1]["events"]) == 5
    assert "... and" in groups[-1]["text"]
    assert len({e["event_id"] for e in receiver.events()}) == 40


def test_an_exec_channel_gets_the_event_on_stdin(sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "events"
    script = tmp_path / "hook.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(out)!r}, 'a') as fh:\n"
        "    fh.write(os.environ['JTM_IDEMPOTENCY_KEY'] + ' ' + sys.stdin.read() + '\\n')\n"
    )
    sim.add_task(TaskScript("601", queued_s=0, run_s=0.2, outcome="FAILED"))
    url = f"exec:{sys.executable} {script}"
    config = notify_config(tmp_path, sim, [fast("script", url)])
    assert jtm(config, "add", "601", "--label", "nightly", env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        wait_for(lambda: out.exists() and out.read_text().count("\n") >= 1, 30, "the script")
    finally:
        assert daemon.stop() == 0
    key, _, body = out.read_text().strip().partition(" ")
    event = json.loads(body)
    assert event["idempotency_key"] == key
    assert event["task_id"] == "601" and event["status"] == "FAILED"
    assert event["label"] == "nightly"


def test_notify_test_reports_each_channel(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    config = notify_config(
        tmp_path,
        sim,
        [fast("good", receiver.url), fast("bad", "json://127.0.0.1:9/nothing-listens")],
    )
    good = jtm(config, "notify", "test", "good", env=ENV)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok    good")
    (item,) = receiver.delivered()
    assert item.event["event"] == "notify.test"
    assert item.key == item.event["idempotency_key"]
    both = jtm(config, "notify", "test", env=ENV)
    assert both.returncode == 1
    assert "FAIL  bad" in both.stdout
    assert "nothing-listens" not in both.stdout + both.stderr
    missing = jtm(config, "notify", "test", "nope", env=ENV)
    assert missing.returncode == 3
    assert "no notify channel named 'nope'" in missing.stderr


def test_a_long_pause_of_the_site_is_announced_once(
    sim: Simulator, receiver: Receiver, tmp_path: Path
) -> None:
    sim.add_task(TaskScript("901", queued_s=0, run_s=600))
    sim.add_fault(Fault("rate_limit", retry_after="90", count=1, task_id="901"))
    config = notify_config(tmp_path, sim, [fast("ops", receiver.url, events=["site.*"])])
    assert jtm(config, "add", "901", env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        wait_for(lambda: len(receiver.delivered()) >= 1, 30, "site.paused")
    finally:
        assert daemon.stop() == 0
    (item,) = receiver.delivered()
    event = item.event
    assert event["event"] == "site.paused"
    assert event["reason"] == "rate limited"
    assert event["pause_s"] >= 60
    assert event["kind"] is None and event["task_id"] is None
    assert event["url"] == sim.url


def test_a_database_that_cannot_be_written_is_announced_from_memory(
    store: Store, receiver: Receiver, sim: Simulator
) -> None:
    channel = Channel(
        "ops", receiver.url, timeout_s=1.0, retry_backoff_s=0.1, retry_max_backoff_s=0.4
    )
    settings = Settings(
        database=DatabaseSettings(str(store.engine.url)),
        jira=JiraSettings(url=sim.url, email="a@b.c"),
        notify=(channel,),
    )
    notifications = Notifications(settings, store.engine, get_logger())
    notifications.start()
    try:
        trouble = StoreTrouble("database or disk is full", datetime.now(UTC), 3)
        gate = SiteGate(10)
        notifications.watch(gate, trouble)
        notifications.watch(gate, trouble)  # still the same outage: once
        wait_for(lambda: len(receiver.delivered()) >= 1, 10, "store.write_failed")
    finally:
        notifications.stop()
    (item,) = receiver.delivered()
    assert item.event["event"] == "store.write_failed"
    assert item.event["reason"] == "database or disk is full"
    assert item.key == item.event["idempotency_key"]
    assert outbox_rows(store) == 0  # it could not have been written


def outbox_rows(store: Store) -> int:
    return len(Outbox(store.engine).counts())


def test_a_reload_applies_new_channels(sim: Simulator, receiver: Receiver, tmp_path: Path) -> None:
    sim.add_task(TaskScript("951", queued_s=0, run_s=600))
    config = notify_config(tmp_path, sim, [])
    assert jtm(config, "add", "951", env=ENV).returncode == 0
    daemon = Daemon(config, ENV)
    try:
        daemon.wait_event("daemon.started")
        notify_config(tmp_path, sim, [fast("late", receiver.url)])
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_event("daemon.reloaded")
        sim.add_task(TaskScript("952", queued_s=0, run_s=0.2, outcome="FAILED"))
        assert jtm(config, "add", "952", env=ENV).returncode == 0
        wait_for(lambda: len(receiver.delivered()) >= 1, 30, "the new channel's message")
    finally:
        assert daemon.stop() == 0
    assert "notify" in daemon.events("daemon.reloaded")[0]["changed"]
    (item,) = receiver.delivered()
    assert item.event["task_id"] == "952"
