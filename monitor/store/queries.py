"""The read side of the store: filtered lists, streamed history, and the facts behind
`jtm status` and `jtm watch`.

Writes stay in `monitor.store`; this module only reads, each method in one short read
transaction (`database.transaction`), except `snapshots`, which streams rows from one read
transaction while the caller prints them (a WAL reader never blocks the daemon's writes).
Tasks come back as `monitor.records.Task` (named tuples, cheap to build and to read), other
rows as SQLAlchemy Core rows: `jtm list` and `jtm history` print thousands of them, and no
ORM is imported (its import alone would cost more than the query).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Row,
    Select,
    Table,
    and_,
    func,
    or_,
    select,
)

from monitor.database import current_revision, transaction
from monitor.errors import NotFoundError
from monitor.records import HEARTBEAT_COLUMNS, TASK_COLUMNS, Heartbeat, Task
from monitor.schema import EVENTS, HEARTBEATS, NOTIFICATIONS, SNAPSHOTS, TASKS
from monitor.sqlite_path import database_name
from monitor.states import TaskKind, TaskState
from monitor.taskref import BULK_PREFIX, TaskRef, as_ref


@dataclass(frozen=True, slots=True)
class Filters:
    """What `list`, `history` and `watch` select; every filter given must hold (they combine).

    Empty tuples and None mean "any". `labels` match case-insensitively, `*` is a wildcard.
    `since`/`until` bound the registration time of a task, the observation time of a snapshot
    and the time of an event: `since <= t < until`.
    """

    states: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    refs: tuple[TaskRef, ...] = ()


def by_ref(ref: TaskRef, table: Table = TASKS) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The conditions naming one task (kind and ID) in `table` (tasks, snapshots or events)."""
    kind = table.c.kind if table is TASKS else table.c.task_kind
    return kind == ref.kind, table.c.task_id == ref.task_id


def _refs_condition(refs: Sequence[TaskRef], table: Table = TASKS) -> ColumnElement[bool]:
    kind = table.c.kind if table is TASKS else table.c.task_kind
    return or_(
        *(
            and_(kind == k, table.c.task_id.in_({r.task_id for r in refs if r.kind == k}))
            for k in sorted({r.kind for r in refs})
        )
    )


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _task_conditions(filters: Filters, *, with_status: bool = True) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.refs:
        conditions.append(_refs_condition(filters.refs))
    if filters.states:
        conditions.append(TASKS.c.state.in_(filters.states))
    if with_status and filters.statuses:
        conditions.append(TASKS.c.status.in_(filters.statuses))
    if filters.labels:
        conditions.append(
            or_(*(TASKS.c.label.ilike(_like(label), escape="\\") for label in filters.labels))
        )
    return conditions


