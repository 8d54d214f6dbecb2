"""The daemon's notifications: the router its poller writes with, the senders, and the
site-wide events the daemon sees in its main loop (a long pause of the site, a database that
cannot be written).

The daemon calls `start` once the database is ready, `router` when it builds a poller,
`wake` after a tick, `watch` from its main loop, `reload` with a new config, `stop` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from structlog.typing import FilteringBoundLogger

from monitor.config import Settings
from monitor.errors import ConfigError, MonitorError
from monitor.jira.pacing import SiteGate
from monitor.logs import register_secret
from monitor.notify.channels import Channel, require_transports
from monitor.notify.delivery import Delivery
from monitor.notify.events import Notice, NotifyEvent
from monitor.notify.router import Router
from monitor.notify.transport import DeliveryError, apprise_plugin
from monitor.statefile import StoreTrouble
from monitor.store.outbox import Outbox
from monitor.store.queries import Queries

LONG_PAUSE_S = 60.0
"""A pause of the whole site at least this long is worth a message (`site.paused`)."""


def check_channels(channels: tuple[Channel, ...]) -> None:
    """Refuse a config whose channels cannot work (exit 78): Apprise missing for an Apprise
    URL, or a URL that Apprise does not understand. Imports Apprise only if a channel uses it."""
    require_transports(channels)
    for channel in channels:
        register_secret(channel.url)
        if not channel.is_exec:
            try:
                apprise_plugin(channel)
            except DeliveryError as exc:
                raise ConfigError(f"notify channel {channel.name!r}: url is {exc}") from None


class Notifications:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        log: FilteringBoundLogger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_channels(settings.notify)
        self.settings = settings
        self.engine = engine
        self.log = log
        self.clock = clock
        self.outbox = Outbox(engine)
        self.delivery = Delivery(settings.notify, self.outbox, log=log)
        self._pause_noticed: float | None = None
        self._store_failing = False

    def start(self) -> None:
        self.delivery.start()

    def router(self, settings: Settings) -> Router | None:
        """The router a poller built from `settings` writes its notifications with."""
        if not settings.notify:
            return None
        return Router(settings.notify, settings.jira.url, settings.jira.api_version)

    def wake(self) -> None:
        self.delivery.wake()

    def reload(self, settings: Settings) -> None:
        """Apply new channels (already checked by `check_channels`)."""
        self.settings = settings
        self.delivery.replace(settings.notify)

    def stop(self) -> None:
        self.delivery.stop()

    def watch(self, gate: SiteGate, store: StoreTrouble | None) -> None:
        """Announce a long pause of the site (once per pause) and a database that cannot be
        written (once per outage; from memory, since it cannot be written)."""
        if not self.settings.notify:
            return
        now = datetime.now(UTC)
        until = gate.paused_until()
        if until is None:
            self._pause_noticed = None
        elif self._pause_noticed is None and until - self.clock() >= LONG_PAUSE_S:
            self._pause_noticed = until
            self._site_paused(now, until - self.clock())
        if store is None:
            self._store_failing = False
        elif not self._store_failing:
            self._store_failing = True
            fields = {"reason": store.error, "action": "holding polls in memory until it can"}
            notice = Notice(NotifyEvent.STORE_WRITE_FAILED, now, fields)
            self.delivery.announce(notice, self.settings.notify)

    def _site_paused(self, now: datetime, pause_s: float) -> None:
        reason = "rate limited"
        try:
            failing = Queries(self.engine).failing_tasks()
            if failing and failing[0].kind == "credentials":
                reason = "credentials refused"
        except MonitorError:
            pass
        fields = {
            "reason": reason,
            "pause_s": round(pause_s, 1),
            "url": self.settings.jira.url,
            "action": f"paused every request to the site for {round(pause_s)}s",
        }
        router = self.router(self.settings)
        assert router is not None
        try:
            self.outbox.add(router.site_notices(NotifyEvent.SITE_PAUSED, now, fields))
        except MonitorError as exc:
            self.log.warning("notify.outbox_unavailable", error=str(exc))
        self.wake()
