"""One tick of the daemon's work: poll the due tasks, record what changed, log outcomes.

`Poller.tick(now)` is a plain function of the database, Jira and `now`: the scheduler only
calls it, and tests call it directly with a chosen `now`. Each task is read, then polled with
no transaction open, then written back with a compare-and-set on its own row, so a task the
CLI removed meanwhile is not resurrected. Answers that came back together share one short
write transaction (`WRITE_GROUP`); a crash between poll and write loses those polls, which
are simply made again.

Deciding what a poll means is pure (`monitor.observation`); applying and logging the
decision is `Poller`'s part. A task whose processing raises is isolated: it is logged, backed
off, and the others carry on. A write that fails because of the storage (disk full, read-only)
is no one task's fault: the outcomes are held in memory and written later (`monitor.backlog`),
and each task keeps its schedule meanwhile, so Jira sees no more requests than usual.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from monitor.backlog import Backlog
from monitor.canceller import Canceller
from monitor.config import PollSettings, TimeoutSettings
from monitor.deadlines import Limits
from monitor.errors import (
    ClientClosed,
    JiraError,
    JiraForbidden,
    JiraNotFound,
    JiraRateLimited,
    StoreUnavailable,
)
from monitor.jira import TaskInfo
from monitor.logs import get_logger
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.observation import (
    JITTER,
    PollPlan,
    json_result,
    plan_failure,
    plan_success,
)
from monitor.records import Task
from monitor.states import CancelSource, ErrorKind, JiraStatus
from monitor.store import PollWrite, Store

MAX_LOGGED_RESULT_CHARS = 1_000
MAX_DUE_PER_TICK = 5_000
DUE_BATCH = 500
WRITE_GROUP = 32
"""At most this many polls that came back together are written in one transaction."""
MAX_ROUNDS_PER_TICK = 20
"""A tick stops after this many rounds even if tasks keep falling due (a database that
cannot record polls would otherwise hand back the same tasks forever)."""


Answer = TaskInfo | Exception
"""What a worker hands back: Jira's answer, a JiraError, or whatever else went wrong."""

NO_ANSWER = RuntimeError("the request to Jira ended without an answer")
"""Handed back if a worker's request ends by a BaseException (the tick must not wait on it)."""

NOT_SENT = ClientClosed("not sent: the daemon is stopping")
"""Handed back for a request dropped at a stop: the task stays due and is polled next time."""


class TaskApi(Protocol):
    """What the poller needs of Jira (`JiraClient` is one)."""

    def get_task(self, task_id: str) -> TaskInfo: ...

    def cancel_task(self, task_id: str) -> None: ...


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


