"""Typed, immutable records of the task and heartbeat rows the daemon and the CLI work with.

Each record has one field per column of its table (`monitor.schema`), with the column's
Python type; a test keeps the two in step. Records are named tuples built straight from Core
rows (`Task.from_row`): under a microsecond a row, where a frozen dataclass costs five (one
`object.__setattr__` per field) and an ORM object about twenty, and where the ORM's import
alone costs a CLI command more than its query. The daemon reads a few hundred per round.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Self

from sqlalchemy import Column, Row, Table

from monitor.schema import HEARTBEATS, TASKS
from monitor.states import TaskKind
from monitor.taskref import TaskRef


class Task(NamedTuple):
    """One registered Jira task: its registration, its latest known state, its schedule.

    The columns are described in `monitor.schema.TASKS`.
    """

    task_id: str
    state: str
    registered_at: datetime
    updated_at: datetime
    kind: str = TaskKind.TASK
    label: str | None = None
    finished_at: datetime | None = None
    removed_at: datetime | None = None

    limit_total_s: float | None = None
    limit_queued_s: float | None = None
    limit_run_s: float | None = None
    limit_stall_s: float | None = None
    timeout_action: str | None = None

    status: str | None = None
    progress: int | None = None
    message: str | None = None
    description: str | None = None
    result: str | None = None
    elapsed_runtime_ms: int | None = None
    jira_submitted_at: datetime | None = None
    jira_started_at: datetime | None = None
    jira_finished_at: datetime | None = None
    jira_last_update_at: datetime | None = None
    total_issues: int | None = None
    succeeded_issues: int | None = None
    failed_issues: int | None = None
    invalid_issues: int | None = None

    next_poll_at: datetime | None = None
    poll_interval_s: float | None = None
    polls: int = 0
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    last_change_at: datetime | None = None
    consecutive_errors: int = 0
    not_found_count: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_error_transient: bool | None = None
    last_error_kind: str | None = None

    timed_out: str | None = None
    timeouts_fired: str | None = None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None
    cancel_attempts: int = 0
    cancel_sent_at: datetime | None = None
    cancel_next_at: datetime | None = None
    cancel_outcome: str | None = None

    @property
    def ref(self) -> TaskRef:
        """The task's identity: its kind and its ID."""
        return TaskRef(TaskKind(self.kind), self.task_id)

    @property
    def bulk(self) -> bool:
        return self.kind == TaskKind.BULK

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """The record of a row selected as `TASK_COLUMNS`."""
        return cls._make(row)


STALE_AFTER_S = 120.0
"""A heartbeat older than this means its daemon is stuck or gone (`monitor.health`); an
instance beating more recently is live, and shares the work (`monitor.sharing`)."""


class Heartbeat(NamedTuple):
    """One row per daemon instance: is it alive, and what did its last tick do."""

    instance: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    last_tick_at: datetime | None = None
    last_tick_polls: int = 0
    next_poll_at: datetime | None = None
    stopped_at: datetime | None = None
    state_file: str | None = None
    polls_last_minute: int | None = None

    @property
    def host(self) -> str:
        """The host the instance runs on (its name is `host:pid`)."""
        return self.instance.rpartition(":")[0] or self.instance

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        """The record of a row selected as `HEARTBEAT_COLUMNS`."""
        return cls._make(row)


def _columns(record: type[Task | Heartbeat], table: Table) -> tuple[Column[Any], ...]:
    """`table`'s columns in the order of `record`'s fields: select these for `from_row`."""
    return tuple(table.c[name] for name in record._fields)


TASK_COLUMNS = _columns(Task, TASKS)
HEARTBEAT_COLUMNS = _columns(Heartbeat, HEARTBEATS)
