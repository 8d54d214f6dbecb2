"""Several daemon instances on one database: what each must do to share the work.

On PostgreSQL any number of `jtm run` processes, on any hosts, share the registered tasks:

- due tasks are claimed with a lease (`monitor.store.shared.Claims`), so each poll is made by
  one instance, and the tasks of an instance that died are polled by the others once their
  lease ends: the lease is one poll interval (at least `jira.timeout`, the longest a request
  may take), so they are polled within two intervals of falling due;
- the site's rate cap holds for the site: each instance paces at `max_rps / n` for the `n`
  live instances of the registry (the heartbeat rows), and claims no more tasks at a time
  than it can send in half a lease at that pace; a joining instance registers first and waits
  one sync before its first request, so that the others have lowered their pace by then;
  one that was stopped past its leases sends nothing for them (`LeasedApi`);
- a rate-limit pause seen by one instance is published to the database at once, and adopted
  by every other at its next sync (once a second, from the daemon's main loop, whatever a
  tick does); an adopted pause counts in the adopting instance's metrics as a rate-limit
  pause (each instance's `jtm_jira_paused_seconds_total` is the time it was paused), its
  own pause coming back from the database does not count twice;
- retention takes a daily turn: one instance prunes, the others skip that day's run.

On SQLite one daemon at a time: a second one on the same database file is refused
(`exclusive_daemon`), with a message that points to PostgreSQL. SQLite's single writer would
serialise the instances anyway, and its file is on one host.

Clocks: the shared pause is a UTC time, so hosts' clocks must agree to within a second or two
(NTP), as they must for Jira's own timestamps.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url
from structlog.typing import FilteringBoundLogger

from monitor.config import Settings
from monitor.database import describe_url
from monitor.errors import ClientClosed, StoreError
from monitor.jira import TaskInfo
from monitor.jira.api import TaskApi
from monitor.jira.pacing import SiteGate
from monitor.metrics.site import PauseReason
from monitor.records import STALE_AFTER_S
from monitor.sqlite_path import sqlite_file
from monitor.store import Store
from monitor.store.shared import (
    RETENTION,
    SITE_PAUSE,
    Claims,
    Leases,
    extend_shared,
    live_instances,
    shared_until,
    take_turn,
)
from monitor.taskref import TaskRef

SYNC_EVERY_S = 1.0
"""How often an instance adopts the others' pause and recounts the live instances."""

_PUBLISH_SLACK_S = 0.5
"""A local pause is published only if it ends this much later than the shared one."""


def is_shared(settings: Settings) -> bool:
    """True if `database.url` lets several instances share the work (PostgreSQL)."""
    return make_url(settings.database.url).get_backend_name() == "postgresql"


def lease_s(settings: Settings) -> float:
    """How long a claim on a due task lasts: one poll interval, but no shorter than the
    longest a request may take."""
    return max(settings.poll.interval_s, settings.jira.timeout_s)


def claims_for(settings: Settings, instances: int, leases: Leases) -> Claims:
    """Claims no larger than this instance can send, at its share of the rate cap, within
    half a lease (so the last of a batch is sent well before its lease ends)."""
    lease = lease_s(settings)
    rate = settings.jira.max_rps / max(1, instances)
    return Claims(lease, max(1, math.floor(rate * lease / 2)), leases)


class LeasedApi:
    """A `TaskApi` that refuses to ask about a task whose lease this instance lost (it was
    stopped past it): the request is dropped as at a stop, and the poll is someone else's."""

    def __init__(self, api: TaskApi, leases: Leases) -> None:
        self._api = api
        self._leases = leases

    def get_task(self, ref: TaskRef) -> TaskInfo:
        if not self._leases.held(ref):
            raise ClientClosed("not sent: the lease on this task ran out")
        return self._api.get_task(ref)

    def cancel_task(self, task_id: str) -> None:
        self._api.cancel_task(task_id)


