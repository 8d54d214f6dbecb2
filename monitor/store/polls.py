"""The store's poll path: the columns a poll's outcome sets, and the statements that write it.

`columns` is the one place a poll's `Outcome` meets the schema. The write runs once per task
per poll, hundreds of times a second at the ceiling, so its statements are built once, with
bound parameters: each call costs an execution, not a fresh statement to construct, coerce
and cache-key (most of a poll's CPU otherwise). `Store.record_polls` holds the transaction;
nothing here opens one.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, insert, select, update

from monitor.jira import TaskInfo
from monitor.outcome import EventSpec, Happened, Outcome, json_result, stored_text
from monitor.schema import EVENTS, SNAPSHOTS, TASKS
from monitor.states import CancelSource, EventKind, TaskState
from monitor.store.outbox import enqueue
from monitor.taskref import TaskRef

__all__ = ["EventSpec", "columns", "event_row", "write_poll"]


def columns(outcome: Outcome) -> dict[str, Any]:
    """The task columns `outcome` sets. An outcome that follows held ones
    (`Outcome.follows`) sets theirs too, the later over the earlier."""
    values: dict[str, Any] = {}
    for one in (*outcome.follows, outcome):
        values |= _answer_columns(one) if one.seen is not None else _failure_columns(one)
        values["next_poll_at"] = one.next_poll_at
    return values


def _answer_columns(outcome: Outcome) -> dict[str, Any]:
    seen, at = outcome.seen, outcome.at
    assert seen is not None
    info = seen.info
    values: dict[str, Any] = {
        "status": info.status,
        "progress": info.progress,
        "message": seen.message,
        "description": stored_text(info.description),
        "result": json_result(info.result),
        "elapsed_runtime_ms": info.elapsed_runtime_ms,
        "jira_submitted_at": info.submitted,
        "jira_started_at": info.started,
        "jira_finished_at": info.finished,
        "jira_last_update_at": info.last_update,
        **bulk_counts(info),
        "last_seen_at": at,
        "poll_interval_s": seen.interval_s,
        "consecutive_errors": 0,
        "not_found_count": 0,
    }
    if seen.first:
        values["first_seen_at"] = at
    if seen.last_change_at is not None:
        values["last_change_at"] = seen.last_change_at
    if outcome.timeouts is not None:
        values["timeouts_fired"] = ",".join(outcome.timeouts.fired)
        if outcome.timeouts.timed_out is not None:
            values["timed_out"] = outcome.timeouts.timed_out
    if outcome.happened == Happened.FINISHED:
        values |= {"state": TaskState.FINISHED, "finished_at": at}
    return values | _cancel_columns(outcome)


def _cancel_columns(outcome: Outcome) -> dict[str, Any]:
    cancel = outcome.cancel
    if cancel is None:
        return {}
    if cancel.decided is not None:
        return {
            "cancel_requested_at": outcome.at,
            "cancel_requested_by": CancelSource.MONITOR,
            "cancel_reason": cancel.decided,
            "cancel_attempts": 0,
            "cancel_next_at": outcome.at,
        }
    return {"cancel_outcome": cancel.closed, "cancel_next_at": None}


def _failure_columns(outcome: Outcome) -> dict[str, Any]:
    failure = outcome.failure
    assert failure is not None
    values: dict[str, Any] = {
        "consecutive_errors": failure.errors,
        "last_error": failure.text,
        "last_error_at": outcome.at,
        "last_error_transient": failure.transient,
        "last_error_kind": failure.kind,
    }
    if failure.not_found is not None:
        values["not_found_count"] = failure.not_found
    if failure.gone is not None:
        values["state"] = TaskState.GONE
    return values


def bulk_counts(info: TaskInfo) -> dict[str, Any]:
    """The per-issue count columns of a bulk operation's answer; none for a task's."""
    if info.bulk is None:
        return {}
    return {
        "total_issues": info.bulk.total,
        "succeeded_issues": info.bulk.succeeded,
        "failed_issues": info.bulk.failed,
        "invalid_issues": info.bulk.invalid,
    }


def _snapshot(outcome: Outcome) -> dict[str, Any]:
    seen = outcome.seen
    assert seen is not None
    info = seen.info
    return {
        "task_kind": outcome.task.kind,
        "task_id": outcome.task.task_id,
        "observed_at": outcome.at,
        "last_seen_at": outcome.at,
        "status": info.status,
        "progress": info.progress,
        "message": seen.message,
        "elapsed_runtime_ms": info.elapsed_runtime_ms,
        "jira_last_update_at": info.last_update,
        **bulk_counts(info),
    }


_INSERT_SNAPSHOT = insert(SNAPSHOTS)
_INSERT_EVENTS = insert(EVENTS)
_TOUCH_NEWEST_SNAPSHOT = (
    update(SNAPSHOTS)
    .where(
        SNAPSHOTS.c.id
        == select(SNAPSHOTS.c.id)
        .where(
            SNAPSHOTS.c.task_kind == bindparam("w_kind"),
            SNAPSHOTS.c.task_id == bindparam("w_task_id"),
        )
        .order_by(SNAPSHOTS.c.observed_at.desc(), SNAPSHOTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    .values(last_seen_at=bindparam("w_now", type_=SNAPSHOTS.c.last_seen_at.type))
)


@functools.lru_cache(maxsize=128)
def _poll_update(names: tuple[str, ...], decides_cancel: bool) -> Update:
    """The compare-and-set UPDATE of one poll that sets the columns `names`: the task must
    still be watched and at the poll count read (and without a cancel decision, with
    `decides_cancel`), or nothing is written."""
    guards = [
        TASKS.c.kind == bindparam("w_kind"),
        TASKS.c.task_id == bindparam("w_task_id"),
        TASKS.c.state == TaskState.WATCHING,
        TASKS.c.polls == bindparam("w_polls"),
    ]
    if decides_cancel:
        guards.append(TASKS.c.cancel_requested_at.is_(None))
    values = {name: bindparam(name, type_=TASKS.c[name].type) for name in names}
    return update(TASKS).where(*guards).values(values)


def write_poll(conn: Connection, outcome: Outcome) -> bool:
    """Write one poll's outcome in the caller's transaction, at the time of its poll; False
    if it lost the race (its task removed, polled by another instance, or cancelled by hand
    meanwhile, when the outcome decides a cancel). Its notifications (`Outcome.notices`)
    go into the outbox with its events, or not at all."""
    task, at = outcome.base, outcome.at
    params = {**columns(outcome), "polls": task.polls + outcome.polls, "updated_at": at}
    statement = _poll_update(tuple(sorted(params)), outcome.decides_cancel)
    params |= {"w_kind": task.kind, "w_task_id": task.task_id, "w_polls": task.polls}
    if conn.execute(statement, params).rowcount != 1:
        return False
    if outcome.seen is not None and outcome.seen.changed:
        conn.execute(_INSERT_SNAPSHOT, _snapshot(outcome))
    elif any(one.seen is not None for one in (*outcome.follows, outcome)):
        touch = {"w_kind": task.kind, "w_task_id": task.task_id, "w_now": at}
        conn.execute(_TOUCH_NEWEST_SNAPSHOT, touch)
    if outcome.events:
        rows = [event_row(task.ref, at, kind, d) for kind, d in outcome.events]
        conn.execute(_INSERT_EVENTS, rows)
    notices = [row for one in (*outcome.follows, outcome) for row in one.notices]
    if notices:  # the notifications of those events, committed with them (monitor.notify)
        enqueue(conn, notices)
    return True


def event_row(
    ref: TaskRef, at: datetime, kind: EventKind, detail: str | None = None
) -> dict[str, Any]:
    """A row of the events table."""
    return {
        "task_kind": str(ref.kind),
        "task_id": ref.task_id,
        "at": at,
        "kind": str(kind),
        "detail": detail,
    }
