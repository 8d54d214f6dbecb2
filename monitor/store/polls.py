"""The store's poll path: what one poll writes, and the statements that write it.

It runs once per task per poll, hundreds of times a second at the ceiling, so its statements
are built once, with bound parameters: each call costs an execution, not a fresh statement to
construct, coerce and cache-key (most of a poll's CPU otherwise). `Store.record_polls` holds
the transaction; nothing here opens one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, insert, select, update

from monitor.records import Task
from monitor.schema import EVENTS, SNAPSHOTS, TASKS
from monitor.states import EventKind, TaskState
from monitor.store.outbox import enqueue

EventSpec = tuple[EventKind, str | None]


@dataclass(frozen=True, slots=True)
class PollWrite:
    """One poll's outcome, for `task` as `due_tasks` read it.

    `values` are the task's new column values; `snapshot` a new snapshot row to insert, or
    `touch_snapshot` to move the newest snapshot's `last_seen_at` instead. With
    `decides_cancel`, the write also requires that no cancel was decided meanwhile (by
    `jtm cancel`), so one decision is never overwritten by another.

    A write held back while the database could not be written (`monitor.backlog`) carries
    the time of its poll in `at` (else the time of the write counts), and `polls_made` > 1
    when it stands for that many polls that changed nothing.

    `notices` are outbox rows (`monitor.notify.router`): the notifications of the events it
    records, written in the same transaction.
    """

    task: Task
    values: dict[str, Any]
    snapshot: dict[str, Any] | None = None
    touch_snapshot: bool = False
    events: tuple[EventSpec, ...] = ()
    decides_cancel: bool = False
    at: datetime | None = None
    polls_made: int = 1
    notices: tuple[dict[str, Any], ...] = ()


_INSERT_SNAPSHOT = insert(SNAPSHOTS)
_INSERT_EVENTS = insert(EVENTS)
_TOUCH_NEWEST_SNAPSHOT = (
    update(SNAPSHOTS)
    .where(
        SNAPSHOTS.c.id
        == select(SNAPSHOTS.c.id)
        .where(SNAPSHOTS.c.task_id == bindparam("w_task_id"))
        .order_by(SNAPSHOTS.c.observed_at.desc(), SNAPSHOTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    .values(last_seen_at=bindparam("w_now", type_=SNAPSHOTS.c.last_seen_at.type))
)


@functools.lru_cache(maxsize=128)
def _poll_update(columns: tuple[str, ...], decides_cancel: bool) -> Update:
    """The compare-and-set UPDATE of one poll that sets `columns`: the task must still be
    watched and at the poll count read (and without a cancel decision, with
    `decides_cancel`), or nothing is written."""
    guards = [
        TASKS.c.task_id == bindparam("w_task_id"),
        TASKS.c.state == TaskState.WATCHING,
        TASKS.c.polls == bindparam("w_polls"),
    ]
    if decides_cancel:
        guards.append(TASKS.c.cancel_requested_at.is_(None))
    values = {name: bindparam(name, type_=TASKS.c[name].type) for name in columns}
    return update(TASKS).where(*guards).values(values)


def write_poll(conn: Connection, write: PollWrite, now: datetime) -> bool:
    """Write one poll's outcome in the caller's transaction; False if it lost the race."""
    task = write.task
    now = write.at or now
    params = {**write.values, "polls": task.polls + write.polls_made, "updated_at": now}
    statement = _poll_update(tuple(sorted(params)), write.decides_cancel)
    params |= {"w_task_id": task.task_id, "w_polls": task.polls}
    if conn.execute(statement, params).rowcount != 1:
        return False
    if write.snapshot is not None:
        conn.execute(_INSERT_SNAPSHOT, {"task_id": task.task_id, **write.snapshot})
    elif write.touch_snapshot:
        conn.execute(_TOUCH_NEWEST_SNAPSHOT, {"w_task_id": task.task_id, "w_now": now})
    if write.events:
        rows = [event_row(task.task_id, now, kind, d) for kind, d in write.events]
        conn.execute(_INSERT_EVENTS, rows)
    if write.notices:
        enqueue(conn, write.notices)
    return True


def event_row(
    task_id: str, at: datetime, kind: EventKind, detail: str | None = None
) -> dict[str, Any]:
    """A row of the events table."""
    return {"task_id": task_id, "at": at, "kind": str(kind), "detail": detail}
