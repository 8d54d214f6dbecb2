"""`jtm run`: the daemon. APScheduler calls the tick; signals only set flags.

The database is the single source of truth: the CLI writes registrations, the tick picks up
due rows, so nothing is kept in the scheduler's job store and a restart loses nothing.
APScheduler's defaults fight a poller (misfire grace of 1 s, runs skipped while one is in
flight), so the one job is coalescing, never misfires, and a skipped run is logged.

Signals (handled in the main thread, between sleeps): SIGTERM and SIGINT stop the daemon: the
requests of the tick not yet sent are dropped (those tasks stay due and are polled at the next
start), the ones in flight finish within `jira.timeout` (a deadline on the whole request), and
no cancel is sent; SIGHUP reloads the config. Under systemd (`monitor.systemd`) the daemon
sends READY=1 once the database is migrated and the scheduler started, STATUS= after every tick,
WATCHDOG=1 only from ticks that completed, RELOADING=1/READY=1 around a reload, STOPPING=1.

Heartbeat (`monitor.heartbeat`). The row `jtm status` reads is written after every tick and
during a long one, from its Jira calls and from the main loop while the site is paused.

A database that cannot be written (disk full, read-only) stops nothing: the poller holds the
outcomes and each task's schedule in memory (`monitor.backlog`, one for the daemon's life, so
a reload keeps it) and writes them once it can. Meanwhile STATUS= and the state file
(`monitor.statefile`) say so, since the heartbeat row cannot.

Reload. Everything a tick uses (settings, Jira client, worker pool, poller) is one immutable
`Runtime`. A reload builds a new one in the main thread and leaves it pending; the next tick
swaps it in before it starts and closes the retired one, whose workers are idle by then (one
tick at a time). So a tick never sees a mix of old and new settings, and nothing in flight is
torn down. The site's request gate (`SiteGate`) carries over while `jira.max_rps` is unchanged,
so a reload never lets a burst past the rate cap. `jira.url` and `database.url` are the
daemon's identity (the watched IDs belong to one site and one database): a reload that
changes either is refused as a whole, as is an invalid config or an unreadable token, and the
old config stays in force.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import __version__
from monitor.backlog import Backlog
from monitor.config import (
    PollSettings,
    Secret,
    Settings,
    credential_forms,
    load_settings,
    load_token,
)
from monitor.database import SCHEMA_HEAD, create_db_engine, ensure_schema
from monitor.errors import ConfigError, JiraAuthError, JiraError, JiraRateLimited, MonitorError
from monitor.heartbeat import HeartbeatWriter
from monitor.jira import JiraClient
from monitor.jira.pacing import SiteGate
from monitor.logs import configure_logging, get_logger, register_secret
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.poller import Poller, TickReport
from monitor.retention import RETENTION_EVERY_S, apply_retention
from monitor.statefile import StateFile, state_dir
from monitor.states import TaskState
from monitor.store import Store
from monitor.systemd import Notifier, Watchdog, counts_text, status_line

if TYPE_CHECKING:
    from monitor.metrics.endpoint import Endpoint

TICK_MIN_S = 0.25
TICK_MAX_S = 5.0
STOP_CHECK_S = 0.2

RESTART_ONLY_KEYS = ("jira.url", "database.url", "metrics.listen")
"""Keys a reload refuses to change: the daemon's site, database and metrics address are fixed
for its life."""

_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def tick_interval(poll: PollSettings) -> float:
    """How often the tick looks for due tasks: a quarter of the poll interval, within bounds."""
    return min(max(poll.interval_s / 4, TICK_MIN_S), TICK_MAX_S)


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The config keys (`section.key`) whose values differ between `old` and `new`."""
    changed = []
    for section in fields(Settings):
        if section.name == "source":
            continue
        before, after = getattr(old, section.name), getattr(new, section.name)
        for item in fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                changed.append(f"{section.name}.{item.name.removesuffix('_s')}")
    return changed


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a tick works with, built from one `Settings` and replaced whole on reload.

    The poller is rebuilt with it: it must keep no state of its own beyond its settings
    (everything that must survive is in the database).
    """

    settings: Settings
    client: JiraClient
    workers: ThreadPoolExecutor
    poller: Poller

    def close(self) -> None:
        """Release the pool and connections; the shared gate stays open."""
        self.workers.shutdown(wait=True)
        self.client.close()


class Daemon:
    def __init__(
        self,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
    ) -> None:
        """`config_path` is what `--config` named (None: the usual search); a reload reads the
        config the same way the start did."""
        self.settings = settings
        self.env = os.environ if env is None else env
        self.config_path = config_path
        self.log = get_logger()
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(UTC)
        self.notifier = Notifier(self.env, self.log)
        self.watchdog = Watchdog(self.notifier, self.env, os.getpid())
        self._stop_signal: int | None = None
        self._reload_requested = False
        self._swap = threading.Lock()  # guards _runtime and _pending
        self._runtime: Runtime | None = None
        self._pending: Runtime | None = None
        self._token: Secret | None = None
        self.endpoint = _metrics_endpoint(settings)
        self.telemetry: Telemetry = self.endpoint.recorder if self.endpoint else NO_TELEMETRY
        self.backlog = Backlog(self.log, telemetry=self.telemetry)
        state = StateFile(state_dir(self.env, settings.database.url), self.instance)
        self.heartbeat = HeartbeatWriter(
            self.instance, self.started_at, self.log, self.backlog, state
        )

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; the tick in flight is finished first. Returns 0."""
        # Handlers first: a SIGHUP's default action would kill a daemon still migrating.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _HANDLED_SIGNALS}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.notifier.close()

    def _run(self) -> int:
        settings = self.settings
        self._token = load_token(settings, self.env)
        for form in credential_forms(settings.jira, self._token):
            register_secret(form)
        engine = create_db_engine(settings.database.url)
        try:
            before = ensure_schema(engine, "upgrade")
            if before != SCHEMA_HEAD:
                self.log.info("database.upgraded", **{"from": before, "to": SCHEMA_HEAD})
            store = Store(engine)
            if self.endpoint is not None:
                self.endpoint.start(engine, lambda: self.settings)
            self._runtime = self._build(settings, self._token, self._new_gate(settings), store)
            self._check_credentials(self._runtime.client)
        except BaseException:
            if self._runtime is not None:
                self._runtime.close()
            if self.endpoint is not None:
                self.endpoint.close()
            engine.dispose()
            raise
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerThreadPool(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=tick_interval(settings.poll)),
            args=(store,),
            id="tick",
            next_run_time=datetime.now(UTC),
        )
        # Retention has a thread of its own, so that a long first prune never delays a tick.
        scheduler.add_executor(SchedulerThreadPool(max_workers=1), "retention")
        scheduler.add_job(
            self._prune,
            IntervalTrigger(seconds=RETENTION_EVERY_S),
            args=(store,),
            id="retention",
            executor="retention",
            next_run_time=datetime.now(UTC),
        )
        counts = store.count_by_state()
        self.log.info(
            "daemon.started",
            version=__version__,
            tasks=counts.get(TaskState.WATCHING, 0),
            pid=os.getpid(),
            database=engine.url.render_as_string(hide_password=True),
            site=settings.jira.url,
            watchdog_s=self.watchdog.timeout_s,
        )
        self._check_watchdog(settings)
        scheduler.start()
        self.notifier.ready(status_line(counts, None, None))
        try:
            while self._stop_signal is None:
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload(store, scheduler)
                if self._site_paused():
                    # A tick waiting out a rate-limit pause (at most MAX_PAUSE_S, a deadline
                    # the daemon set itself) is not hung: a restart would forget the pause
                    # and hit the site again at once.
                    self.watchdog.feed()
                    self.heartbeat.write_if_due(store, time.monotonic())
                time.sleep(STOP_CHECK_S)
        finally:
            self.notifier.stopping("stopping: finishing the requests in flight")
            if self._site_paused():
                self.log.warning("daemon.stop_during_rate_limit_pause")
            # Requests waiting for their turn (pacing, or a rate-limit pause) are not in flight:
            # closing the gate drops them at once, and the tick drops those not yet started.
            with self._swap:
                gates = {r.client.gate for r in (self._runtime, self._pending) if r is not None}
            for gate in gates:
                gate.close()
            scheduler.shutdown(wait=True)  # lets the requests in flight finish
            with self._swap:
                leftovers = [r for r in (self._runtime, self._pending) if r is not None]
            for item in leftovers:
                item.close()
                item.client.gate.close()
            unwritten = self._last_writes(store)
            counts = _counts(store) or {}
            if self.endpoint is not None:
                self.endpoint.close()
            engine.dispose()
            self.log.info(
                "daemon.stopped",
                version=__version__,
                tasks=counts.get(TaskState.WATCHING, 0),
                signal=signal.Signals(self._stop_signal).name if self._stop_signal else None,
                **({"tasks_unwritten": unwritten} if unwritten else {}),
            )
        return 0

    def _last_writes(self, store: Store) -> int:
        """At a stop: write what is held and the last heartbeat if the database lets us;
        returns how many tasks' polls are lost (made again at the next start)."""
        self._current().poller.flush(datetime.now(UTC))
        self.heartbeat.at_stop(store)
        return len(self.backlog)

    def _current(self) -> Runtime:
        with self._swap:
            runtime = self._runtime
        assert runtime is not None
        return runtime

    def _site_paused(self) -> bool:
        return self._current().client.gate.paused_until() is not None

    # -- signals (the handlers only set flags; the main loop acts) ------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stop_signal = signum

    # -- reload (main thread) -------------------------------------------------------------------

    def _reload(self, store: Store, scheduler: BackgroundScheduler) -> None:
        """Re-read the config; apply it whole, or refuse it whole and keep the old one."""
        self.notifier.reloading()
        old = self.settings
        try:
            new = load_settings(self.config_path, self.env)
            new.jira.require_url()
            changed = changed_keys(old, new)
            refused = [key for key in RESTART_ONLY_KEYS if key in changed]
            if refused:
                raise ConfigError(
                    f"{' and '.join(refused)} cannot change while the daemon runs: "
                    "restart the service to use the new value"
                )
            token = load_token(new, self.env)
            if token != self._token:
                changed.append("jira.token")
            runtime = None
            if any(not key.startswith("log.") for key in changed):
                runtime = self._build(new, token, self._gate_for(new), store)
        except MonitorError as exc:
            self.log.error("daemon.reload_failed", error=str(exc), config=_path(old.source))
            self.notifier.ready(f"reload failed, old config kept: {exc}")
            return
        for form in credential_forms(new.jira, token):
            register_secret(form)
        self._token = token
        if runtime is not None:
            with self._swap:
                stale, self._pending = self._pending, runtime
            if stale is not None:
                stale.close()  # built by an earlier reload and never used by a tick
        self.settings = new
        if new.log != old.log:
            configure_logging(new.log.format, new.log.level)
        if tick_interval(new.poll) != tick_interval(old.poll):
            scheduler.reschedule_job(
                "tick", trigger=IntervalTrigger(seconds=tick_interval(new.poll))
            )
        self.log.info("daemon.reloaded", changed=changed, config=_path(new.source))
        self._check_watchdog(new)
        at = datetime.now(UTC)
        self.notifier.ready(f"config reloaded at {at:%H:%M:%S} UTC; {counts_text(_counts(store))}")

    def _gate_for(self, settings: Settings) -> SiteGate:
        """The newest runtime's gate while the rate is unchanged, so its budget carries over."""
        with self._swap:
            newest = self._pending or self._runtime
        assert newest is not None
        gate = newest.client.gate
        return gate if gate.max_rps == settings.jira.max_rps else self._new_gate(settings)

    def _new_gate(self, settings: Settings) -> SiteGate:
        return SiteGate(settings.jira.max_rps, telemetry=self.telemetry)

    def _build(self, settings: Settings, token: Secret, gate: SiteGate, store: Store) -> Runtime:
        concurrency = settings.poll.concurrency
        client = JiraClient(
            settings.jira, token, pool_size=concurrency, gate=gate, telemetry=self.telemetry
        )
        workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jtm-poll")
        poller = Poller(
            store,
            self.heartbeat.pulsing(client, store),
            settings.poll,
            settings.timeouts,
            workers,
            log=self.log,
            watched_since=self.started_at,
            backlog=self.backlog,
            telemetry=self.telemetry,
        )
        return Runtime(settings, client, workers, poller)

    def _check_credentials(self, client: JiraClient) -> None:
        """Refuse to start on credentials Jira rejects (exit 77: a restart cannot help);
        start anyway when Jira is merely unreachable (it may come back)."""
        try:
            client.myself()
        except JiraAuthError as exc:
            self.log.error("daemon.credentials_rejected", error=str(exc))
            raise
        except JiraRateLimited as exc:
            self.log.warning(
                "jira.rate_limited", retry_after_s=exc.retry_after_s, wait_s=exc.pause_s
            )
        except JiraError as exc:
            self.log.warning(
                "jira.error", status=exc.status, transient=exc.transient, error=str(exc)
            )

    def _check_watchdog(self, settings: Settings) -> None:
        timeout = self.watchdog.timeout_s
        if timeout is not None and tick_interval(settings.poll) * 2 > timeout:
            self.log.warning(
                "daemon.watchdog_too_short",
                watchdog_s=timeout,
                tick_interval_s=tick_interval(settings.poll),
                hint="raise WatchdogSec= to well above the tick interval and a tick's duration",
            )

    # -- the tick (scheduler thread) ------------------------------------------------------------

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        self.log.warning("daemon.tick_skipped", reason=f"apscheduler event {event.code}")

    def _tick(self, store: Store) -> TickReport | None:
        with self._swap:
            retired = None
            if self._pending is not None:
                retired, self._runtime, self._pending = self._runtime, self._pending, None
        runtime = self._current()
        if retired is not None:
            retired.close()  # the previous tick is over: its workers are idle
        started = time.perf_counter()
        try:
            report = runtime.poller.tick(keep_going=lambda: self._stop_signal is None)
            self.heartbeat.after_tick(store, report)
            self.telemetry.tick(time.perf_counter() - started, datetime.now(UTC))
        except Exception as exc:
            # The scheduler would only log this and carry on; say it in our own words.
            self.log.exception("daemon.tick_failed")
            self.notifier.status(f"last tick failed at {datetime.now(UTC):%H:%M:%S} UTC: {exc}")
            return None
        # After a tick that did its work: a hung tick starves the watchdog.
        self.watchdog.feed()
        if self.notifier.enabled:
            self._report_status(store, report)
        return report

    def _prune(self, store: Store) -> None:
        try:
            keep_s = self.settings.retention.snapshots_s  # read now: a reload may change it
            apply_retention(
                store,
                keep_s,
                datetime.now(UTC),
                log=self.log,
                keep_going=lambda: self._stop_signal is None,
            )
        except Exception:
            self.log.exception("retention.failed")

    def _report_status(self, store: Store, report: TickReport) -> None:
        trouble = self.backlog.state()
        self.notifier.status(status_line(_counts(store), report, datetime.now(UTC), trouble))


def _metrics_endpoint(settings: Settings) -> Endpoint | None:
    """The metrics endpoint if `[metrics] listen` is set; the metrics library is imported only
    then."""
    if settings.metrics.listen is None:
        return None
    from monitor.metrics.endpoint import Endpoint

    return Endpoint(settings.metrics.listen)


def _counts(store: Store) -> dict[str, int] | None:
    """Tasks per state for STATUS=, which is advice: a busy database must not break a tick."""
    try:
        return store.count_by_state()
    except MonitorError:
        return None


def _path(source: Path | None) -> str | None:
    return None if source is None else str(source)