class Poller:
    """Polls due tasks with `executor` (its size is the concurrency), records the results,
    and takes the cancel steps that are due.

    `watched_since` is when this continuous run of observation began (the daemon's start):
    the monitor's own downtime before it never counts as a stall. `backlog` holds outcomes
    that could not be written yet; the daemon hands the same one to each poller it builds.
    `telemetry` is told each recorded poll's outcome (`monitor.metrics`).
    """

    def __init__(
        self,
        store: Store,
        api: TaskApi,
        poll: PollSettings,
        timeouts: TimeoutSettings,
        executor: Executor,
        *,
        log: FilteringBoundLogger | None = None,
        rng: random.Random | None = None,
        watched_since: datetime | None = None,
        backlog: Backlog | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.store = store
        self.telemetry = telemetry
        self.api = api
        self.poll = poll
        self.timeouts = timeouts
        self.executor = executor
        self.log = log or get_logger()
        self.rng = rng or random.Random()
        self.watched_since = watched_since or datetime.now(UTC)
        self.backlog = Backlog(self.log) if backlog is None else backlog
        self.backlog.log_every_s = poll.interval_s
        self.canceller = Canceller(
            store, api.cancel_task, timeouts.cancel_grace_s, log=self.log, telemetry=telemetry
        )

    def tick(
        self, now: datetime | None = None, keep_going: Callable[[], bool] = lambda: True
    ) -> TickReport:
        """Poll what is due, then send the cancels that are due.

        Due tasks are taken `DUE_BATCH` at a time (a few hundred task rows in memory, not
        thousands), and the tick looks again as long as it finds work: tasks that fell due
        while it polled are polled now, not a tick interval later. `now` fixes the clock
        (tests); otherwise each round reads it afresh. Once `keep_going` says no (the daemon
        is stopping), no new round starts, requests not yet sent are dropped (the tasks stay
        due, for the next start) and no cancel is sent: only requests in flight finish.

        Outcomes held while the database could not be written are tried first. Cancels wait
        while it cannot be written: a cancel is sent only once its attempt is recorded.
        """
        report = TickReport()
        if len(self.backlog):
            self._flush(now or datetime.now(UTC), report)
        for _round in range(MAX_ROUNDS_PER_TICK):
            try:
                batch = self.poll_due(now or datetime.now(UTC), DUE_BATCH, keep_going)
            except StoreUnavailable as exc:  # the database cannot even be read
                self.backlog.failed(exc)
                break
            report.add(batch)
            if batch.due == 0 or report.due >= MAX_DUE_PER_TICK or not keep_going():
                break
        if not self.backlog.failing and keep_going():
            try:
                report.cancels_sent = self.canceller.send_due(now or datetime.now(UTC))
            except StoreUnavailable as exc:
                self.backlog.failed(exc)
        return report

    def flush(self, now: datetime) -> TickReport:
        """Try to write the outcomes held while the database could not be written (at a
        stop: the tick does it first thing anyway). `len(self.backlog)` says what is left."""
        report = TickReport()
        if len(self.backlog):
            self._flush(now, report)
        return report

    def poll_due(
        self,
        now: datetime,
        limit: int = DUE_BATCH,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> TickReport:
        """Poll up to `limit` due tasks and record what they say (deciding cancels, not
        sending them).

        The workers ask Jira; this thread plans and writes. Answers that came back together
        (while this thread was busy with the ones before) are written in one transaction, up
        to `WRITE_GROUP` of them.
        """
        report = TickReport()
        due = self.backlog.due(self.store, now, limit)
        report.due = len(due)
        answers: SimpleQueue[tuple[Task, Answer]] = SimpleQueue()
        for task in due:
            self.executor.submit(self._fetch, task, answers, keep_going)
        waiting = len(due)
        while waiting:
            group = [answers.get()]
            while len(group) < WRITE_GROUP and not answers.empty():
                group.append(answers.get_nowait())
            waiting -= len(group)
            self._apply(group, now, report)
        return report

    def _fetch(
        self,
        task: Task,
        answers: SimpleQueue[tuple[Task, Answer]],
        keep_going: Callable[[], bool],
    ) -> None:
        """Ask Jira about `task` (in a worker) and hand what came back to the tick's thread;
        `NOT_SENT` instead once the daemon is stopping."""
        answer: Answer = NO_ANSWER
        try:
            answer = self.api.get_task(task.task_id) if keep_going() else NOT_SENT
        except ClientClosed:
            answer = NOT_SENT  # the gate was closed by a stop while this request waited
        except Exception as exc:  # a JiraError is an answer; any other is isolated later
            answer = exc
        finally:
            answers.put((task, answer))

    def _apply(self, group: list[tuple[Task, Answer]], now: datetime, report: TickReport) -> None:
        staged: list[_Polled] = []
        for task, answer in group:
            if answer is NOT_SENT:
                report.skipped += 1
                continue
            if not isinstance(answer, TaskInfo | JiraError):
                self._isolate(task, answer, now, report)
                continue
            try:
                staged.append(_Polled(task, answer, self._plan(task, answer, now)))
            except Exception as exc:
                self._isolate(task, exc, now, report)
        if len(self.backlog):  # new outcomes go in behind the held ones, never before
            for polled in staged:
                self._hold(polled.write(), now, report, polled)
            self._flush(now, report)
            return
        try:
            together = self._write_together(staged, now) if len(staged) > 1 else None
        except StoreUnavailable as exc:
            self._hold_all(staged, exc, now, report)
            return
        if together is not None:
            self.backlog.written()
            for polled, ok in zip(staged, together, strict=True):
                self._settle(polled, ok, now, report)
            return
        for i, polled in enumerate(staged):
            try:
                ok = self.store.record_polls([polled.write()], now)[0]
            except StoreUnavailable as exc:
                self._hold_all(staged[i:], exc, now, report)
                return
            except Exception as exc:
                self._isolate(polled.task, exc, now, report)
            else:
                self.backlog.written()
                self._settle(polled, ok, now, report)

    def _write_together(self, staged: list[_Polled], now: datetime) -> list[bool] | None:
        """Write `staged` in one transaction; None if that failed for the data (then each
        goes alone, so that one task's bad data costs only its own poll). A failure of the
        storage is raised: no write would go in alone either."""
        try:
            return self.store.record_polls([polled.write() for polled in staged], now)
        except StoreUnavailable:
            raise
        except Exception:
            return None

    def _hold(
        self, write: PollWrite, now: datetime, report: TickReport, polled: _Polled | None = None
    ) -> None:
        self.backlog.hold(write, now, polled)
        report.held += 1

    def _hold_all(
        self, staged: list[_Polled], error: StoreUnavailable, now: datetime, report: TickReport
    ) -> None:
        for polled in staged:
            self._hold(polled.write(), now, report, polled)
        self.backlog.failed(error)

    def _flush(self, now: datetime, report: TickReport) -> None:
        """Write what is held (`Backlog.flush`), then count and log those polls."""
        written = self.backlog.flush(self.store, now)
        if written:
            self.backlog.written(tasks=len({held.write.task.task_id for held, _ in written}))
        for held, ok in written:
            if isinstance(held.settle, _Polled):
                self._settle(held.settle, ok, held.write.at or now, report)

    def _isolate(self, task: Task, error: Exception, now: datetime, report: TickReport) -> None:
        """One task's bad data or a bug must not stop the others, nor be retried every tick."""
        report.failed += 1
        self.log.error("poller.task_failed", task_id=task.task_id, exc_info=error)
        self._back_off(task, error, now)

    def _back_off(self, task: Task, error: Exception, now: datetime) -> None:
        plan = plan_failure(task, error, now, self.poll, self._jitter())
        write = PollWrite(task, plan.values, events=plan.events)
        if len(self.backlog):
            self.backlog.hold(write, now)
            return
        try:
            self.store.record_polls([write], now)
        except StoreUnavailable as exc:
            self.backlog.hold(write, now)
            self.backlog.failed(exc)
        except Exception:
            self.log.exception("poller.backoff_failed", task_id=task.task_id)

    def _jitter(self) -> float:
        return self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _plan(self, task: Task, answer: TaskInfo | JiraError, now: datetime) -> PollPlan:
        if isinstance(answer, JiraError):
            self._log_failure(task, answer)
            return plan_failure(task, answer, now, self.poll, self._jitter())
        return plan_success(
            task,
            answer,
            now,
            self.poll,
            Limits.for_task(task, self.timeouts),
            watched_since=self.watched_since,
            jitter=self._jitter(),
        )

    def _settle(self, polled: _Polled, written: bool, now: datetime, report: TickReport) -> None:
        """Count and log a poll once its outcome is written (or lost its race)."""
        try:
            self._report(polled, written, now, report)
        except Exception as exc:
            self._isolate(polled.task, exc, now, report)

    def _report(self, polled: _Polled, written: bool, now: datetime, report: TickReport) -> None:
        task, answer, plan = polled.task, polled.answer, polled.plan
        if not written:
            report.skipped += 1  # removed by the CLI, or polled by another instance meanwhile
            return
        self.telemetry.polled(task, answer, plan, now)
        if isinstance(answer, JiraError):
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
                **{"from": task.status, "to": answer.status},
                progress=answer.progress,
            )
        for overrun in plan.timeouts:
            report.timeouts += 1
            self.log.warning(
                "task.timeout",
                task_id=task.task_id,
                kind=str(overrun.kind),
                limit_s=overrun.limit_s,
                observed_s=overrun.observed_s,
                action=str(plan.action),
                cancel=plan.decides_cancel,
            )
        if plan.finished:
            report.finished += 1
            self._log_finished(task, answer, now, plan)

    def _log_failure(self, task: Task, error: JiraError) -> None:
        if isinstance(error, JiraForbidden):
            # Once per change: a task the account may not see is refused at every poll.
            already = task.consecutive_errors and task.last_error_kind == ErrorKind.FORBIDDEN
            if not already:
                self.log.warning(
                    "task.access_denied", task_id=task.task_id, kind="task", reason=str(error)
                )
        elif isinstance(error, JiraRateLimited):
            self.log.warning(
                "jira.rate_limited",
                task_id=task.task_id,
                retry_after_s=error.retry_after_s,
                wait_s=error.pause_s,
                reason=error.reason,
            )
        elif not isinstance(error, JiraNotFound):
            self.log.warning(
                "jira.error",
                task_id=task.task_id,
                status=error.status,
                transient=error.transient,
                error=str(error),
            )

    def _log_finished(self, task: Task, info: TaskInfo, now: datetime, plan: PollPlan) -> None:
        start = info.submitted or task.registered_at
        end = info.finished or now
        result: object = info.result
        text = json_result(result)
        if text is not None and len(text) > MAX_LOGGED_RESULT_CHARS:
            result = text[:MAX_LOGGED_RESULT_CHARS] + "...(truncated)"
        level = self.log.info if info.status == JiraStatus.COMPLETE else self.log.warning
        level(
            "task.finished",
            task_id=task.task_id,
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
            timed_out=plan.values.get("timed_out", task.timed_out),
            result=result,
        )


@dataclass(frozen=True, slots=True)
class _Polled:
    """A task, what Jira answered, and what that means."""

    task: Task
    answer: TaskInfo | JiraError
    plan: PollPlan

    def write(self) -> PollWrite:
        plan = self.plan
        return PollWrite(
            self.task,
            plan.values,
            plan.snapshot,
            plan.touch_snapshot,
            plan.events,
            plan.decides_cancel,
        )
