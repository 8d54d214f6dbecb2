"""The steps and checks of a daemon's start (`monitor.daemon`): migrating (waiting for a
shared database), the scheduler and its jobs, and the checks of the credentials and of
systemd's watchdog.

APScheduler's defaults fight a poller (misfire grace of 1 s, runs skipped while one is in
flight), so the tick's job is coalescing, never misfires, and a skipped run is logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from structlog.typing import FilteringBoundLogger

from monitor.config import PollSettings, Settings
from monitor.database import ensure_schema
from monitor.errors import JiraAuthError, JiraError, JiraRateLimited, StoreUnavailable
from monitor.jira import JiraClient
from monitor.retention import RETENTION_EVERY_S
from monitor.sharing import is_shared
from monitor.store import Store
from monitor.systemd import Watchdog

TICK_MIN_S = 0.25
TICK_MAX_S = 5.0
DB_WAIT_S = 120.0
DB_RETRY_S = 2.0


def tick_interval(poll: PollSettings) -> float:
    """How often the tick looks for due tasks: a quarter of the poll interval, within bounds."""
    return min(max(poll.interval_s / 4, TICK_MIN_S), TICK_MAX_S)


def migrate(
    engine: Engine, settings: Settings, log: FilteringBoundLogger, stopping: threading.Event
) -> str | None:
    """`ensure_schema`; on a shared database (PostgreSQL, another host) that cannot be
    reached, try again every `DB_RETRY_S` for up to `DB_WAIT_S`: a server restarting, or
    not up yet at boot, is not a broken config (exit 78, which systemd does not restart).
    `stopping` set ends the wait."""
    deadline = time.monotonic() + DB_WAIT_S
    while True:
        try:
            return ensure_schema(engine, "upgrade")
        except StoreUnavailable as exc:
            if not is_shared(settings) or time.monotonic() >= deadline:
                raise
            log.warning("database.unavailable", error=str(exc), retry_s=DB_RETRY_S)
            if stopping.wait(DB_RETRY_S):
                raise


def scheduler(
    settings: Settings,
    store: Store,
    tick: Callable[[Store], object],
    prune: Callable[[Store], None],
    log: FilteringBoundLogger,
) -> BackgroundScheduler:
    """The tick's job, and retention's in a thread of its own (so that a long first
    prune never delays a tick); both run at once, then every interval. Not started."""

    def on_skipped(event: JobExecutionEvent) -> None:
        log.warning("daemon.tick_skipped", reason=f"apscheduler event {event.code}")

    built = BackgroundScheduler(
        timezone=UTC,
        executors={"default": SchedulerThreadPool(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    built.add_listener(on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    every = IntervalTrigger(seconds=tick_interval(settings.poll))
    now = datetime.now(UTC)
    built.add_job(tick, every, args=(store,), id="tick", next_run_time=now)
    built.add_executor(SchedulerThreadPool(max_workers=1), "retention")
    built.add_job(
        prune,
        IntervalTrigger(seconds=RETENTION_EVERY_S),
        args=(store,),
        id="retention",
        executor="retention",
        next_run_time=now,
    )
    return built


def check_credentials(client: JiraClient, log: FilteringBoundLogger) -> None:
    """Refuse to start on credentials Jira rejects (exit 77: a restart cannot help);
    start anyway when Jira is merely unreachable (it may come back)."""
    try:
        client.myself()
    except JiraAuthError as exc:
        log.error("daemon.credentials_rejected", error=str(exc))
        raise
    except JiraRateLimited as exc:
        log.warning("jira.rate_limited", retry_after_s=exc.retry_after_s, wait_s=exc.pause_s)
    except JiraError as exc:
        log.warning("jira.error", status=exc.status, transient=exc.transient, error=str(exc))


def check_watchdog(watchdog: Watchdog, settings: Settings, log: FilteringBoundLogger) -> None:
    """Warn when systemd's watchdog would fire between two ticks that are on time."""
    timeout = watchdog.timeout_s
    if timeout is not None and tick_interval(settings.poll) * 2 > timeout:
        log.warning(
            "daemon.watchdog_too_short",
            watchdog_s=timeout,
            tick_interval_s=tick_interval(settings.poll),
            hint="raise WatchdogSec= to well above the tick interval and a tick's duration",
        )
