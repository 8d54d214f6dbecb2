"""`Recorder`: the daemon's counters, kept in memory and updated where things happen.

It is the `Telemetry` (`monitor.metrics.hooks`) the daemon hands its parts when `[metrics]
listen` is set. Every series whose labels are known in advance is created at zero, so that
`rate()` and `increase()` see the first event and an alert on "any in the last hour" works
from the daemon's start. A counter counts since the daemon started; Prometheus handles the
reset at a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.metrics.hooks import CancelResult
from monitor.metrics.names import (
    CODE_CLASSES,
    OK,
    POLL_OUTCOMES,
    TASK_KINDS,
    code_class,
    status_label,
)
from monitor.metrics.site import PauseReason
from monitor.outcome import Happened, Outcome
from monitor.states import CancelOutcome, JiraStatus, TaskKind, TimeoutAction, TimeoutKind

# The `_created` series would double every counter and histogram, for a time no alert needs.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_DURATION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TERMINAL = (JiraStatus.COMPLETE, JiraStatus.FAILED, JiraStatus.CANCELLED, JiraStatus.DEAD)
_CANCEL_OUTCOMES = {
    CancelOutcome.CONFIRMED: CancelResult.CONFIRMED,
    CancelOutcome.OVERTAKEN: CancelResult.OVERTAKEN,
}


class Recorder:
    """The counters, registered in `registry`. Thread-safe (the client library's metrics are)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Declared in this order, which is the order of the exposition.
        self._declare_polls(registry)
        self._declare_tasks(registry)
        self._declare_daemon(registry)
        self._zero()

    def _declare_polls(self, registry: CollectorRegistry) -> None:
        """The polls, and the requests to Jira and the pauses of the site behind them."""
        self.polls = _counter(
            registry,
            "jtm_polls",
            "Polls of a task whose outcome was recorded, by outcome: ok or the kind of error.",
            ("kind", "outcome"),
        )
        self.requests = _counter(
            registry,
            "jtm_jira_requests",
            "Requests to Jira, by HTTP status class (error: no answer).",
            ("code_class",),
        )
        self.request_seconds = Histogram(
            "jtm_jira_request_duration_seconds",
            "Duration of a request to Jira, from send to last byte (pacing excluded).",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.pauses = _counter(
            registry,
            "jtm_jira_pauses",
            "Pauses of every request to the site, by reason.",
            ("reason",),
        )
        self.paused_seconds = _counter(
            registry,
            "jtm_jira_paused_seconds",
            "Wall-clock seconds every request to the site was paused, by reason.",
            ("reason",),
        )

    def _declare_tasks(self, registry: CollectorRegistry) -> None:
        """What happened to the tasks: limits passed, cancels, ends, changes seen."""
        self.timeouts = _counter(
            registry,
            "jtm_timeouts",
            "Limits passed, by limit and action (task.timeout).",
            ("kind", "limit", "action"),
        )
        self.cancels = _counter(
            registry,
            "jtm_cancels",
            "Cancel steps by result: sent, refused, failed (to be retried), "
            "unconfirmed, confirmed, overtaken.",
            ("kind", "result"),
        )
        self.finished = _counter(
            registry,
            "jtm_tasks_finished",
            "Tasks seen reaching a terminal status, by Jira status.",
            ("kind", "status"),
        )
        self.task_seconds = Histogram(
            "jtm_task_duration_seconds",
            "Duration of a finished task, from Jira's submitted (else its registration) to "
            "its end.",
            ("kind",),
            buckets=TASK_DURATION_BUCKETS,
            registry=registry,
        )
        self.snapshots = _counter(
            registry, "jtm_snapshots_written", "Snapshots written (observed changes)."
        )

    def _declare_daemon(self, registry: CollectorRegistry) -> None:
        """The daemon's own work: failed writes and ticks."""
        self.store_failures = _counter(
            registry,
            "jtm_store_write_failures",
            "Writes to the database that failed for the storage.",
        )
        self.tick_seconds = Histogram(
            "jtm_tick_duration_seconds",
            "Duration of a completed tick.",
            buckets=TICK_BUCKETS,
            registry=registry,
        )
        self.last_tick = Gauge(
            "jtm_last_tick_timestamp_seconds",
            "When the last tick completed (Unix time).",
            registry=registry,
        )

    def _zero(self) -> None:
        for code in CODE_CLASSES:
            self.requests.labels(code)
        for reason in PauseReason:
            self.pauses.labels(str(reason))
            self.paused_seconds.labels(str(reason))
        for kind in TASK_KINDS:
            for outcome in POLL_OUTCOMES:
                self.polls.labels(kind, outcome)
            for limit in TimeoutKind:
                for action in TimeoutAction:
                    self.timeouts.labels(kind, str(limit), str(action))
            for result in CancelResult:
                self.cancels.labels(kind, str(result))
            for status in TERMINAL:
                self.finished.labels(kind, str(status))
            self.task_seconds.labels(kind)

    # -- Telemetry --------------------------------------------------------------------------

    def request(self, status: int | None, seconds: float) -> None:
        self.requests.labels(code_class(status)).inc()
        self.request_seconds.observe(seconds)

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        if new:
            self.pauses.labels(str(reason)).inc()
        self.paused_seconds.labels(str(reason)).inc(seconds)

    def polled(self, outcome: Outcome) -> None:
        failure, seen = outcome.failure, outcome.seen
        kind = str(outcome.task.ref.kind)
        if not outcome.happened.answered:
            if failure is not None:
                self.polls.labels(kind, str(failure.kind)).inc()
            return
        self.polls.labels(kind, OK).inc()
        if seen is not None and seen.changed:
            self.snapshots.inc()
        if outcome.timeouts is not None:
            action = str(outcome.timeouts.action)
            for overrun in outcome.timeouts.passed:
                self.timeouts.labels(kind, str(overrun.kind), action).inc()
        closed = outcome.cancel.closed if outcome.cancel is not None else None
        result = _CANCEL_OUTCOMES.get(closed) if closed is not None else None
        if result is not None:
            self.cancels.labels(kind, str(result)).inc()
        if outcome.happened == Happened.FINISHED and seen is not None:
            info = seen.info
            self.finished.labels(kind, status_label(info.status)).inc()
            start = info.submitted or outcome.task.registered_at
            end = info.finished or outcome.at
            self.task_seconds.labels(kind).observe(max((end - start).total_seconds(), 0.0))

    def cancel(self, kind: TaskKind, result: CancelResult) -> None:
        self.cancels.labels(str(kind), str(result)).inc()

    def store_failed(self) -> None:
        self.store_failures.inc()

    def tick(self, seconds: float, at: datetime) -> None:
        self.tick_seconds.observe(seconds)
        self.last_tick.set(at.astimezone(UTC).timestamp())


def _counter(
    registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()
) -> Counter:
    return Counter(name, doc, labels, registry=registry)
