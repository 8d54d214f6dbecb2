"""The gauges read from the database at each scrape: what the tasks are, not what happened.

The database is the truth about the tasks (the CLI registers and removes them too), so the
daemon keeps no count of its own. A scrape reads, in one read transaction, tasks per state and
Jira status (one grouped query, with the oldest watched task's start) and the RUNNING tasks'
last observations, whose stall is worked out with the daemon's own arithmetic
(`monitor.deadlines`, as `jtm watch` does). `jtm metrics` reads the same. With `[metrics]
per_task`, a further query reads the watched tasks for the per-task series, at most
`PER_TASK_MAX` of them (the ones registered first).
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
from monitor.deadlines import ages, nearest_limit, stored_facts
from monitor.errors import MonitorError
from monitor.metrics.names import TASK_KINDS, status_label
from monitor.records import TASK_COLUMNS, Task
from monitor.schema import TASKS
from monitor.states import JiraStatus, TaskState, TimeoutKind

PER_TASK_MAX = 500
"""At most this many tasks get per-task series (`[metrics] per_task`): a bound on the series
one scrape can add, whatever is registered."""


@dataclass(frozen=True, slots=True)
class Group:
    """The tasks of one kind, state and Jira status."""

    kind: str
    state: str
    status: str | None
    count: int
    oldest_start: datetime | None  # Jira's submitted, else the registration


@dataclass(frozen=True, slots=True)
class Tally:
    """What a scrape reads: the groups, and the RUNNING tasks (for the longest stall)."""

    groups: list[Group]
    running: list[Task]


def read_tally(engine: Engine) -> Tally:
    started = func.min(func.coalesce(TASKS.c.jira_submitted_at, TASKS.c.registered_at))
    grouped = select(TASKS.c.kind, TASKS.c.state, TASKS.c.status, func.count(), started).group_by(
        TASKS.c.kind, TASKS.c.state, TASKS.c.status
    )
    running = select(*TASK_COLUMNS).where(
        TASKS.c.state == TaskState.WATCHING, TASKS.c.status == JiraStatus.RUNNING
    )
    with transaction(engine) as conn:
        groups = [Group(*row) for row in conn.execute(grouped)]
        return Tally(groups, [Task.from_row(row) for row in conn.execute(running)])


def read_watched(engine: Engine, limit: int = PER_TASK_MAX) -> list[Task]:
    query = (
        select(*TASK_COLUMNS)
        .where(TASKS.c.state == TaskState.WATCHING)
        .order_by(TASKS.c.registered_at, TASKS.c.kind, TASKS.c.task_id)
        .limit(limit)
    )
    with transaction(engine) as conn:
        return [Task.from_row(row) for row in conn.execute(query)]


def longest_stall(running: list[Task], now: datetime, kind: str | None = None) -> float:
    """The longest stall among `running` (those of `kind`, if given), as the `stall` limit
    measures it; 0 if none."""
    stalls = [0.0]
    for task in running:
        if kind is not None and task.kind != kind:
            continue
        facts = stored_facts(task)
        if facts is not None:
            stalls.append(ages(facts, now).get(TimeoutKind.STALL, 0.0))
    return max(stalls)


def task_families(tally: Tally, now: datetime) -> list[Metric]:
    """`jtm_tasks`, the oldest watched task's age and the longest stall, each by task kind
    (every kind has its age and stall series, 0 when it has no such task)."""
    tasks = GaugeMetricFamily(
        "jtm_tasks",
        "Registered tasks by kind, the monitor's state and Jira's status (OTHER: a status "
        "Jira does not document; empty: not polled successfully yet).",
        labels=["kind", "state", "status"],
    )
    counts: dict[tuple[str, str, str], int] = {}
    for group in tally.groups:
        key = (group.kind, group.state, status_label(group.status))
        counts[key] = counts.get(key, 0) + group.count
    for (kind, state, status), count in sorted(counts.items()):
        tasks.add_metric([kind, state, status], count)
    age = GaugeMetricFamily(
        "jtm_oldest_watched_task_age_seconds",
        "Age of the oldest watched task, from Jira's submitted (else its registration); 0 "
        "when none is watched.",
        labels=["kind"],
    )
    for kind in TASK_KINDS:
        starts = [
            group.oldest_start
            for group in tally.groups
            if group.kind == kind
            and group.state == TaskState.WATCHING
            and group.oldest_start is not None
        ]
        oldest = max((now - min(starts)).total_seconds(), 0.0) if starts else 0
        age.add_metric([kind], oldest)
    stall = GaugeMetricFamily(
        "jtm_longest_stall_seconds",
        "The longest time a RUNNING task has gone without progress, message, lastUpdate or "
        "elapsedRuntime changing, as the stall limit measures it; 0 when none is running.",
        labels=["kind"],
    )
    for kind in TASK_KINDS:
        stall.add_metric([kind], longest_stall(tally.running, now, kind))
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
            progress.add_metric([task.kind, task.task_id], task.progress / 100)
        nearest = nearest_limit(task, settings.timeouts, now)
        if nearest is not None:
            remaining.add_metric([task.kind, task.task_id, nearest[0]], nearest[1])
    return [progress, remaining]


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
            families = task_families(read_tally(self.engine), now)
            settings = self.settings()
            if settings.metrics.per_task:
                families += per_task_families(read_watched(self.engine), settings, now)
        except MonitorError:
            return
        yield from families
