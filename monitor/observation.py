"""What one poll means: pure decisions from (the task as stored, what Jira said, now).

`plan_success` and `plan_failure` decide the new column values, the snapshot, the timeline
events, the limits newly passed and any cancel decision; `Poller` applies and logs them.
Nothing here touches the database, the network or the clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.config import PollSettings
from monitor.deadlines import Facts, Limits, Overrun, next_deadline, overruns
from monitor.durations import format_duration
from monitor.errors import (
    JiraAuthError,
    JiraError,
    JiraForbidden,
    JiraNotFound,
    JiraRateLimited,
    JiraServerError,
    JiraUnreachable,
)
from monitor.jira import TaskInfo
from monitor.records import Task
from monitor.states import (
    CancelOutcome,
    CancelSource,
    ErrorKind,
    EventKind,
    GoneReason,
    JiraStatus,
    TaskState,
    TimeoutAction,
    TimeoutKind,
)
from monitor.store import EventSpec

GONE_AFTER_404S = 3
"""Consecutive 404s before a task is declared gone (one 404 can be a replica lagging)."""

UNCHANGED_BACKOFF = 1.5
"""Each poll that sees no change stretches the interval by this factor, up to max_interval."""

JITTER = 0.1
"""Spread of next-poll times (+/-10%), so tasks registered together do not poll together."""

DEADLINE_MARGIN_S = 0.25
"""A task is polled this long after its nearest deadline, so the poll finds it passed."""

MIN_POLL_GAP_S = 0.5

MAX_STORED_RESULT_CHARS = 65_536
MAX_STORED_TEXT_CHARS = 4_000
"""Jira's `message` and `description` are kept up to this many characters (with a marker
that they were cut): a message is stored with every snapshot, and a site that sends 300 KB
ones would otherwise fill a small disk in seconds."""


@dataclass(frozen=True, slots=True)
class PollPlan:
    """What to write after one poll, and what to say about it."""

    values: dict[str, Any]
    snapshot: dict[str, Any] | None = None
    touch_snapshot: bool = False
    events: tuple[EventSpec, ...] = ()
    finished: bool = False
    gone: GoneReason | None = None
    status_changed: bool = False
    timeouts: tuple[Overrun, ...] = ()
    action: TimeoutAction = TimeoutAction.CANCEL
    decides_cancel: bool = False
    notices: tuple[dict[str, Any], ...] = ()  # outbox rows written with it (monitor.notify)


def stored_text(text: str | None, limit: int = MAX_STORED_TEXT_CHARS) -> str | None:
    """`text` as stored: at most `limit` characters, then a marker saying how much was cut."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}...(truncated: {len(text) - limit} more chars)"


def json_result(result: object) -> str | None:
    """Jira's `result` as stored: JSON text, cut (with the marker) past its limit; a cut one
    is no longer JSON, and is read back as text."""
    if result is None:
        return None
    return stored_text(json.dumps(result, ensure_ascii=False, default=str), MAX_STORED_RESULT_CHARS)


def _next_poll(now: datetime, interval_s: float, jitter: float, due: datetime | None) -> datetime:
    """`interval_s` after the time the poll was due, so a tick's lateness does not add up
    poll after poll; after the time of the poll when it came later than one interval."""
    step = timedelta(seconds=interval_s * jitter)
    if due is not None and due <= now < due + step:
        return due + step
    return now + step


