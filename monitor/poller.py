"""One tick of the daemon's work: poll the due tasks, record what changed, log outcomes.

`Poller.tick(now)` is a plain function of the database, Jira and `now`: the scheduler only
calls it, and tests call it directly with a chosen `now`. Each task is read, then polled with
no transaction open, then written back in one short compare-and-set transaction, so a task the
CLI removed meanwhile is not resurrected, and a crash between poll and write loses one poll.

Deciding what a poll means (`plan_success`, `plan_failure`) is pure; applying and logging the
decision is `Poller`'s part. A task whose processing raises is isolated: it is logged, backed
off, and the others carry on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from monitor.config import PollSettings
from monitor.errors import JiraError, JiraNotFound, JiraRateLimited
from monitor.jira import TaskInfo
from monitor.logs import get_logger
from monitor.models import Task
from monitor.states import EventKind, GoneReason, TaskState
from monitor.store import EventSpec, Store

GONE_AFTER_404S = 3
"""Consecutive 404s before a task is declared gone (one 404 can be a replica lagging)."""

UNCHANGED_BACKOFF = 1.5
"""Each poll that sees no change stretches the interval by this factor, up to max_interval."""

JITTER = 0.1
"""Spread of next-poll times (+/-10%), so tasks registered together do not poll together."""

MAX_STORED_RESULT_CHARS = 65_536
MAX_LOGGED_RESULT_CHARS = 1_000
MAX_DUE_PER_TICK = 5_000

Fetch = Callable[[str], TaskInfo]


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
    finished_ids: list[str] = field(default_factory=list)


def _json_result(result: object) -> str | None:
    if result is None:
        return None
    text = json.dumps(result, ensure_ascii=False, default=str)
    return text[:MAX_STORED_RESULT_CHARS]


def _next_poll(now: datetime, interval_s: float, jitter: float) -> datetime:
    return now + timedelta(seconds=interval_s * jitter)


def plan_success(
    task: Task, info: TaskInfo, now: datetime, poll: PollSettings, jitter: float = 1.0
) -> PollPlan:
    """Decide what a successful poll of `task` that returned `info` changes."""
    first = task.first_seen_at is None
    status_changed = task.status != info.status
    changed = (
        first
        or status_changed
        or task.progress != info.progress
        or task.message != info.message
        or task.jira_last_update_at != info.last_update
    )
    if changed:
        interval = poll.interval_s
    else:
        previous = task.poll_interval_s or poll.interval_s
        interval = min(previous * UNCHANGED_BACKOFF, poll.max_interval_s)
    values: dict[str, Any] = {
        "status": info.status,
        "progress": info.progress,
        "message": info.message,
        "description": info.description,
        "result": _json_result(info.result),
        "elapsed_runtime_ms": info.elapsed_runtime_ms,
        "jira_submitted_at": info.submitted,
        "jira_started_at": info.started,
        "jira_finished_at": info.finished,
        "jira_last_update_at": info.last_update,
        "last_seen_at": now,
        "poll_interval_s": interval,
        "next_poll_at": _next_poll(now, interval, jitter),
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
    if info.terminal:
        values |= {"state": TaskState.FINISHED, "finished_at": now, "next_poll_at": None}
        events.append((EventKind.FINISHED, f"{info.status} {_pct(info.progress)}"))
    snapshot = None
    if changed:
        snapshot = {
            "observed_at": now,
            "last_seen_at": now,
            "status": info.status,
            "progress": info.progress,
            "message": info.message,
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
    values["next_poll_at"] = _next_poll(now, delay, jitter)
    return PollPlan(values=values, events=tuple(events))


def _pct(progress: int | None) -> str:
    return "?%" if progress is None else f"{progress}%"


class Poller:
    """Polls due tasks with `executor` (its size is the concurrency) and records the results."""

    def __init__(
        self,
        store: Store,
        fetch: Fetch,
        poll: PollSettings,
        executor: Executor,
        *,
        log: FilteringBoundLogger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.poll = poll
        self.executor = executor
        self.log = log or get_logger()
        self.rng = rng or random.Random()

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or datetime.now(UTC)
        report = TickReport()
        due = self.store.due_tasks(now, MAX_DUE_PER_TICK)
        report.due = len(due)
        futures = {self.executor.submit(self._fetch, task.task_id): task for task in due}
        for future in as_completed(futures):
            task = futures[future]
            try:
                self._apply(task, future.result(), now, report)
            except Exception as exc:
                # Isolation: one task's bad data or a bug must not stop the others, nor be
                # retried on every tick.
                report.failed += 1
                self.log.exception("poller.task_failed", task_id=task.task_id)
                self._back_off(task, exc, now)
        return report

    def _back_off(self, task: Task, error: Exception, now: datetime) -> None:
        plan = plan_failure(task, error, now, self.poll, self._jitter())
        try:
            self.store.record_poll(task, plan.values, now, events=plan.events)
        except Exception:
            self.log.exception("poller.backoff_failed", task_id=task.task_id)

    def _fetch(self, task_id: str) -> TaskInfo | JiraError:
        try:
            return self.fetch(task_id)
        except JiraError as exc:
            return exc

    def _jitter(self) -> float:
        return self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _apply(
        self, task: Task, outcome: TaskInfo | JiraError, now: datetime, report: TickReport
    ) -> None:
        if isinstance(outcome, JiraError):
            self._log_failure(task, outcome)
            plan = plan_failure(task, outcome, now, self.poll, self._jitter())
        else:
            plan = plan_success(task, outcome, now, self.poll, self._jitter())
        written = self.store.record_poll(
            task,
            plan.values,
            now,
            snapshot=plan.snapshot,
            touch_snapshot=plan.touch_snapshot,
            events=plan.events,
        )
        if not written:
            report.skipped += 1  # removed by the CLI, or polled by another instance meanwhile
            return
        if isinstance(outcome, JiraError):
            report.failed += 1
            if plan.gone is not None:
                report.gone += 1
                self.log.warning("task.gone", task_id=task.task_id, reason=str(plan.gone))
            return
        report.polled += 1
        if plan.snapshot is not None:
            report.changed += 1
        if plan.status_changed:
            self.log.info(
                "task.status_changed",
                task_id=task.task_id,
                **{"from": task.status, "to": outcome.status},
                progress=outcome.progress,
            )
        if plan.finished:
            report.finished += 1
            report.finished_ids.append(task.task_id)
            self._log_finished(task, outcome, now)

    def _log_failure(self, task: Task, error: JiraError) -> None:
        if isinstance(error, JiraRateLimited):
            self.log.warning(
                "jira.rate_limited", task_id=task.task_id, retry_after_s=error.retry_after_s
            )
        elif not isinstance(error, JiraNotFound):
            self.log.warning(
                "jira.error",
                task_id=task.task_id,
                status=error.status,
                transient=error.transient,
                error=str(error),
            )

    def _log_finished(self, task: Task, info: TaskInfo, now: datetime) -> None:
        start = info.submitted or task.registered_at
        end = info.finished or now
        result: object = info.result
        text = _json_result(result)
        if text is not None and len(text) > MAX_LOGGED_RESULT_CHARS:
            result = text[:MAX_LOGGED_RESULT_CHARS] + "...(truncated)"
        level = self.log.info if info.status == "COMPLETE" else self.log.warning
        level(
            "task.finished",
            task_id=task.task_id,
            label=task.label,
            status=info.status,
            progress=info.progress,
            elapsed_runtime_ms=info.elapsed_runtime_ms,
            duration_s=round(max((end - start).total_seconds(), 0.0), 3),
            polls=task.polls + 1,
            cancelled_by_monitor=task.cancel_requested_by == "monitor",
            timed_out=task.timed_out,
            result=result,
        )
