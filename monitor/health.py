"""Is the monitor healthy? The facts behind `jtm status` (and the header of `jtm watch`).

The daemon writes its heartbeat at the end of every tick, and a tick runs at least every 5 s
(`startup.tick_interval`); a long tick (thousands of tasks under a low `jira.max_rps`) refreshes
it from its Jira calls every `heartbeat.BEAT_EVERY_S` (30 s). So a heartbeat older than
`STALE_AFTER_S` (2 minutes) means the daemon is stuck or gone; only a single Jira call of
over a minute and a half (a very long `jira.timeout`) calls for `jtm status --stale-after`.

Trouble is read from the tasks' last poll: each watched task whose last poll failed counts
under one kind of error (`ErrorKind`, stored with the error), credentials first. While the
database cannot be written, the daemon says so in its state file (`monitor.statefile`), named
by its heartbeat row: that trouble comes first, and the file's time counts as a heartbeat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from monitor.records import STALE_AFTER_S, Heartbeat
from monitor.statefile import StoreTrouble, read_state_file
from monitor.states import ErrorKind
from monitor.store.queries import FailingTask, Queries
from monitor.taskref import TaskRef

EXAMPLE_IDS = 5


class DaemonState(StrEnum):
    ALIVE = "alive"
    STALE = "stale"  # a heartbeat, but too old: stuck, killed, or the host slept
    STOPPED = "stopped"  # stopped cleanly (SIGTERM/SIGINT)
    NEVER_RAN = "never_ran"  # no heartbeat at all in this database


@dataclass(frozen=True, slots=True)
class DaemonHealth:
    state: DaemonState
    heartbeat: Heartbeat | None  # the instance the state is about
    age_s: float | None  # seconds since its last heartbeat
    stale_after_s: float
    others_alive: int = 0  # more instances beating on the same database (PostgreSQL)

    @property
    def alive(self) -> bool:
        return self.state == DaemonState.ALIVE


def daemon_health(
    heartbeats: Sequence[Heartbeat], now: datetime, stale_after_s: float = STALE_AFTER_S
) -> DaemonHealth:
    """The liveness of the daemon, from every instance's heartbeat row."""

    def age(beat: Heartbeat) -> float:
        return (now - beat.heartbeat_at).total_seconds()

    running = sorted(
        (b for b in heartbeats if b.stopped_at is None), key=lambda b: b.heartbeat_at, reverse=True
    )
    fresh = [b for b in running if age(b) <= stale_after_s]
    if fresh:
        return DaemonHealth(
            DaemonState.ALIVE, fresh[0], age(fresh[0]), stale_after_s, len(fresh) - 1
        )
    if not heartbeats:
        return DaemonHealth(DaemonState.NEVER_RAN, None, None, stale_after_s)
    newest = max(heartbeats, key=lambda b: b.heartbeat_at)
    state = DaemonState.STOPPED if newest.stopped_at is not None else DaemonState.STALE
    return DaemonHealth(state, newest, age(newest), stale_after_s)


_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_KINDS = frozenset(ErrorKind)


def error_kind(kind: str | None, error: str, transient: bool | None) -> ErrorKind:
    """A task's stored `last_error_kind`; for an error stored before there was one (schema
    0004), the kind read from `last_error` (the Jira client's message) and its transience."""
    if kind in _KINDS:
        return ErrorKind(kind)
    match = _HTTP_STATUS.search(error)
    status = int(match.group(1)) if match else None
    if status in (401, 403) and not transient:
        return ErrorKind.CREDENTIALS
    if status == 429 or "rate limited" in error:
        return ErrorKind.RATE_LIMITED
    if status is None and error.startswith("cannot reach"):
        return ErrorKind.UNREACHABLE
    if status is not None and status >= 500:
        return ErrorKind.SERVER_ERROR
    if status == 404:
        return ErrorKind.NOT_FOUND
    return ErrorKind.OTHER


@dataclass(slots=True)
class TroubleGroup:
    kind: ErrorKind
    count: int = 0
    task_ids: list[str] = field(default_factory=list)  # the first few
    example: str = ""  # the most recent error of this kind


def group_trouble(failing: Sequence[FailingTask]) -> list[TroubleGroup]:
    """Failing tasks by kind of error, most urgent kind first; `failing` newest error first."""
    groups: dict[ErrorKind, TroubleGroup] = {}
    for task in failing:
        kind = error_kind(task.kind, task.error, task.transient)
        group = groups.setdefault(kind, TroubleGroup(kind, example=task.error))
        group.count += 1
        if len(group.task_ids) < EXAMPLE_IDS:
            group.task_ids.append(str(task.ref))
    order = list(ErrorKind)
    return sorted(groups.values(), key=lambda g: order.index(g.kind))


@dataclass(frozen=True, slots=True)
class StatusReport:
    now: datetime
    daemon: DaemonHealth
    counts: dict[str, int]
    trouble: list[TroubleGroup]
    next_poll: tuple[str, datetime] | None
    schema: str | None
    size_bytes: int | None
    snapshots: int
    store: StoreTrouble | None = None  # the live daemon cannot write the database
    instances: list[Heartbeat] = field(default_factory=list)  # live ones, newest beat first
    notifications: dict[str, int] = field(default_factory=dict)  # outbox rows: pending, failed


def with_state_files(
    heartbeats: Sequence[Heartbeat],
) -> tuple[list[Heartbeat], dict[str, StoreTrouble]]:
    """The heartbeats, each brought up to its daemon's state file where that is newer (the
    daemon is alive, but cannot write its row), and the trouble each state file reports."""
    beats, trouble = [], {}
    for row in heartbeats:
        state = None
        if row.stopped_at is None and row.state_file:
            state = read_state_file(row.state_file)
        if state is not None and state.instance == row.instance:
            if state.store is not None:
                trouble[row.instance] = state.store
            if state.updated_at > row.heartbeat_at:
                row = row._replace(heartbeat_at=state.updated_at)  # noqa: PLW2901
        beats.append(row)
    return beats, trouble


def status_report(
    queries: Queries, now: datetime, stale_after_s: float = STALE_AFTER_S
) -> StatusReport:
    beats, trouble = with_state_files(queries.heartbeats())
    daemon = daemon_health(beats, now, stale_after_s)
    live = daemon.heartbeat if daemon.alive else None
    return StatusReport(
        now=now,
        daemon=daemon,
        store=None if live is None else trouble.get(live.instance),
        counts=queries.count_by_state(),
        trouble=group_trouble(queries.failing_tasks()),
        next_poll=_shown_next_poll(queries.next_poll()),
        schema=queries.schema_revision(),
        size_bytes=queries.database_size(),
        snapshots=queries.snapshot_count(),
        instances=live_instances(beats, now, stale_after_s),
        notifications=queries.notification_totals(),
    )


def live_instances(
    heartbeats: Sequence[Heartbeat], now: datetime, stale_after_s: float = STALE_AFTER_S
) -> list[Heartbeat]:
    """The daemon instances alive at `now` (several share a PostgreSQL database), newest
    heartbeat first."""
    live = [
        b
        for b in heartbeats
        if b.stopped_at is None and (now - b.heartbeat_at).total_seconds() <= stale_after_s
    ]
    return sorted(live, key=lambda b: b.heartbeat_at, reverse=True)


def _shown_next_poll(next_poll: tuple[TaskRef, datetime] | None) -> tuple[str, datetime] | None:
    """The task polled next as users name it (`bulk:ID` for a bulk operation), and when."""
    return None if next_poll is None else (str(next_poll[0]), next_poll[1])