def plan_success(
    task: Task,
    info: TaskInfo,
    now: datetime,
    poll: PollSettings,
    limits: Limits | None = None,
    *,
    watched_since: datetime | None = None,
    jitter: float = 1.0,
) -> PollPlan:
    """Decide what a successful poll of `task` that returned `info` changes.

    With `limits`, also which limits are newly passed (each kind is reported once), whether
    that decides a cancel, and when the nearest remaining deadline falls (the next poll is
    no later than that).
    """
    first = task.first_seen_at is None
    status_changed = task.status != info.status
    message = stored_text(info.message)  # compared as stored, or a cut one always differs
    changed = (
        first
        or status_changed
        or task.progress != info.progress
        or task.message != message
        or task.jira_last_update_at != info.last_update
    )
    cancel_open = task.cancel_requested_at is not None and task.cancel_outcome is None
    if changed or cancel_open:
        interval = poll.interval_s  # a cancel in progress is watched closely
    else:
        previous = task.poll_interval_s or poll.interval_s
        interval = min(previous * UNCHANGED_BACKOFF, poll.max_interval_s)
    values: dict[str, Any] = {
        "status": info.status,
        "progress": info.progress,
        "message": message,
        "description": stored_text(info.description),
        "result": json_result(info.result),
        "elapsed_runtime_ms": info.elapsed_runtime_ms,
        "jira_submitted_at": info.submitted,
        "jira_started_at": info.started,
        "jira_finished_at": info.finished,
        "jira_last_update_at": info.last_update,
        "last_seen_at": now,
        "poll_interval_s": interval,
        "next_poll_at": _next_poll(now, interval, jitter, task.next_poll_at),
        "consecutive_errors": 0,
        "not_found_count": 0,
    }
    # Odd payload fields are recorded with the events that mark a new status, not on every
    # poll: a site that always omits a field would otherwise fill the timeline.
    odd = f" (odd payload: {'; '.join(info.anomalies)})" if info.anomalies else ""
    events: list[EventSpec] = []
    if first:
        values["first_seen_at"] = now
        events.append((EventKind.FIRST_SEEN, f"{info.status} {_pct(info.progress)}{odd}"))
    elif status_changed:
        events.append((EventKind.STATUS_CHANGED, f"{task.status} -> {info.status}{odd}"))
    if task.consecutive_errors:
        events.append((EventKind.POLL_RECOVERED, f"after {task.consecutive_errors} failed polls"))
    if changed:
        values["last_change_at"] = now
    downtime = _downtime(task, watched_since)
    if not changed and downtime is not None and task.last_change_at is not None:
        # Restart-safe stall: the time the monitor was down is taken out of the stored
        # mark once, at the first poll of this run (see `deadlines.observed_stall`).
        values["last_change_at"] = task.last_change_at + downtime
    timeouts: list[Overrun] = []
    decides_cancel = False
    action = limits.action if limits else TimeoutAction.CANCEL
    if limits is not None and not info.terminal:
        facts = Facts(
            status=info.status,
            observed_at=now,
            submitted=info.submitted,
            started=info.started,
            last_update=info.last_update,
            elapsed_runtime_ms=info.elapsed_runtime_ms,
            server_time=info.server_time,
            last_change_at=now if changed else task.last_change_at,
            watched_since=watched_since,
            last_seen_before=task.last_seen_at,
        )
        fired = set((task.timeouts_fired or "").split(",")) - {""}
        timeouts = [o for o in overruns(facts, limits, now) if o.kind not in fired]
        if timeouts:
            fired |= {o.kind for o in timeouts}
            values["timeouts_fired"] = ",".join(k for k in TimeoutKind if k in fired)
            if task.timed_out is None:
                values["timed_out"] = timeouts[0].kind
            events.extend((EventKind.TIMEOUT, _timeout_text(o, action)) for o in timeouts)
            if action == TimeoutAction.CANCEL and task.cancel_requested_at is None:
                decides_cancel = True
                reason = _timeout_text(timeouts[0], action)
                values |= {
                    "cancel_requested_at": now,
                    "cancel_requested_by": CancelSource.MONITOR,
                    "cancel_reason": reason,
                    "cancel_attempts": 0,
                    "cancel_next_at": now,
                }
                events.append((EventKind.CANCEL_REQUESTED, reason))
        deadline = next_deadline(facts, limits, now)
        if deadline is not None:
            soonest = now + timedelta(seconds=MIN_POLL_GAP_S)
            at = max(deadline + timedelta(seconds=DEADLINE_MARGIN_S), soonest)
            values["next_poll_at"] = min(values["next_poll_at"], at)
    if info.terminal:
        values |= {"state": TaskState.FINISHED, "finished_at": now, "next_poll_at": None}
        events.append((EventKind.FINISHED, f"{info.status} {_pct(info.progress)}"))
        if cancel_open:
            confirmed = info.status == JiraStatus.CANCELLED
            outcome = CancelOutcome.CONFIRMED if confirmed else CancelOutcome.OVERTAKEN
            values |= {"cancel_outcome": outcome, "cancel_next_at": None}
            if confirmed:
                events.append((EventKind.CANCEL_CONFIRMED, f"{info.status} after the cancel"))
    snapshot = None
    if changed:
        snapshot = {
            "observed_at": now,
            "last_seen_at": now,
            "status": info.status,
            "progress": info.progress,
            "message": message,
            "elapsed_runtime_ms": info.elapsed_runtime_ms,
            "jira_last_update_at": info.last_update,
        }
    return PollPlan(
        values=values,
        snapshot=snapshot,
        touch_snapshot=not changed,
        events=tuple(events),
        finished=info.terminal,
        status_changed=status_changed,
        timeouts=tuple(timeouts),
        action=action,
        decides_cancel=decides_cancel,
    )


def _downtime(task: Task, watched_since: datetime | None) -> timedelta | None:
    """The gap between the last poll of an earlier run and the start of this one, at the first
    poll of this run of a task that had not changed since before that last poll."""
    seen, changed = task.last_seen_at, task.last_change_at
    if watched_since is None or seen is None or changed is None:
        return None
    if not changed <= seen < watched_since:
        return None
    return watched_since - seen


def _timeout_text(overrun: Overrun, action: TimeoutAction) -> str:
    return (
        f"{overrun.kind} limit {format_duration(overrun.limit_s)} passed "
        f"({format_duration(round(overrun.observed_s, 3))}): {action}"
    )


def error_kind(error: Exception) -> ErrorKind:
    """The kind of a failed poll's error, stored so that `jtm status` can group tasks by it."""
    for cls, kind in _ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return ErrorKind.OTHER


_ERROR_KINDS: tuple[tuple[type[JiraError], ErrorKind], ...] = (
    (JiraForbidden, ErrorKind.FORBIDDEN),  # before its base class: one task, not the site
    (JiraAuthError, ErrorKind.CREDENTIALS),
    (JiraRateLimited, ErrorKind.RATE_LIMITED),
    (JiraUnreachable, ErrorKind.UNREACHABLE),
    (JiraServerError, ErrorKind.SERVER_ERROR),
    (JiraNotFound, ErrorKind.NOT_FOUND),
)


def plan_failure(
    task: Task, error: Exception, now: datetime, poll: PollSettings, jitter: float = 1.0
) -> PollPlan:
    """Decide what a failed poll changes: back off, count 404s, declare a task gone.

    `error` is a JiraError, or anything else that went wrong while processing the task (a
    bug, a payload that broke an assumption): that is backed off as a transient failure so it
    cannot turn into a hot loop.
    """
    errors = task.consecutive_errors + 1
    transient = error.transient if isinstance(error, JiraError) else True
    text = str(error) if isinstance(error, JiraError) else f"internal error: {error!r}"
    values: dict[str, Any] = {
        "consecutive_errors": errors,
        "last_error": text,
        "last_error_at": now,
        "last_error_transient": transient,
        "last_error_kind": error_kind(error),
    }
    events: list[EventSpec] = []
    if errors == 1:
        events.append((EventKind.POLL_FAILED, text))
    if isinstance(error, JiraNotFound):
        misses = task.not_found_count + 1
        values["not_found_count"] = misses
        if misses >= GONE_AFTER_404S:
            # Seen before and now missing: Jira forgot it (its ~14-day retention).
            reason = GoneReason.EXPIRED if task.first_seen_at else GoneReason.NOT_FOUND
            values |= {"state": TaskState.GONE, "next_poll_at": None}
            events.append((EventKind.GONE, f"{reason} after {misses} answers of 404"))
            return PollPlan(values=values, events=tuple(events), gone=reason)
        delay = poll.interval_s
    elif isinstance(error, JiraRateLimited) and error.retry_after_s is not None:
        delay = max(error.retry_after_s, poll.interval_s)
    else:
        delay = min(poll.interval_s * 2 ** min(errors, 16), poll.max_interval_s)
    values["next_poll_at"] = _next_poll(now, delay, jitter, task.next_poll_at)
    return PollPlan(values=values, events=tuple(events))


def _pct(progress: int | None) -> str:
    return "?%" if progress is None else f"{progress}%"
