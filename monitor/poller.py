"""One tick of the daemon's work: poll the due tasks, record what changed, log outcomes.

`Poller.tick(now)` is a plain function of the database, Jira and `now`: the scheduler only
calls it, and tests call it directly with a chosen `now`. Each task is read, then polled with
no transaction open, then written back with a compare-and-set on its own row, so a task the
CLI removed meanwhile is not resurrected. Answers that came back together share one short
write transaction (`WRITE_GROUP`); a crash between poll and write loses those polls, which
are simply made again.

Deciding what a poll means is pure (`monitor.observation`: one `Outcome` per poll); the
store writes it (`Store.record_polls`) and `monitor.pollreport` counts and logs it. A task
whose processing raises is isolated: it is logged, backed off, and the others carry on. A
write that fails because of the storage (disk full, read-only) is no one task's fault: the
outcomes are held in memory and written later (`monitor.backlog`), and each task keeps its
schedule meanwhile, so Jira sees no more requests than usual.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from queue import SimpleQueue

from structlog.typing import FilteringBoundLogger

from monitor.backlog import Backlog
from monitor.canceller import Canceller
from monitor.config import PollSettings, TimeoutSettings
from monitor.deadlines import Limits
from monitor.errors import ClientClosed, JiraError, StoreUnavailable
from monitor.jira import TaskInfo
from monitor.jira.api import TaskApi
from monitor.logs import get_logger
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.notify.router import Router
from monitor.observation import JITTER, observe, observe_failure
from monitor.outcome import Outcome
from monitor.pollreport import TickReport, log_failure, report_poll
from monitor.records import Task
from monitor.store import Store

__all__ = ["NOT_SENT", "Poller", "TaskApi", "TickReport"]

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


class Poller:
    """Polls due tasks with `executor` (its size is the concurrency), records the results,
    and takes the cancel steps that are due.

    `watched_since` is when this continuous run of observation began (the daemon's start):
    the monitor's own downtime before it never counts as a stall. `backlog` holds outcomes
    that could not be written yet; the daemon hands the same one to each poller it builds.
    `telemetry` is told each written poll's outcome and each cancel step (`monitor.metrics`).
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
        notify: Router | None = None,
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
        self.notify = notify  # decides the notifications written with each poll's events
        self.canceller = Canceller(
            store,
            api.cancel_task,
            timeouts.cancel_grace_s,
            log=self.log,
            telemetry=telemetry,
            notify=notify,
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
            self._flush(report)
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

    def flush(self) -> TickReport:
        """Try to write the outcomes held while the database could not be written (at a
        stop: the tick does it first thing anyway). `len(self.backlog)` says what is left."""
        report = TickReport()
        if len(self.backlog):
            self._flush(report)
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
            answer = self.api.get_task(task.ref) if keep_going() else NOT_SENT
        except ClientClosed:
            answer = NOT_SENT  # the gate was closed by a stop while this request waited
        except Exception as exc:  # a JiraError is an answer; any other is isolated later
            answer = exc
        finally:
            answers.put((task, answer))

    def _apply(self, group: list[tuple[Task, Answer]], now: datetime, report: TickReport) -> None:
        """Decide what each answer of `group` means, then write and report the outcomes."""
        outcomes = [self._outcome(task, answer, now, report) for task, answer in group]
        self._write([o for o in outcomes if o is not None], report)

    def _outcome(
        self, task: Task, answer: Answer, now: datetime, report: TickReport
    ) -> Outcome | None:
        """The outcome of one answer; None for a request not sent or a task isolated."""
        if answer is NOT_SENT:
            report.skipped += 1
            return None
        if not isinstance(answer, TaskInfo | JiraError):  # a bug in a worker
            self._isolate(task, answer, now, report)
            return None
        try:
            if isinstance(answer, TaskInfo):
                outcome = observe(
                    task,
                    answer,
                    now,
                    self.poll,
                    Limits.for_task(task, self.timeouts),
                    watched_since=self.watched_since,
                    jitter=self._jitter(),
                )
            else:
                outcome = observe_failure(task, answer, now, self.poll, self._jitter())
                log_failure(self.log, outcome)
            # The notifications of its events, decided now and written with them.
            return self.notify.attach(outcome) if self.notify else outcome
        except Exception as exc:
            self._isolate(task, exc, now, report)
            return None

    def _write(self, outcomes: list[Outcome], report: TickReport) -> None:
        """The one write path: behind what is held, if anything is; else together in one
        transaction; else (that failed for the data) each alone, so that one task's bad data
        costs only its own poll. A failure of the storage holds what is left."""
        if len(self.backlog):  # new outcomes go in behind the held ones, never before
            for outcome in outcomes:
                self._hold(outcome, report)
            self._flush(report)
            return
        if len(outcomes) > 1 and self._write_together(outcomes, report):
            return
        for i, outcome in enumerate(outcomes):
            try:
                ok = self.store.record_polls([outcome])[0]
            except StoreUnavailable as exc:
                self._hold_all(outcomes[i:], exc, report)
                return
            except Exception as exc:
                self._isolate(outcome.task, exc, outcome.at, report)
            else:
                self.backlog.written()
                self._settle(outcome, ok, report)

    def _write_together(self, outcomes: list[Outcome], report: TickReport) -> bool:
        """Write `outcomes` in one transaction; False if that failed for the data. A failure
        of the storage holds them all (no write would go in alone either)."""
        try:
            written = self.store.record_polls(outcomes)
        except StoreUnavailable as exc:
            self._hold_all(outcomes, exc, report)
            return True
        except Exception:
            return False
        self.backlog.written()
        for outcome, ok in zip(outcomes, written, strict=True):
            self._settle(outcome, ok, report)
        return True

    def _hold(self, outcome: Outcome, report: TickReport) -> None:
        self.backlog.hold(outcome)
        report.held += 1

    def _hold_all(
        self, outcomes: list[Outcome], error: StoreUnavailable, report: TickReport
    ) -> None:
        for outcome in outcomes:
            self._hold(outcome, report)
        self.backlog.failed(error)

    def _flush(self, report: TickReport) -> None:
        """Write what is held (`Backlog.flush`), then count and log those polls."""
        written = self.backlog.flush(self.store)
        if written:
            self.backlog.written(tasks=len({held.outcome.task.task_id for held, _ in written}))
        for held, ok in written:
            if held.report:
                self._settle(held.outcome, ok, report)

    def _isolate(self, task: Task, error: Exception, now: datetime, report: TickReport) -> None:
        """One task's bad data or a bug must not stop the others, nor be retried every tick."""
        report.failed += 1
        self.log.error("poller.task_failed", task_id=task.task_id, exc_info=error)
        self._back_off(task, error, now)

    def _back_off(self, task: Task, error: Exception, now: datetime) -> None:
        """Write the back-off of an isolated task (counted already: not reported again)."""
        outcome = observe_failure(task, error, now, self.poll, self._jitter())
        if len(self.backlog):
            self.backlog.hold(outcome, report=False)
            return
        try:
            self.store.record_polls([outcome])
        except StoreUnavailable as exc:
            self.backlog.hold(outcome, report=False)
            self.backlog.failed(exc)
        except Exception:
            self.log.exception("poller.backoff_failed", task_id=task.task_id)

    def _jitter(self) -> float:
        return self.rng.uniform(1 - JITTER, 1 + JITTER)

    def _settle(self, outcome: Outcome, written: bool, report: TickReport) -> None:
        """Count and log a poll once its outcome is written (or lost its race)."""
        try:
            report_poll(self.log, outcome, written, report, self.telemetry)
        except Exception as exc:
            self._isolate(outcome.task, exc, outcome.at, report)
