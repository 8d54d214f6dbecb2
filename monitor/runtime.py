"""What the daemon's ticks work with (`Runtime`), how it is built, and how a reload hands a
new one to the next tick (`PendingRuntime`).

Everything a tick uses (settings, Jira client, worker pool, poller) is one immutable
`Runtime`. A reload builds a new one in the main thread and leaves it pending; the next tick
swaps it in before it starts and closes the retired one, whose workers are idle by then (one
tick at a time). So a tick never sees a mix of old and new settings, and nothing in flight is
torn down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from monitor.backlog import Backlog
from monitor.config import Secret, Settings
from monitor.heartbeat import HeartbeatWriter
from monitor.jira import JiraClient
from monitor.jira.api import TaskApi
from monitor.jira.pacing import SiteGate
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.notify.service import Notifications
from monitor.poller import Poller
from monitor.store import Store


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a tick works with, built from one `Settings` and replaced whole on reload.

    The poller is rebuilt with it: it must keep no state of its own beyond its settings
    (everything that must survive is in the database, or in the daemon's one `Backlog`).
    """

    settings: Settings
    client: JiraClient
    workers: ThreadPoolExecutor
    poller: Poller

    def close(self) -> None:
        """Release the pool and connections; the shared gate stays open."""
        self.workers.shutdown(wait=True)
        self.client.close()


@dataclass(frozen=True, slots=True)
class Builder:
    """Builds runtimes for one daemon: what every runtime of its life shares (its one
    `telemetry` among them: every client and poller reports to the daemon's metrics).

    `guard` wraps what the poller asks Jira through (an instance sharing the database with
    others sends nothing for a task whose lease it lost, `monitor.sharing.LeasedApi`)."""

    store: Store
    heartbeat: HeartbeatWriter
    backlog: Backlog
    log: FilteringBoundLogger
    watched_since: datetime
    guard: Callable[[TaskApi], TaskApi] | None = None
    telemetry: Telemetry = NO_TELEMETRY
    notify: Notifications | None = None  # None: a daemon without notifications (tests)

    def __call__(self, settings: Settings, token: Secret, gate: SiteGate) -> Runtime:
        concurrency = settings.poll.concurrency
        client = JiraClient(
            settings.jira, token, pool_size=concurrency, gate=gate, telemetry=self.telemetry
        )
        workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jtm-poll")
        api = self.heartbeat.pulsing(client, self.store)
        poller = Poller(
            self.store,
            api if self.guard is None else self.guard(api),
            settings.poll,
            settings.timeouts,
            workers,
            log=self.log,
            watched_since=self.watched_since,
            backlog=self.backlog,
            telemetry=self.telemetry,
            notify=None if self.notify is None else self.notify.router(settings),
        )
        return Runtime(settings, client, workers, poller)


class PendingRuntime:
    """The runtime a reload built and the next tick has not yet taken (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None

    def exchange(self, runtime: Runtime | None) -> Runtime | None:
        """Leave `runtime` pending (None: take the pending one out); returns the one that was.

        A reload puts its runtime in and closes what comes back (built by an earlier reload
        and never used); a tick takes the pending one out and swaps it in.
        """
        with self._lock:
            previous, self._runtime = self._runtime, runtime
        return previous
