"""The optional services a daemon runs beside its scheduler: the metrics endpoint, the
notifications, and its part in sharing the database with other instances.

Each is off unless configured, and each has its moment in the daemon's life, which the
daemon keeps (`monitor.daemon`): `claim` before migrating; `open` once the database is
migrated (sharing's wiring, the endpoint serving, the notifications built); `share` once the
first runtime's gate exists; the notifications started after the scheduler, stopped after the
last writes; the endpoint closed before the engine is disposed; `release` last.

Several instances (`monitor.sharing`). On PostgreSQL, instances on any hosts share the tasks:
due tasks are claimed with a lease, the daemon's main loop syncs the site's pause and this
instance's share of the rate cap once a second, and retention takes a daily turn. On SQLite a
second daemon on the same file is refused at start (`claim`).

Metrics (`monitor.metrics`). With `[metrics] listen`, an `Endpoint` is built at once (its
`Recorder` is the one `Telemetry` the daemon's parts report to: the backlog, the gate, and
every runtime's client and poller through the `Builder`); it serves once the database is
open. Each instance serves its own: its counters are its own, the census is the database's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import IO, TYPE_CHECKING

from structlog.typing import FilteringBoundLogger

from monitor.config import Settings
from monitor.jira.pacing import SiteGate
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.notify.service import Notifications
from monitor.sharing import Sharing, exclusive_daemon, is_shared
from monitor.store import Store

if TYPE_CHECKING:
    from monitor.metrics.endpoint import Endpoint


class Services:
    """One daemon's optional services, built and started in the order its life needs."""

    def __init__(self, settings: Settings, instance: str, log: FilteringBoundLogger) -> None:
        self.instance = instance
        self.log = log
        self.endpoint = _metrics_endpoint(settings)
        self.telemetry: Telemetry = self.endpoint.recorder if self.endpoint else NO_TELEMETRY
        self.sharing: Sharing | None = None
        """This instance's part in sharing a PostgreSQL database with others (None: alone)."""
        self.notify: Notifications | None = None  # built with the database (`open`)
        self._sole: IO[bytes] | None = None  # on SQLite, the lock that keeps others off

    def claim(self, database_url: str) -> None:
        """On SQLite, keep any other daemon off this file until `release`."""
        self._sole = exclusive_daemon(database_url)

    def open(self, settings: Settings, store: Store, current: Callable[[], Settings]) -> None:
        """Once the database is migrated: this instance's part in sharing it, the endpoint
        serving (reading the settings in force through `current`), the notifications built
        (started by `start_notifications`, after the scheduler)."""
        if is_shared(settings):
            self.sharing = Sharing(store, self.instance, settings, self.log)
        if self.endpoint is not None:
            self.endpoint.start(store.engine, current)
        self.notify = Notifications(settings, store.engine, self.log)

    def share(self, gate: SiteGate, beat: Callable[[], None]) -> None:
        """Join the other instances, if shared: the first runtime's `gate` takes this
        instance's share of the rate cap; `beat` writes the heartbeat."""
        if self.sharing is not None:
            self.sharing.start(gate, beat)

    def sync(self, gate: SiteGate | None, settings: Settings) -> None:
        """From the main loop: the site's pause and this instance's share of the rate cap,
        synced with the other instances once a second (`Sharing.sync_if_due`)."""
        if self.sharing is not None and gate is not None:
            self.sharing.sync_if_due(gate, settings)

    def rate_changed(self, settings: Settings, gate: SiteGate) -> None:
        """A reload built a new `gate` for a new `jira.max_rps`: it takes this instance's
        share from its first request."""
        if self.sharing is not None:
            self.sharing.settings = settings
            self.sharing.apply(gate)

    def retention_turn(self, now: datetime, every_s: float) -> bool:
        """Whether this instance prunes now: always when alone; when shared, the instance
        that takes the day's turn."""
        return self.sharing is None or self.sharing.retention_turn(now, every_s)

    def reloaded(self, settings: Settings) -> None:
        if self.notify is not None:
            self.notify.reload(settings)

    def wake(self) -> None:
        """After a tick: the senders look at the outbox now."""
        if self.notify is not None:
            self.notify.wake()

    def start_notifications(self) -> None:
        if self.notify is not None:
            self.notify.start()

    def stop_notifications(self) -> None:
        if self.notify is not None:
            self.notify.stop()

    def close_endpoint(self) -> None:
        """Stop serving metrics (before the engine the census reads is disposed)."""
        if self.endpoint is not None:
            self.endpoint.close()

    def release(self) -> None:
        """Let the next daemon on this SQLite file start."""
        if self._sole is not None:
            self._sole.close()
            self._sole = None


def _metrics_endpoint(settings: Settings) -> Endpoint | None:
    """The metrics endpoint if `[metrics] listen` is set; the metrics library is imported only
    then."""
    if settings.metrics.listen is None:
        return None
    from monitor.metrics.endpoint import Endpoint

    return Endpoint(settings.metrics.listen)