def _window(column: Any, filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.since is not None:
        conditions.append(column >= filters.since)
    if filters.until is not None:
        conditions.append(column < filters.until)
    return conditions


SNAPSHOT_COLUMNS = (
    SNAPSHOTS.c.task_kind,
    SNAPSHOTS.c.task_id,
    SNAPSHOTS.c.observed_at,
    SNAPSHOTS.c.status,
    SNAPSHOTS.c.progress,
    SNAPSHOTS.c.message,
    SNAPSHOTS.c.elapsed_runtime_ms,
    SNAPSHOTS.c.last_seen_at,
    SNAPSHOTS.c.total_issues,
    SNAPSHOTS.c.succeeded_issues,
    SNAPSHOTS.c.failed_issues,
    SNAPSHOTS.c.invalid_issues,
)


def prunable(older_than: datetime) -> ColumnElement[bool]:
    """Snapshots observed before `older_than`, except each task's newest (its latest state)."""
    newer = SNAPSHOTS.alias("newer")
    newest = (
        select(func.max(newer.c.id))
        .where(newer.c.task_kind == SNAPSHOTS.c.task_kind, newer.c.task_id == SNAPSHOTS.c.task_id)
        .scalar_subquery()
    )
    return and_(SNAPSHOTS.c.observed_at < older_than, SNAPSHOTS.c.id != newest)


@dataclass(frozen=True, slots=True)
class FailingTask:
    ref: TaskRef
    error: str
    transient: bool | None
    kind: str | None  # an ErrorKind; None for an error stored before schema 0004


class Queries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- find ----------------------------------------------------------------------------

    def task(self, ref: TaskRef | str) -> Task:
        """One registered task (a plain string: of kind `task`); NotFoundError if it is not
        registered."""
        ref = as_ref(ref)
        stmt = select(*TASK_COLUMNS).where(*by_ref(ref))
        with transaction(self.engine) as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"not registered: {ref}")
        return Task.from_row(row)

    def tasks(self, filters: Filters) -> list[Task]:
        """Tasks matching `filters`, newest registration first."""
        stmt: Select[Any] = (
            select(*TASK_COLUMNS)
            .where(*_task_conditions(filters), *_window(TASKS.c.registered_at, filters))
            .order_by(TASKS.c.registered_at.desc(), TASKS.c.task_id, TASKS.c.kind)
            .limit(filters.limit)
        )
        with transaction(self.engine) as conn:
            return [Task.from_row(row) for row in conn.execute(stmt)]

    def events(
        self,
        ref: TaskRef | str,
        filters: Filters,
        kinds: Sequence[str] = (),
    ) -> list[Row[Any]]:
        """One task's timeline in time order; with a limit, its newest `limit` events."""
        ref = as_ref(ref)
        stmt = select(EVENTS.c.at, EVENTS.c.kind, EVENTS.c.detail, EVENTS.c.id).where(
            *by_ref(ref, EVENTS), *_window(EVENTS.c.at, filters)
        )
        if kinds:
            stmt = stmt.where(EVENTS.c.kind.in_(kinds))
        stmt = stmt.order_by(EVENTS.c.at.desc(), EVENTS.c.id.desc()).limit(filters.limit)
        with transaction(self.engine) as conn:
            rows: list[Row[Any]] = list(conn.execute(stmt))
        return rows[::-1]

    @contextmanager
    def snapshots(self, filters: Filters) -> Iterator[Iterator[Row[Any]]]:
        """Snapshots matching `filters`, newest first, streamed while the block runs.

        `states` and `labels` are the task's; `statuses` the snapshot's own status.
        """
        stmt = select(*SNAPSHOT_COLUMNS).where(
            *_window(SNAPSHOTS.c.observed_at, filters),
        )
        if filters.refs:
            stmt = stmt.where(_refs_condition(filters.refs, SNAPSHOTS))
        if filters.statuses:
            stmt = stmt.where(SNAPSHOTS.c.status.in_(filters.statuses))
        task_filters = _task_conditions(
            Filters(states=filters.states, labels=filters.labels), with_status=False
        )
        if task_filters:
            on = and_(TASKS.c.kind == SNAPSHOTS.c.task_kind, TASKS.c.task_id == SNAPSHOTS.c.task_id)
            stmt = stmt.join(TASKS, on).where(*task_filters)
        stmt = stmt.order_by(SNAPSHOTS.c.observed_at.desc(), SNAPSHOTS.c.id.desc()).limit(
            filters.limit
        )
        with transaction(self.engine) as conn:
            yield iter(conn.execute(stmt))

    def task_ids_starting(self, prefix: str, limit: int = 100) -> list[str]:
        """Registered task references that start with `prefix` (shell completion): bare IDs
        of kind `task`, and `bulk:ID` for bulk operations when `prefix` starts that way."""
        kind = TaskKind.TASK
        if prefix.startswith(BULK_PREFIX):
            kind, prefix = TaskKind.BULK, prefix[len(BULK_PREFIX) :]
        stmt = select(TASKS.c.task_id).where(TASKS.c.kind == kind)
        stmt = stmt.order_by(TASKS.c.task_id).limit(limit)
        if prefix:
            # A range on the primary key, not LIKE: SQLite's LIKE cannot use the index.
            stmt = stmt.where(TASKS.c.task_id >= prefix, TASKS.c.task_id < prefix + "\U0010ffff")
        with transaction(self.engine) as conn:
            return [str(TaskRef(kind, task_id)) for task_id in conn.scalars(stmt)]

    # -- watch -----------------------------------------------------------------------------

    def watched(self, filters: Filters, ended_since: datetime) -> list[Task]:
        """Watched tasks, then those that finished or went away since `ended_since`."""
        recent = and_(
            TASKS.c.state.in_((TaskState.FINISHED, TaskState.GONE)),
            TASKS.c.updated_at >= ended_since,
        )
        active = TASKS.c.state == TaskState.WATCHING
        stmt = (
            select(*TASK_COLUMNS)
            .where(or_(active, recent), *_task_conditions(filters))
            .order_by((TASKS.c.state != TaskState.WATCHING), TASKS.c.registered_at, TASKS.c.task_id)
            .limit(filters.limit)
        )
        with transaction(self.engine) as conn:
            return [Task.from_row(row) for row in conn.execute(stmt)]

    def progress_points(
        self, refs: Sequence[TaskRef], per_task: int = 20
    ) -> dict[TaskRef, list[tuple[datetime, int]]]:
        """The newest `per_task` (observed_at, progress) points of running tasks, oldest first."""
        if not refs:
            return {}
        ranked = (
            select(
                SNAPSHOTS.c.task_kind,
                SNAPSHOTS.c.task_id,
                SNAPSHOTS.c.observed_at,
                SNAPSHOTS.c.progress,
                func.row_number()
                .over(
                    partition_by=(SNAPSHOTS.c.task_kind, SNAPSHOTS.c.task_id),
                    order_by=SNAPSHOTS.c.id.desc(),
                )
                .label("rank"),
            )
            .where(
                _refs_condition(refs, SNAPSHOTS),
                SNAPSHOTS.c.progress.is_not(None),
                SNAPSHOTS.c.status == "RUNNING",
            )
            .subquery()
        )
        stmt = (
            select(ranked.c.task_kind, ranked.c.task_id, ranked.c.observed_at, ranked.c.progress)
            .where(ranked.c.rank <= per_task)
            .order_by(ranked.c.task_kind, ranked.c.task_id, ranked.c.observed_at)
        )
        points: dict[TaskRef, list[tuple[datetime, int]]] = {}
        with transaction(self.engine) as conn:
            for row in conn.execute(stmt):
                ref = TaskRef(TaskKind(row.task_kind), row.task_id)
                points.setdefault(ref, []).append((row.observed_at, row.progress))
        return points

    # -- status ----------------------------------------------------------------------------

    def failing_tasks(self) -> list[FailingTask]:
        """Watched tasks whose last poll failed, with the error it left."""
        stmt = (
            select(
                TASKS.c.kind,
                TASKS.c.task_id,
                TASKS.c.last_error,
                TASKS.c.last_error_transient,
                TASKS.c.last_error_kind,
            )
            .where(TASKS.c.state == TaskState.WATCHING, TASKS.c.consecutive_errors > 0)
            .order_by(TASKS.c.last_error_at.desc(), TASKS.c.task_id)
        )
        with transaction(self.engine) as conn:
            return [
                FailingTask(
                    TaskRef(TaskKind(row.kind), row.task_id),
                    row.last_error or "",
                    row.last_error_transient,
                    row.last_error_kind,
                )
                for row in conn.execute(stmt)
            ]

    def count_by_state(self) -> dict[str, int]:
        """How many tasks are in each `TaskState`; a state no task is in is left out."""
        stmt = select(TASKS.c.state, func.count().label("n")).group_by(TASKS.c.state)
        with transaction(self.engine) as conn:
            return {row.state: row.n for row in conn.execute(stmt)}

    def heartbeats(self) -> list[Heartbeat]:
        """Every daemon instance's heartbeat, the latest first."""
        stmt = select(*HEARTBEAT_COLUMNS).order_by(HEARTBEATS.c.heartbeat_at.desc())
        with transaction(self.engine) as conn:
            return [Heartbeat.from_row(row) for row in conn.execute(stmt)]

    def next_poll(self) -> tuple[TaskRef, datetime] | None:
        """The watched task polled next, and when."""
        stmt = (
            select(TASKS.c.kind, TASKS.c.task_id, TASKS.c.next_poll_at)
            .where(TASKS.c.state == TaskState.WATCHING, TASKS.c.next_poll_at.is_not(None))
            .order_by(TASKS.c.next_poll_at)
            .limit(1)
        )
        with transaction(self.engine) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (TaskRef(TaskKind(row.kind), row.task_id), row.next_poll_at)

    def snapshot_count(self) -> int:
        with transaction(self.engine) as conn:
            return int(conn.scalar(select(func.count()).select_from(SNAPSHOTS)) or 0)

    def notification_totals(self) -> dict[str, int]:
        """Notification deliveries waiting (or retrying) and given up, over every channel."""
        state = NOTIFICATIONS.c.state
        stmt = select(state, func.count()).where(state.in_(("pending", "failed"))).group_by(state)
        totals = {"pending": 0, "failed": 0}
        with transaction(self.engine) as conn:
            totals.update({str(name): int(count) for name, count in conn.execute(stmt)})
        return totals

    def prunable_snapshots(self, older_than: datetime) -> int:
        """How many snapshots `Store.prune_snapshots(older_than)` would delete."""
        stmt = select(func.count()).select_from(SNAPSHOTS).where(prunable(older_than))
        with transaction(self.engine) as conn:
            return int(conn.scalar(stmt) or 0)

    def schema_revision(self) -> str | None:
        with transaction(self.engine) as conn:
            return current_revision(conn)

    def database_size(self) -> int | None:
        """Bytes on disk of a SQLite database, its write-ahead log included; None otherwise."""
        if (name := database_name(self.engine.url)) is None:
            return None
        path = Path(name)
        sizes = [p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()]
        return sum(sizes) if sizes else None
