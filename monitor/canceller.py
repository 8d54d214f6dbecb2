"""Two-phase cancel: record the decision, claim an attempt, send it, confirm it by polling.

1. A decision is recorded durably before anything is sent: by the poller when a limit with
   action `cancel` is passed (in the same compare-and-set write as the poll that saw it), or
   by `jtm cancel`. `cancel_next_at` is then "now".
2. `Canceller.send_due` claims the next attempt with a compare-and-set on the attempt count,
   and only then sends `POST .../cancel`, outside any transaction. A crash after the claim
   and before the POST costs one grace period, never a second cancel for one decision.
3. The poller keeps polling. Terminal within `timeouts.cancel_grace`: done (confirmed, or
   overtaken by another terminal status). Not terminal: the next attempt, after a poll that
   saw it still running, up to `MAX_ATTEMPTS`; then `task.cancel_unconfirmed`.
A refusal (400: "cancellation of the task is not possible", or another permanent error) ends
the decision at once: `task.cancel_failed`, no retry storm, the task stays watched. A
restart never decides anything: it only carries on with decisions already recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from structlog.typing import FilteringBoundLogger

from monitor.errors import JiraError
from monitor.logs import get_logger
from monitor.metrics.hooks import NO_TELEMETRY, CancelResult, Telemetry
from monitor.notify.events import NotifyEvent
from monitor.notify.router import Router
from monitor.outcome import OutboxRow
from monitor.records import Task
from monitor.states import CancelOutcome, EventKind
from monitor.store import Store

MAX_ATTEMPTS = 3
TRANSIENT_RETRY_S = 30.0
"""After a cancel that did not reach Jira, the next attempt waits this long (or the grace
period, if shorter) times the attempts so far."""

DUE_PER_TICK = 100


class Attempt(StrEnum):
    SENT = "sent"  # Jira accepted the request (2xx)
    REFUSED = "refused"  # Jira said no: the decision is closed
    FAILED = "failed"  # no answer, or a transient error: another attempt will follow
    TAKEN = "taken"  # another process claimed this attempt first


@dataclass(frozen=True, slots=True)
class AttemptResult:
    kind: Attempt
    error: str | None = None


class Canceller:
    def __init__(
        self,
        store: Store,
        cancel: Callable[[str], None],
        grace_s: float,
        *,
        log: FilteringBoundLogger | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
        notify: Router | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.store = store
        self.notify = notify
        self.cancel = cancel
        self.grace_s = grace_s
        self.log = log or get_logger()

    def send_due(self, now: datetime) -> int:
        """Take every cancel step that is due; returns the number of requests sent."""
        sent = 0
        for task in self.store.cancels_due(now, DUE_PER_TICK):
            if task.cancel_attempts and not _seen_since_due(task):
                continue  # verdicts and retries wait for a poll that saw the task still going
            if task.cancel_attempts >= MAX_ATTEMPTS:
                self._unconfirmed(task, now)
            else:
                kind = self.attempt(task, now).kind
                if kind is not Attempt.TAKEN:
                    self.telemetry.cancel(task.ref.kind, CancelResult(str(kind)))
                sent += kind is Attempt.SENT
        return sent

    def attempt(self, task: Task, now: datetime) -> AttemptResult:
        """Claim and send the next attempt of `task`'s open cancel decision."""
        number = task.cancel_attempts + 1
        grace_ends = now + timedelta(seconds=self.grace_s)
        if not self.store.claim_cancel_attempt(task, now, grace_ends):
            return AttemptResult(Attempt.TAKEN)
        context: dict[str, object] = {
            "task_id": task.task_id,
            "kind": task.kind,
            "reason": task.cancel_reason,
            "attempt": number,
        }
        try:
            self.cancel(task.task_id)
        except JiraError as exc:
            if not exc.transient:
                self.store.update_cancel(
                    task.ref,
                    now,
                    {"cancel_outcome": CancelOutcome.REFUSED, "cancel_next_at": None},
                    (EventKind.CANCEL_FAILED, f"attempt {number} refused: {exc}"),
                    self._notices(
                        NotifyEvent.TASK_CANCEL_FAILED, task, now, str(exc), "stopped trying"
                    ),
                )
                self._log_failed(context, exc, final=True)
                return AttemptResult(Attempt.REFUSED, str(exc))
            retry = min(self.grace_s, TRANSIENT_RETRY_S * number)
            self.store.update_cancel(
                task.ref,
                now,
                {"cancel_next_at": now + timedelta(seconds=retry)},
                (EventKind.CANCEL_FAILED, f"attempt {number} failed, will retry: {exc}"),
            )
            self._log_failed(context, exc, final=False)
            return AttemptResult(Attempt.FAILED, str(exc))
        self.store.update_cancel(
            task.ref,
            now,
            {},
            (EventKind.CANCEL_SENT, f"attempt {number} accepted by Jira"),
        )
        self.log.info("task.cancel_requested", **context, requested_by=task.cancel_requested_by)
        return AttemptResult(Attempt.SENT)

    def _log_failed(self, context: dict[str, object], error: JiraError, *, final: bool) -> None:
        """`task.cancel_failed`: `reason` says why it failed (Jira's refusal, or the
        permission the account lacks); `cancel_reason` why the cancel was decided."""
        fields = context | {"reason": str(error), "cancel_reason": context["reason"]}
        self.log.warning("task.cancel_failed", **fields, error=str(error), final=final)

    def _unconfirmed(self, task: Task, now: datetime) -> None:
        detail = f"still {task.status} after {task.cancel_attempts} accepted or failed attempts"
        closed = self.store.update_cancel(
            task.ref,
            now,
            {"cancel_outcome": CancelOutcome.UNCONFIRMED, "cancel_next_at": None},
            (EventKind.CANCEL_UNCONFIRMED, detail),
            self._notices(NotifyEvent.TASK_CANCEL_UNCONFIRMED, task, now, detail, "stopped trying"),
        )
        if closed:
            self.telemetry.cancel(task.ref.kind, CancelResult.UNCONFIRMED)
            self.log.warning(
                "task.cancel_unconfirmed",
                task_id=task.task_id,
                kind=task.kind,
                reason=task.cancel_reason,
                attempts=task.cancel_attempts,
                status=task.status,
            )

    def _notices(
        self, event: NotifyEvent, task: Task, now: datetime, reason: str, action: str
    ) -> tuple[OutboxRow, ...]:
        if not self.notify:
            return ()
        return self.notify.cancel_notices(event, task, now, reason, action)


def _seen_since_due(task: Task) -> bool:
    """Has a poll seen the task (still not terminal) since its cancel step fell due?"""
    return (
        task.last_seen_at is not None
        and task.cancel_next_at is not None
        and task.last_seen_at >= task.cancel_next_at
    )
