"""`jtm run`: the daemon. APScheduler calls `Poller.tick`; signals only set flags.

The database is the single source of truth: the CLI writes registrations, the tick picks up
due rows, so nothing is kept in the scheduler's job store and a restart loses nothing.
APScheduler's defaults fight a poller (misfire grace of 1 s, runs skipped while one is in
flight), so the one job is coalescing, never misfires, and a skipped run is logged.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import __version__
from monitor.config import PollSettings, Settings, load_token
from monitor.database import SCHEMA_HEAD, create_db_engine, ensure_schema
from monitor.errors import JiraAuthError, JiraError
from monitor.jira import JiraClient
from monitor.logs import get_logger, register_secret
from monitor.poller import Poller, TickReport
from monitor.retention import RETENTION_EVERY_S, apply_retention
from monitor.states import TaskState
from monitor.store import Store

TICK_MIN_S = 0.25
TICK_MAX_S = 5.0
STOP_CHECK_S = 0.2


def tick_interval(poll: PollSettings) -> float:
    """How often the tick looks for due tasks: a quarter of the poll interval, within bounds."""
    return min(max(poll.interval_s / 4, TICK_MIN_S), TICK_MAX_S)


class Daemon:
    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = os.environ if env is None else env
        self.log = get_logger()
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(UTC)
        self._stop_signal: int | None = None

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; the tick in flight is finished first. Returns 0."""
        settings = self.settings
        token = load_token(settings, self.env)
        register_secret(token.reveal())
        engine = create_db_engine(settings.database.url)
        try:
            before = ensure_schema(engine, "upgrade")
        except BaseException:
            engine.dispose()
            raise
        if before != SCHEMA_HEAD:
            self.log.info("database.upgraded", **{"from": before, "to": SCHEMA_HEAD})
        store = Store(engine)
        concurrency = settings.poll.concurrency
        client = JiraClient(settings.jira, token, pool_size=concurrency)
        try:
            self._check_credentials(client)
        except BaseException:
            client.close()
            engine.dispose()
            raise
        workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jtm-poll")
        poller = Poller(
            store,
            client,
            settings.poll,
            settings.timeouts,
            workers,
            log=self.log,
            watched_since=self.started_at,
        )
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": SchedulerThreadPool(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=tick_interval(settings.poll)),
            args=(poller, store),
            id="tick",
            next_run_time=datetime.now(UTC),
        )
        self._schedule_retention(scheduler, store)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        counts = store.count_by_state()
        self.log.info(
            "daemon.started",
            version=__version__,
            tasks=counts.get(TaskState.WATCHING, 0),
            pid=os.getpid(),
            database=engine.url.render_as_string(hide_password=True),
            site=settings.jira.url,
        )
        scheduler.start()
        try:
            while self._stop_signal is None:
                time.sleep(STOP_CHECK_S)
        finally:
            scheduler.shutdown(wait=True)  # lets the tick in flight finish
            workers.shutdown(wait=True)
            client.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._beat(store, stopped=True)
            counts = store.count_by_state()
            engine.dispose()
            self.log.info(
                "daemon.stopped",
                version=__version__,
                tasks=counts.get(TaskState.WATCHING, 0),
                signal=signal.Signals(self._stop_signal).name if self._stop_signal else None,
            )
        return 0

    def _check_credentials(self, client: JiraClient) -> None:
        """Refuse to start on credentials Jira rejects (exit 77: a restart cannot help);
        start anyway when Jira is merely unreachable (it may come back)."""
        try:
            client.myself()
        except JiraAuthError as exc:
            self.log.error("daemon.credentials_rejected", error=str(exc))
            raise
        except JiraError as exc:
            self.log.warning(
                "jira.error", status=exc.status, transient=exc.transient, error=str(exc)
            )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        self.log.warning("daemon.tick_skipped", reason=f"apscheduler event {event.code}")

    def _tick(self, poller: Poller, store: Store) -> TickReport | None:
        try:
            report = poller.tick()
            self._beat(store, report=report)
        except Exception:
            # The scheduler would only log this and carry on; say it in our own words.
            self.log.exception("daemon.tick_failed")
            return None
        return report

    def _beat(self, store: Store, report: TickReport | None = None, stopped: bool = False) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "heartbeat_at": now,
            "next_poll_at": store.next_poll_at(),
            "stopped_at": now if stopped else None,
        }
        if report is not None:
            values |= {"last_tick_at": now, "last_tick_polls": report.polled}
        store.beat(self.instance, values)

    # -- retention: prune old snapshots at start, then daily (monitor/retention.py) ----------

    def _schedule_retention(self, scheduler: BackgroundScheduler, store: Store) -> None:
        # Its own thread, so that a long first prune never delays a tick.
        scheduler.add_executor(SchedulerThreadPool(max_workers=1), "retention")
        scheduler.add_job(
            self._prune,
            IntervalTrigger(seconds=RETENTION_EVERY_S),
            args=(store,),
            id="retention",
            executor="retention",
            next_run_time=datetime.now(UTC),
        )

    def _prune(self, store: Store) -> None:
        try:
            keep_s = self.settings.retention.snapshots_s  # read now: a reload may change it
            apply_retention(store, keep_s, datetime.now(UTC), log=self.log)
        except Exception:
            self.log.exception("retention.failed")
