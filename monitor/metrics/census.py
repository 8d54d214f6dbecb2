"""The gauges read from the database at each scrape: what the tasks are, not what happened.

The database is the truth about the tasks (the CLI registers and removes them too), so the
daemon keeps no count of its own: one grouped query per scrape reads tasks per kind, state and
Jira status, with the oldest watched task's start and the oldest progress among running tasks.
`jtm metrics` reads the same. With `[metrics] per_task`, a second query reads the watched tasks
for the per-task series, at most `PER_TASK_MAX` of them (the ones registered first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from monitor.config import Settings
from monitor.database import transaction
from monitor.errors import MonitorError
from monitor.metrics.names import TASK_KIND, status_label
from monitor.records import Task
from monitor.schema import TASKS
from monitor.states import JiraStatus, TaskState
from monitor.watch import nearest_limit

PER_TASK_MAX = 500
"""At most this many tasks get per-task series (`[metrics] per_task`): a bound on the series
one scrape can add, whatever is registered."""


@dataclass(frozen=True, slots=True)
class Group:
    """The tasks of one kind, state and Jira status."""

    state: str
    status: str | None
    count: int
    oldest_start: datetime | None  # Jira's submitted, else the registration
    oldest_change: datetime | None  # the monitor last saw progress, message or lastUpdate move


def read_groups(engine: Engine) -> list[Group]:
    """The one query of a scrape: tasks grouped by state and status."""
    started = func.min(func.coalesce(TASKS.c.jira_submitted_at, TASKS.c.registered_at))
    changed = func.min(func.coalesce(TASKS.c.last_change_at, TASKS.c.first_seen_at))
    query = select(TASKS.c.state, TASKS.c.status, func.count(), started, changed).group_by(
        TASKS.c.state, TASKS.c.status
    )
    with transaction(engine) as conn:
        return [Group(*row) for row in conn.execute(query)]


def read_watched(engine: Engine, limit: int = PER_TASK_MAX) -> list[Task]:
    query = (
        select(TASKS)
        .where(TASKS.c.state == TaskState.WATCHING)
        .order_by(TASKS.c.registered_at, TASKS.c.task_id)
        .limit(limit)
    )
    with transaction(engine) as conn:
        return [Task.from_row(row) for row in conn.execute(query)]


def task_families(groups: list[Group], now: datetime) -> list[Metric]:
    """`jtm_tasks`, the oldest watched task's age and the longest stall, from `groups`."""
    tasks = GaugeMetricFamily(
        "jtm_tasks",
        "Registered tasks by kind, the monitor's state and Jira's status (OTHER: a status "
        "Jira does not document; empty: not polled successfully yet).",
        labels=["kind", "state", "status"],
    )
    counts: dict[tuple[str, str], int] = {}
    oldest: datetime | None = None
    stalled: datetime | None = None
    for group in groups:
        key = (group.state, status_label(group.status))
        counts[key] = counts.get(key, 0) + group.count
        if group.state != TaskState.WATCHING:
            continue
        if group.oldest_start is not None and (oldest is None or group.oldest_start < oldest):
            oldest = group.oldest_start
        if group.status == JiraStatus.RUNNING and group.oldest_change is not None:
            stalled = group.oldest_change
    for (state, status), count in sorted(counts.items()):
        tasks.add_metric([TASK_KIND, state, status], count)
    age = GaugeMetricFamily(
        "jtm_oldest_watched_task_age_seconds",
        "Age of the oldest watched task, from Jira's submitted (else its registration); 0 "
        "when none is watched.",
        labels=["kind"],
    )
    age.add_metric([TASK_KIND], _since(oldest, now))
    stall = GaugeMetricFamily(
        "jtm_longest_stall_seconds",
        "The longest time a RUNNING task has gone without progress, message or lastUpdate "
        "changing, as the monitor saw it; 0 when none is running.",
        labels=["kind"],
    )
    stall.add_metric([TASK_KIND], _since(stalled, now))
    return [tasks, age, stall]


def per_task_families(watched: list[Task], settings: Settings, now: datetime) -> list[Metric]:
    """`jtm_task_progress_ratio` and `jtm_task_limit_remaining_seconds` per watched task."""
    progress = GaugeMetricFamily(
        "jtm_task_progress_ratio",
        "A watched task's progress as Jira last reported it, from 0 to 1.",
        labels=["kind", "task_id"],
    )
    remaining = GaugeMetricFamily(
        "jtm_task_limit_remaining_seconds",
        "Seconds left to a watched task's nearest limit (negative: passed), by that limit.",
        labels=["kind", "task_id", "limit"],
    )
    for task in watched:
        if task.progress is not None:
            progress.add_metric([TASK_KIND, task.task_id], task.progress / 100)
        nearest = nearest_limit(task, settings.timeouts, now)
        if nearest is not None:
            remaining.add_metric([TASK_KIND, task.task_id, nearest[0]], nearest[1])
    return [progress, remaining]


def _since(instant: datetime | None, now: datetime) -> float:
    return 0.0 if instant is None else max((now - instant).total_seconds(), 0.0)


class Census(Collector):
    """Reads the tasks' gauges from the database at each collection (a scrape).

    `settings` is called at each collection, so that a reload's `per_task` and timeouts apply.
    A database that cannot be read leaves these series out of that scrape: the endpoint still
    answers with the counters, and the gap shows in Prometheus.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Callable[[], Settings],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        try:
            families = task_families(read_groups(self.engine), now)
            settings = self.settings()
            if settings.metrics.per_task:
                families += per_task_families(read_watched(self.engine), settings, now)
        except MonitorError:
            return
        yield from families