@dataclass(slots=True)
class Sharing:
    """One instance's part in sharing the work (PostgreSQL only); safe from one thread."""

    store: Store
    instance: str
    settings: Settings
    log: FilteringBoundLogger
    instances: int = 1
    leases: Leases = field(default_factory=Leases)
    _synced_at: float = field(default=-math.inf)
    _published: datetime | None = None  # the end of the last pause this instance published

    def guard(self, api: TaskApi) -> TaskApi:
        """`api`, sending no request for a task whose lease ran out (`LeasedApi`)."""
        return LeasedApi(api, self.leases)

    def start(self, gate: SiteGate, register: Callable[[], object]) -> None:
        """Join the others: `register` this instance (its heartbeat row), take its share of
        the rate, and, if others run, give them one sync to lower theirs before this one
        sends anything (the rate cap holds while an instance joins)."""
        register()
        self.instances = max(1, live_instances(self.store.engine, _utcnow(), STALE_AFTER_S))
        self.apply(gate)
        self._synced_at = time.monotonic()
        if self.instances > 1:
            time.sleep(SYNC_EVERY_S * 1.5)

    def sync_if_due(self, gate: SiteGate, settings: Settings) -> None:
        """`sync` once `SYNC_EVERY_S` has passed since the last; never raises (a database
        that cannot be read now is tried again at the next)."""
        monotonic = time.monotonic()
        if monotonic - self._synced_at < SYNC_EVERY_S:
            return
        self._synced_at = monotonic
        self.settings = settings
        try:
            self.sync(gate, datetime.now(UTC), monotonic)
        except Exception as exc:
            self.log.warning("daemon.sync_failed", error=str(exc))

    def sync(self, gate: SiteGate, now: datetime, monotonic: float) -> None:
        """Publish this instance's rate-limit pause, adopt the others', and take this
        instance's share of the rate cap."""
        engine = self.store.engine
        shared = shared_until(engine, SITE_PAUSE)
        local = gate.paused_until()
        if local is not None:
            until = now + timedelta(seconds=local - monotonic)
            if shared is None or until > shared + timedelta(seconds=_PUBLISH_SLACK_S):
                extend_shared(engine, SITE_PAUSE, self.instance, until, now)
                self._published = until
        if shared is not None and shared > now:
            published = self._published
            ours = published is not None and shared <= published + timedelta(
                seconds=_PUBLISH_SLACK_S
            )
            # Another instance's pause counts in this one's metrics; this one's own, back
            # from the database, was counted when its rate-limit answer came.
            gate.pause((shared - now).total_seconds(), None if ours else PauseReason.RATE_LIMITED)
        counted = live_instances(engine, now, STALE_AFTER_S)
        if counted != self.instances and counted > 0:
            self.log.info("daemon.instances_changed", instances=counted, was=self.instances)
            self.instances = counted
        self.apply(gate)

    def publish_pause(self, seconds: float) -> None:
        """Tell the other instances that the site is paused for `seconds` from now (from the
        worker that got the rate-limit answer); never raises: the next sync tries again."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=seconds)
        try:
            extend_shared(self.store.engine, SITE_PAUSE, self.instance, until, now)
            self._published = until
        except Exception as exc:
            self.log.warning("daemon.sync_failed", error=str(exc))

    def retention_turn(self, now: datetime, every_s: float) -> bool:
        """True if this instance runs retention now: no other did in the last `every_s`
        (less a margin, so that the same instance keeps its daily slot)."""
        until = now + timedelta(seconds=every_s * 0.9)
        return take_turn(self.store.engine, RETENTION, self.instance, now, until)

    def apply(self, gate: SiteGate) -> None:
        """Pace `gate` at this instance's share, and claim no more than it can send; a
        rate-limit answer it records is published at once (`publish_pause`)."""
        gate.on_rate_limited = self.publish_pause
        gate.share(self.instances)
        self.store.claims = claims_for(self.settings, self.instances, self.leases)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def exclusive_daemon(url: str) -> IO[bytes] | None:
    """On a SQLite file, the lock that keeps a second daemon off it; None for other URLs.

    A lock (`flock`) on a file beside the database, held for the daemon's life and released
    by the kernel when the process ends, however it ends: a crash never leaves it behind.
    Raises StoreError when another daemon holds it.
    """
    path = sqlite_file(make_url(url))
    if path is None:
        return None
    lock_path = Path(os.path.realpath(path)).with_name(path.name + ".daemon-lock")
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 (held for the daemon's life)
    except OSError as exc:
        raise StoreError(f"cannot create {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(32).decode(errors="replace").strip() or "?"
        handle.close()
        raise StoreError(
            f"another jtm daemon (pid {holder}) already runs on {describe_url(url)}: SQLite "
            "serves one daemon; to run several instances, use PostgreSQL "
            '(database.url = "postgresql+psycopg://...", see the README)'
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle
