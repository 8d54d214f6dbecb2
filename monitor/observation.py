"""What one poll means: pure decisions from (the task as stored, what Jira said, now).

`observe` and `observe_failure` build the poll's `Outcome` in a few small steps: change
detection, backoff, timeouts, the cancel decision, deadline scheduling, the terminal outcome.
`Poller` has it written and reported. Nothing here touches the database, the network or the
clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from monitor.jira import BulkCounts, TaskInfo
from monitor.outcome import (
    CancelStep,
    EventSpec,
    Failure,
    Happened,
    Outcome,
    Seen,
    Timeouts,
    stored_text,
)
from monitor.records import Task
from monitor.states import (
    CancelOutcome,
    ErrorKind,
    EventKind,
    GoneReason,
    JiraStatus,
    TimeoutAction,
    TimeoutKind,
)

GONE_AFTER_404S = 3
"""Consecutive 404s before a task is declared gone (one 404 can be a replica lagging)."""

UNCHANGED_BACKOFF = 1.5
"""Each poll that sees no change stretches the interval by this factor, up to max_interval."""

JITTER = 0.1
"""Spread of next-poll times (+/-10%), so tasks registered together do not poll together."""

DEADLINE_MARGIN_S = 0.25
"""A task is polled this long after its nearest deadline, so the poll finds it passed."""

MIN_POLL_GAP_S = 0.5


def _next_poll(now: datetime, interval_s: float, jitter: float, due: datetime | None) -> datetime:
    """`interval_s` after the time the poll was due, so a tick's lateness does not add up
    poll after poll; after the time of the poll when it came later than one interval."""
    step = timedelta(seconds=interval_s * jitter)
    if due is not None and due <= now < due + step:
        return due + step
    return now + step


def observe(
    task: Task,
    info: TaskInfo,
    now: datetime,
    poll: PollSettings,
    limits: Limits | None = None,
    *,
    watched_since: datetime | None = None,
    jitter: float = 1.0,
) -> Outcome:
    """The outcome of a poll of `task` that returned `info`.

    With `limits`, also which limits are newly passed (each kind is reported once), whether
    that decides a cancel, and when the nearest remaining deadline falls (the next poll is
    no later than that).
    """
    seen = _seen(task, info, now, poll, watched_since)
    next_poll: datetime | None = _next_poll(now, seen.interval_s, jitter, task.next_poll_at)
    events = _answer_events(task, info, seen)
    timeouts, cancel = None, None
    if limits is not None and not info.terminal:
        facts = _facts(task, info, now, seen, watched_since)
        timeouts = _timeouts(task, facts, limits, now)
        cancel = _cancel_decision(task, timeouts)
        events += _timeout_events(timeouts, cancel)
        next_poll = _before_deadline(next_poll, facts, limits, now)
    happened = Happened.CHANGED if seen.changed else Happened.UNCHANGED
    if info.terminal:
        happened, next_poll = Happened.FINISHED, None
        cancel = _cancel_closed(task, info)
        events += _terminal_events(info, cancel)
    return Outcome(task, now, happened, next_poll, tuple(events), seen, None, timeouts, cancel)


def _seen(
    task: Task,
    info: TaskInfo,
    now: datetime,
    poll: PollSettings,
    watched_since: datetime | None,
) -> Seen:
    """Change detection and backoff: is the answer new, and how soon to ask again."""
    message = stored_text(info.message)  # compared as stored, or a cut one always differs
    changed = (
        task.first_seen_at is None
        or task.status != info.status
        or task.progress != info.progress
        or task.message != message
        or task.jira_last_update_at != info.last_update
        or (info.bulk is not None and _counts(task) != info.bulk)
    )
    if changed or _cancel_open(task):
        interval = poll.interval_s  # a cancel in progress is watched closely
    else:
        previous = task.poll_interval_s or poll.interval_s
        interval = min(previous * UNCHANGED_BACKOFF, poll.max_interval_s)
    mark: datetime | None = now if changed else None
    downtime = _downtime(task, watched_since)
    if not changed and downtime is not None and task.last_change_at is not None:
        # Restart-safe stall: the time the monitor was down is taken out of the stored
        # mark once, at the first poll of this run (see `deadlines.observed_stall`).
        mark = task.last_change_at + downtime
    first, status_changed = task.first_seen_at is None, task.status != info.status
    return Seen(info, message, changed, first, status_changed, interval, mark)


def _counts(task: Task) -> BulkCounts:
    """A bulk operation's per-issue counts as stored: they may move while its percentage does
    not (1 issue of 1,000 is no whole percent)."""
    return BulkCounts(
        task.total_issues, task.succeeded_issues, task.failed_issues, task.invalid_issues
    )


def _cancel_open(task: Task) -> bool:
    return task.cancel_requested_at is not None and task.cancel_outcome is None


def _answer_events(task: Task, info: TaskInfo, seen: Seen) -> list[EventSpec]:
    """The timeline events of an answer: first seen, a new status, a recovery."""
    # Odd payload fields are recorded with the events that mark a new status, not on every
    # poll: a site that always omits a field would otherwise fill the timeline.
    odd = f" (odd payload: {'; '.join(info.anomalies)})" if info.anomalies else ""
    events: list[EventSpec] = []
    if seen.first:
        events.append((EventKind.FIRST_SEEN, f"{info.status} {_pct(info.progress)}{odd}"))
    elif seen.status_changed:
        events.append((EventKind.STATUS_CHANGED, f"{task.status} -> {info.status}{odd}"))
    if task.consecutive_errors:
        events.append((EventKind.POLL_RECOVERED, f"after {task.consecutive_errors} failed polls"))
    return events


def _facts(
    task: Task, info: TaskInfo, now: datetime, seen: Seen, watched_since: datetime | None
) -> Facts:
    return Facts(
        status=info.status,
        observed_at=now,
        submitted=info.submitted,
        started=info.started,
        last_update=info.last_update,
        elapsed_runtime_ms=info.elapsed_runtime_ms,
        server_time=info.server_time,
        last_change_at=now if seen.changed else task.last_change_at,
        watched_since=watched_since,
        last_seen_before=task.last_seen_at,
    )


def _timeouts(task: Task, facts: Facts, limits: Limits, now: datetime) -> Timeouts | None:
    """The limits newly passed (None if none is)."""
    fired = set((task.timeouts_fired or "").split(",")) - {""}
    passed = tuple(o for o in overruns(facts, limits, now) if o.kind not in fired)
    if not passed:
        return None
    fired |= {o.kind for o in passed}
    first = passed[0].kind if task.timed_out is None else None
    kinds = tuple(k for k in TimeoutKind if k in fired)
    return Timeouts(passed, kinds, first, limits.action)


def _cancel_decision(task: Task, timeouts: Timeouts | None) -> CancelStep | None:
    """A limit with action `cancel` newly passed decides a cancel, unless one was decided."""
    if timeouts is None or timeouts.action != TimeoutAction.CANCEL:
        return None
    if task.cancel_requested_at is not None:
        return None
    return CancelStep(decided=_timeout_text(timeouts.passed[0], timeouts.action))


def _timeout_events(timeouts: Timeouts | None, cancel: CancelStep | None) -> list[EventSpec]:
    if timeouts is None:
        return []
    events: list[EventSpec] = [
        (EventKind.TIMEOUT, _timeout_text(o, timeouts.action)) for o in timeouts.passed
    ]
    if cancel is not None and cancel.decided is not None:
        events.append((EventKind.CANCEL_REQUESTED, cancel.decided))
    return events


def _before_deadline(
    next_poll: datetime | None, facts: Facts, limits: Limits, now: datetime
) -> datetime | None:
    """The next poll, no later than just past the nearest remaining deadline."""
    deadline = next_deadline(facts, limits, now)
    if deadline is None or next_poll is None:
        return next_poll
    soonest = now + timedelta(seconds=MIN_POLL_GAP_S)
    return min(next_poll, max(deadline + timedelta(seconds=DEADLINE_MARGIN_S), soonest))


def _cancel_closed(task: Task, info: TaskInfo) -> CancelStep | None:
    """A terminal status closes an open cancel decision: confirmed, or overtaken."""
    if not _cancel_open(task):
        return None
    confirmed = info.status == JiraStatus.CANCELLED
    return CancelStep(closed=CancelOutcome.CONFIRMED if confirmed else CancelOutcome.OVERTAKEN)


def _terminal_events(info: TaskInfo, cancel: CancelStep | None) -> list[EventSpec]:
    events: list[EventSpec] = [(EventKind.FINISHED, f"{info.status} {_pct(info.progress)}")]
    if cancel is not None and cancel.closed == CancelOutcome.CONFIRMED:
        events.append((EventKind.CANCEL_CONFIRMED, f"{info.status} after the cancel"))
    return events


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


def observe_failure(
    task: Task, error: Exception, now: datetime, poll: PollSettings, jitter: float = 1.0
) -> Outcome:
    """The outcome of a failed poll: back off, count 404s, declare a task gone.

    `error` is a JiraError, or anything else that went wrong while processing the task (a
    bug, a payload that broke an assumption): that is backed off as a transient failure so it
    cannot turn into a hot loop.
    """
    failure = _failure(task, error)
    events: list[EventSpec] = []
    if failure.errors == 1:
        events.append((EventKind.POLL_FAILED, failure.text))
    if failure.gone is not None:
        events.append((EventKind.GONE, f"{failure.gone} after {failure.not_found} answers of 404"))
        return Outcome(task, now, Happened.GONE, None, tuple(events), failure=failure)
    next_poll = _next_poll(now, _failure_delay(error, failure, poll), jitter, task.next_poll_at)
    return Outcome(task, now, Happened.FAILED, next_poll, tuple(events), failure=failure)


def _failure(task: Task, error: Exception) -> Failure:
    errors = task.consecutive_errors + 1
    transient = error.transient if isinstance(error, JiraError) else True
    text = str(error) if isinstance(error, JiraError) else f"internal error: {error!r}"
    if not isinstance(error, JiraNotFound):
        return Failure(error, text, transient, error_kind(error), errors, None)
    misses = task.not_found_count + 1
    gone = None
    if misses >= GONE_AFTER_404S:
        # Seen before and now missing: Jira forgot it (its ~14-day retention).
        gone = GoneReason.EXPIRED if task.first_seen_at else GoneReason.NOT_FOUND
    return Failure(error, text, transient, error_kind(error), errors, misses, gone)


def _failure_delay(error: Exception, failure: Failure, poll: PollSettings) -> float:
    if failure.not_found is not None:
        return poll.interval_s
    if isinstance(error, JiraRateLimited) and error.retry_after_s is not None:
        return max(error.retry_after_s, poll.interval_s)
    backoff: float = poll.interval_s * 2 ** min(failure.errors, 16)
    return min(backoff, poll.max_interval_s)


def _pct(progress: int | None) -> str:
    return "?%" if progress is None else f"{progress}%"
