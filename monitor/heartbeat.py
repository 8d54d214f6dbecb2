"""The daemon's heartbeat: the row `jtm status` reads to tell a live daemon from a stuck one.

It is written after every tick, and also during a long tick (thousands of due tasks under a
low `jira.max_rps`, or a Jira that times out): each Jira call that returns refreshes it once
the last write is `BEAT_EVERY_S` old, as does the daemon's main loop while the site is paused.
A hung tick makes no calls, so its heartbeat still goes stale. Each write is a short
transaction of its own, after the call, never held across one.

While the database cannot be written, neither can the row: a write that fails for the storage
goes to the daemon's `Backlog` (its one report of the outage), and the daemon's state file
(`monitor.statefile`), which the row names, says what the row cannot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from monitor import __version__
from monitor.backlog import Backlog
from monitor.errors import StoreUnavailable
from monitor.jira import TaskInfo
from monitor.jira.api import TaskApi
from monitor.pollreport import TickReport
from monitor.statefile import StateFile
from monitor.store import Store
from monitor.taskref import TaskRef

BEAT_EVERY_S = 30.0
"""During a long tick the heartbeat is refreshed this often: well inside `STALE_AFTER_S`."""


class HeartbeatWriter:
    """Writes one daemon instance's heartbeat row (and state file); safe from any thread."""

    def __init__(
        self,
        instance: str,
        started_at: datetime,
        log: FilteringBoundLogger,
        backlog: Backlog,
        state: StateFile | None = None,
    ) -> None:
        self.instance = instance
        self.started_at = started_at
        self.log = log
        self.backlog = backlog
        self.state = state or StateFile(None, instance)
        self._lock = threading.Lock()  # guards written_at
        self.written_at = time.monotonic()
        """When the heartbeat was last written (monotonic); the daemon's start counts."""

    def write(
        self, store: Store, report: TickReport | None = None, *, stopped: bool = False
    ) -> None:
        """Write the heartbeat now: after a tick (`report`), at a stop, or when due."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "next_poll_at": store.next_poll_at(),
            "stopped_at": now if stopped else None,
            "state_file": None if self.state.path is None else str(self.state.path),
        }
        if report is not None:
            values |= {"last_tick_at": now, "last_tick_polls": report.polled}
        store.beat(self.instance, values)
        with self._lock:
            self.written_at = max(self.written_at, time.monotonic())

    def after_tick(self, store: Store, report: TickReport) -> None:
        """The heartbeat after a tick; while the database cannot be written, the state file
        says so (it is removed once writes work again)."""
        try:
            self.write(store, report)
        except StoreUnavailable as exc:
            self.backlog.failed(exc)
        else:
            self.backlog.written()  # ends an outage that only the heartbeat saw
        self.state.update(self.backlog.state())

    def at_stop(self, store: Store) -> None:
        """The last heartbeat, if the database lets us; the state file goes either way."""
        try:
            self.write(store, stopped=True)
        except StoreUnavailable as exc:
            self.log.error("store.write_failed", error=str(exc), tasks_waiting=len(self.backlog))
        self.state.remove()

    def write_if_due(self, store: Store, now: float) -> bool:
        """Write the heartbeat if the last write is `BEAT_EVERY_S` old at `now` (monotonic).

        Of threads that find it due at once, one writes. Never raises: a busy database must
        not fail the poll that called it.
        """
        with self._lock:
            if now - self.written_at < BEAT_EVERY_S:
                return False
            self.written_at = now
        try:
            self.write(store)
        except StoreUnavailable as exc:
            self.backlog.failed(exc)
            return False
        except Exception as exc:
            self.log.warning("daemon.heartbeat_failed", error=str(exc))
            return False
        return True

    def pulsing(self, api: TaskApi, store: Store) -> TaskApi:
        """`api`, each of whose calls is followed by `write_if_due`, successful or not."""
        return _Pulsing(api, lambda: self.write_if_due(store, time.monotonic()))


class _Pulsing:
    def __init__(self, api: TaskApi, pulse: Callable[[], object]) -> None:
        self._api = api
        self._pulse = pulse

    def get_task(self, ref: TaskRef) -> TaskInfo:
        try:
            return self._api.get_task(ref)
        finally:
            self._pulse()

    def cancel_task(self, task_id: str) -> None:
        try:
            self._api.cancel_task(task_id)
        finally:
            self._pulse()
