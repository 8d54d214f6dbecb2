"""What the poller says about its polls: the tick's counts and the log lines of each poll.

Everything here reads a poll's `Outcome` (what happened is decided once, in
`monitor.observation`), never Jira's answer type again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from monitor.errors import JiraRateLimited
from monitor.jira import TaskInfo
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.outcome import Happened, Outcome, json_result
from monitor.records import Task
from monitor.states import CancelSource, ErrorKind, JiraStatus

LOGGED_FAILURES = 5
"""A bulk operation's `task.finished` names this many failed issues with their reasons."""
MAX_LOGGED_RESULT_CHARS = 1_000


@dataclass(slots=True)
class TickReport:
    """What one tick did; also the daemon's heartbeat and systemd STATUS material."""

    due: int = 0
    polled: int = 0
    changed: int = 0
    finished: int = 0
    failed: int = 0
    gone: int = 0
    skipped: int = 0
    timeouts: int = 0
    cancels_sent: int = 0
    held: int = 0  # outcomes held in memory: the database could not be written

    def add(self, other: TickReport) -> None:
        """Count `other` (a further round of the same tick) in."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            setattr(self, item.name, mine + theirs)


def report_poll(
    log: FilteringBoundLogger,
    outcome: Outcome,
    written: bool,
    report: TickReport,
    telemetry: Telemetry = NO_TELEMETRY,
) -> None:
    """Count and log a poll once its outcome is written (or lost its race); `telemetry` is
    told of each written one (`monitor.metrics`)."""
    if not written:
        report.skipped += 1  # removed by the CLI, or polled by another instance meanwhile
        return
    telemetry.polled(outcome)
    task = outcome.task
    if not outcome.happened.answered:
        report.failed += 1
        if outcome.happened == Happened.GONE and outcome.failure is not None:
            report.gone += 1
            log.warning(
                "task.gone", task_id=task.task_id, kind=task.kind, reason=str(outcome.failure.gone)
            )
        return
    report.polled += 1
    seen = outcome.seen
    assert seen is not None
    if seen.changed:
        report.changed += 1
    if seen.status_changed:
        log.info(
            "task.status_changed",
            task_id=task.task_id,
            kind=task.kind,
            **{"from": task.status, "to": seen.info.status},
            progress=seen.info.progress,
        )
    _log_timeouts(log, outcome, report)
    if outcome.happened == Happened.FINISHED:
        report.finished += 1
        _log_finished(log, task, seen.info, outcome.at)


def _log_timeouts(log: FilteringBoundLogger, outcome: Outcome, report: TickReport) -> None:
    timeouts = outcome.timeouts
    if timeouts is None:
        return
    for overrun in timeouts.passed:
        report.timeouts += 1
        log.warning(
            "task.timeout",
            task_id=outcome.task.task_id,
            task_kind=outcome.task.kind,  # `kind` is the limit's here (a stable name)
            kind=str(overrun.kind),
            limit_s=overrun.limit_s,
            observed_s=overrun.observed_s,
            action=str(timeouts.action),
            cancel=outcome.decides_cancel,
        )


def log_failure(log: FilteringBoundLogger, outcome: Outcome) -> None:
    """Log a poll that Jira answered with an error, as soon as it is known."""
    failure, task = outcome.failure, outcome.task
    assert failure is not None
    error = failure.error
    if failure.kind == ErrorKind.FORBIDDEN:
        # Once per change: a task the account may not see is refused at every poll.
        already = task.consecutive_errors and task.last_error_kind == ErrorKind.FORBIDDEN
        if not already:
            log.warning(
                "task.access_denied", task_id=task.task_id, kind=task.kind, reason=str(error)
            )
    elif isinstance(error, JiraRateLimited):
        log.warning(
            "jira.rate_limited",
            task_id=task.task_id,
            kind=task.kind,
            retry_after_s=error.retry_after_s,
            wait_s=error.pause_s,
            reason=error.reason,
        )
    elif failure.kind != ErrorKind.NOT_FOUND:
        log.warning(
            "jira.error",
            task_id=task.task_id,
            kind=task.kind,
            status=getattr(error, "status", None),
            transient=failure.transient,
            error=str(error),
        )


def _log_finished(log: FilteringBoundLogger, task: Task, info: TaskInfo, now: datetime) -> None:
    start = info.submitted or task.registered_at
    end = info.finished or now
    result: object = info.result
    text = json_result(result)
    if text is not None and len(text) > MAX_LOGGED_RESULT_CHARS:
        result = text[:MAX_LOGGED_RESULT_CHARS] + "...(truncated)"
    bulk = _bulk_fields(info)
    failed = info.status != JiraStatus.COMPLETE or bool(bulk.get("failed_issues"))
    level = log.warning if failed else log.info
    level(
        "task.finished",
        task_id=task.task_id,
        kind=task.kind,
        label=task.label,
        status=info.status,
        progress=info.progress,
        elapsed_runtime_ms=info.elapsed_runtime_ms,
        duration_s=round(max((end - start).total_seconds(), 0.0), 3),
        polls=task.polls + 1,
        cancelled_by_monitor=(
            info.status == JiraStatus.CANCELLED
            and task.cancel_requested_by == CancelSource.MONITOR
            and task.cancel_sent_at is not None
        ),
        cancel_requested_by=task.cancel_requested_by,
        timed_out=task.timed_out,
        result=result,
        **bulk,
    )


def _bulk_fields(info: TaskInfo) -> dict[str, object]:
    """A bulk operation's counts for `task.finished`, and the first few failures with their
    reasons when some issues failed; nothing for a task."""
    if info.bulk is None:
        return {}
    counts = info.bulk
    fields: dict[str, object] = {
        "total_issues": counts.total,
        "succeeded_issues": counts.succeeded,
        "failed_issues": counts.failed,
        "invalid_issues": counts.invalid,
    }
    if counts.failed and isinstance(info.result, dict):
        first = list(info.result.items())[:LOGGED_FAILURES]
        fields["first_failures"] = {str(issue): reasons for issue, reasons in first}
    return fields
