"""`jtm run`: the daemon. APScheduler calls the tick; signals only set flags.

The database is the single source of truth: the CLI writes registrations, the tick picks up
due rows, so nothing is kept in the scheduler's job store and a restart loses nothing.
The scheduler, the migration and the start's checks are set up by `monitor.startup`.

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

Life. `run` is three steps: `_start` (token, migrations, the first `Runtime`, the scheduler,
READY=1), `_loop` (the main thread: reloads, and the heartbeat during a rate-limit pause)
until `stop` is called (the SIGTERM/SIGINT handler calls it), and `_stop` (close the gates,
let the requests in flight finish, write what is held, the last heartbeat).

Reload (`monitor.reload`). Everything a tick uses is one immutable `Runtime`
(`monitor.runtime`): a reload builds a new one and leaves it in `PendingRuntime`, and the next
tick swaps it in. The site's request gate (`SiteGate`) carries over while `jira.max_rps` is
unchanged, so a reload never lets a burst past the rate cap. `jira.url` and `database.url`
are the daemon's identity (the watched IDs belong to one site and one database): a reload
that changes either is refused as a whole, as is an invalid config or an unreadable token,
and the old config stays in force. So is a change of `metrics.listen`: the endpoint's socket
is bound once, at the start.

Services (`monitor.services`): the metrics endpoint, the notifications and the sharing of
the database with other instances (`monitor.sharing`) run beside the scheduler; the daemon
starts and stops each at its moment.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from monitor import __version__
from monitor.backlog import Backlog
from monitor.config import Secret, Settings, credential_forms, load_token
from monitor.daemon_status import counts_text, live_counts, status_line
from monitor.database import SCHEMA_HEAD, create_db_engine
from monitor.errors import MonitorError
from monitor.heartbeat import HeartbeatWriter
from monitor.jira.pacing import SiteGate
from monitor.logs import configure_logging, get_logger, register_secret
from monitor.pollreport import TickReport
from monitor.reload import reread
from monitor.retention import RETENTION_EVERY_S, apply_retention
from monitor.runtime import Builder, PendingRuntime, Runtime
from monitor.services import Services
from monitor.startup import check_credentials, check_watchdog, migrate, scheduler, tick_interval
from monitor.statefile import StateFile, state_dir
from monitor.states import TaskState
from monitor.store import Store
from monitor.systemd import Notifier, Watchdog

STOP_CHECK_S = 0.2

_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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
        self.stopping = threading.Event()
        """Set by `stop`: no new round of polls, no cancel sent, prunes cut short."""
        self.stop_signal: int | None = None
        self._reload_requested = False
        self._runtime: Runtime | None = None
        self._pending = PendingRuntime()
        self._gate: SiteGate | None = None  # the newest runtime's (built in the main thread)
        self._build: Builder | None = None
        self._token: Secret | None = None
        self.services = Services(settings, self.instance, self.log)
        self.telemetry = self.services.telemetry
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
            store, scheduler = self._start()
            try:
                self._loop(store, scheduler)
            finally:
                self._stop(store, scheduler)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.notifier.close()
            self.services.release()  # the next daemon on this SQLite file may start

    def stop(self, signum: int | None = None) -> None:
        """Ask the daemon to stop (`signum`: the signal that asked, for the log)."""
        self.stop_signal = signum
        self.stopping.set()

    @property
    def runtime(self) -> Runtime:
        """The runtime ticks use now."""
        runtime = self._runtime
        assert runtime is not None, "the daemon has not started"
        return runtime

    def install(self, store: Store, token: Secret, gate: SiteGate) -> Runtime:
        """Build the first runtime from the daemon's settings and use it (the start does
        this; so can a test that drives `tick` itself)."""
        sharing = self.services.sharing
        self._build = Builder(
            store,
            self.heartbeat,
            self.backlog,
            self.log,
            self.started_at,
            guard=None if sharing is None else sharing.guard,
            telemetry=self.telemetry,
            notify=self.services.notify,
        )
        self._runtime, self._gate = self._build(self.settings, token, gate), gate
        return self._runtime

    # -- the three steps of its life (main thread) ----------------------------------------------

    def _start(self) -> tuple[Store, BackgroundScheduler]:
        """Read the token, migrate, build the first runtime, check the credentials, start
        the scheduler, then the notifications; READY=1 last."""
        settings = self.settings
        self._token = load_token(settings, self.env)
        for form in credential_forms(settings.jira, self._token):
            register_secret(form)
        engine = create_db_engine(settings.database.url)
        store = self._open(engine, self._token)
        jobs = scheduler(settings, store, self.tick, self.prune, self.log)
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
        check_watchdog(self.watchdog, settings, self.log)
        jobs.start()
        self.services.start_notifications()
        self.notifier.ready(status_line(counts, None, None))
        return store, jobs

    def _open(self, engine: Engine, token: Secret) -> Store:
        """Migrate, open the services, build the first runtime and check the credentials;
        on any failure undo what was opened (the runtime, the endpoint, the engine)."""
        settings = self.settings
        try:
            self.services.claim(settings.database.url)  # released by `run`
            before = migrate(engine, settings, self.log, self.stopping)
            if before != SCHEMA_HEAD:
                self.log.info("database.upgraded", **{"from": before, "to": SCHEMA_HEAD})
            store = Store(engine)
            self.services.open(settings, store, lambda: self.settings)
            runtime = self.install(store, token, self.new_gate(settings))
            self.services.share(runtime.client.gate, lambda: self.heartbeat.write(store))
            check_credentials(runtime.client, self.log)
        except BaseException:
            if self._runtime is not None:
                self._runtime.close()
            self.services.close_endpoint()
            engine.dispose()
            raise
        return store

    def _loop(self, store: Store, scheduler: BackgroundScheduler) -> None:
        """Until `stop`: reloads, the instances' sync (once a second, `Sharing.sync_if_due`),
        and the heartbeat while the site is paused."""
        while not self.stopping.is_set():
            if self._reload_requested:
                self._reload_requested = False
                self._reload(store, scheduler)
            self.services.sync(self._gate, self.settings)
            if self._site_paused():
                # A tick waiting out a rate-limit pause (at most MAX_PAUSE_S, a deadline
                # the daemon set itself) is not hung: a restart would forget the pause
                # and hit the site again at once.
                self.watchdog.feed()
                self.heartbeat.write_if_due(store, time.monotonic())
            if self.services.notify is not None:
                self.services.notify.watch(self.runtime.client.gate, self.backlog.state())
            self.stopping.wait(STOP_CHECK_S)

    def _stop(self, store: Store, scheduler: BackgroundScheduler) -> None:
        """Drop what waits, let what is in flight finish, write what is held, say goodbye."""
        self.notifier.stopping("stopping: finishing the requests in flight")
        if self._site_paused():
            self.log.warning("daemon.stop_during_rate_limit_pause")
        # Requests waiting for their turn (pacing, or a rate-limit pause) are not in flight:
        # closing the gate drops them at once, and the tick drops those not yet started.
        pending = self._pending.exchange(None)  # never to be used now
        for gate in {self.runtime.client.gate, self._gate}:
            if gate is not None:
                gate.close()
        scheduler.shutdown(wait=True)  # lets the requests in flight finish
        for item in (self.runtime, pending):
            if item is not None:
                item.close()
                item.client.gate.close()
        unwritten = self.last_writes(store)
        self.services.stop_notifications()
        counts = live_counts(store) or {}
        self.services.close_endpoint()
        store.engine.dispose()
        self.log.info(
            "daemon.stopped",
            version=__version__,
            tasks=counts.get(TaskState.WATCHING, 0),
            signal=signal.Signals(self.stop_signal).name if self.stop_signal else None,
            **({"tasks_unwritten": unwritten} if unwritten else {}),
        )

    def last_writes(self, store: Store) -> int:
        """At a stop: write what is held and the last heartbeat if the database lets us;
        returns how many tasks' polls are lost (made again at the next start)."""
        self.runtime.poller.flush()
        self.heartbeat.at_stop(store)
        return len(self.backlog)

    def _site_paused(self) -> bool:
        return self.runtime.client.gate.paused_until() is not None

    # -- signals (the handlers only set flags; the main loop acts) ------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self.stop(signum)

    # -- reload (main thread) -------------------------------------------------------------------

    def _reload(self, store: Store, scheduler: BackgroundScheduler) -> None:
        """Re-read the config; apply it whole, or refuse it whole and keep the old one."""
        self.notifier.reloading()
        old = self.settings
        try:
            new, token, changed = reread(old, self.config_path, self.env, self._token)
            runtime = None
            if any(not key.startswith("log.") for key in changed):
                assert self._build is not None
                gate = self._gate_for(new)
                runtime, self._gate = self._build(new, token, gate), gate
        except MonitorError as exc:
            self.log.error("daemon.reload_failed", error=str(exc), config=_path(old.source))
            self.notifier.ready(f"reload failed, old config kept: {exc}")
            return
        for form in credential_forms(new.jira, token):
            register_secret(form)
        self._token, self.settings = token, new
        self.services.reloaded(new)
        if runtime is not None and (stale := self._pending.exchange(runtime)) is not None:
            stale.close()  # built by an earlier reload and never used by a tick
        if new.log != old.log:
            configure_logging(new.log.format, new.log.level)
        if tick_interval(new.poll) != tick_interval(old.poll):
            scheduler.reschedule_job(
                "tick", trigger=IntervalTrigger(seconds=tick_interval(new.poll))
            )
        self.log.info("daemon.reloaded", changed=changed, config=_path(new.source))
        check_watchdog(self.watchdog, new, self.log)
        at = datetime.now(UTC)
        counts = counts_text(live_counts(store))
        self.notifier.ready(f"config reloaded at {at:%H:%M:%S} UTC; {counts}")

    def _gate_for(self, settings: Settings) -> SiteGate:
        """The newest runtime's gate while the rate is unchanged, so its budget carries over."""
        gate = self._gate
        assert gate is not None
        if gate.max_rps == settings.jira.max_rps:
            return gate
        gate = self.new_gate(settings)
        self.services.rate_changed(settings, gate)
        return gate

    def new_gate(self, settings: Settings) -> SiteGate:
        """A gate for the site at `settings`' rate, reporting its pauses to the metrics."""
        return SiteGate(settings.jira.max_rps, telemetry=self.telemetry)

    # -- the tick (scheduler thread) ------------------------------------------------------------

    def tick(self, store: Store) -> TickReport | None:
        """One tick with the newest runtime (what the scheduler calls); None if it failed."""
        runtime = self._swap_in()
        started = time.perf_counter()
        try:
            report = runtime.poller.tick(keep_going=self._keep_going)
            self.services.wake()
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

    def _swap_in(self) -> Runtime:
        """The runtime a reload left pending, if any, replaces the current one, which is
        closed: the previous tick is over, so its workers are idle."""
        fresh = self._pending.exchange(None)
        if fresh is not None:
            retired, self._runtime = self._runtime, fresh
            if retired is not None:
                retired.close()
        return self.runtime

    def _keep_going(self) -> bool:
        return not self.stopping.is_set()

    def prune(self, store: Store) -> None:
        """Apply the retention policy (what the scheduler calls); cut short by `stop`."""
        try:
            keep_s = self.settings.retention.snapshots_s  # read now: a reload may change it
            if not self.services.retention_turn(datetime.now(UTC), RETENTION_EVERY_S):
                self.log.info("retention.skipped", reason="another instance has today's turn")
                return
            apply_retention(
                store, keep_s, datetime.now(UTC), log=self.log, keep_going=self._keep_going
            )
        except Exception:
            self.log.exception("retention.failed")

    def _report_status(self, store: Store, report: TickReport) -> None:
        trouble = self.backlog.state()
        self.notifier.status(status_line(live_counts(store), report, datetime.now(UTC), trouble))


def _path(source: Path | None) -> str | None:
    return None if source is None else str(source)
