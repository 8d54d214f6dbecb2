"""The calls the daemon makes where things happen, for the metrics (`Telemetry`).

This module is the whole surface the poll path, the Jira client, the site gate, the canceller
and the backlog see of metrics: one object passed in, one call per event, and `NO_TELEMETRY`,
which does nothing, when the endpoint is off. It imports no metrics library, so that the
modules calling it stay as light as they were. The counting is `monitor.metrics.recorder`'s.

Each call must be cheap and must never raise: it runs on the request and poll paths.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from monitor.errors import JiraError
    from monitor.jira.payload import TaskInfo
    from monitor.observation import PollPlan
    from monitor.records import Task


class PauseReason(StrEnum):
    """Why every request to the site was paused (`monitor.jira.pacing.SiteGate`)."""

    RATE_LIMITED = "rate_limited"  # a 429, or a 503 with Retry-After
    CREDENTIALS = "credentials"  # 401s in a row: the credentials are refused
    FORBIDDEN = "forbidden"  # 403s in a row on tasks: every request is refused


class CancelResult(StrEnum):
    """What became of a cancel: a step of the canceller, or the outcome a poll saw."""

    SENT = "sent"  # Jira accepted the request
    REFUSED = "refused"  # Jira said no: the decision is closed
    FAILED = "failed"  # no answer, or a transient error: another attempt follows
    UNCONFIRMED = "unconfirmed"  # still not terminal after every attempt's grace period
    CONFIRMED = "confirmed"  # the task reached CANCELLED
    OVERTAKEN = "overtaken"  # the task reached another terminal status first


class Telemetry(Protocol):
    """What the daemon reports as it works. Implementations must be thread-safe."""

    def request(self, status: int | None, seconds: float) -> None:
        """A request to Jira ended: its HTTP status (None: no answer), its duration from
        send to last byte (the wait for the rate cap excluded)."""

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        """The site's pause grew by `seconds` of wall time; `new`: no pause was in force."""

    def polled(
        self, task: Task, answer: TaskInfo | JiraError, plan: PollPlan, now: datetime
    ) -> None:
        """A poll's outcome was written (the poller's `PollPlan` says what it meant)."""

    def cancel(self, result: CancelResult) -> None:
        """A cancel step was taken (by the daemon's canceller)."""

    def store_failed(self) -> None:
        """A write to the database failed for the storage (disk full, read-only, ...)."""

    def tick(self, seconds: float, at: datetime) -> None:
        """A tick completed at `at` after `seconds`."""


class _NoTelemetry:
    """Counts nothing: the daemon without `[metrics] listen`, the CLI, the tests."""

    def request(self, status: int | None, seconds: float) -> None:
        pass

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        pass

    def polled(
        self, task: Task, answer: TaskInfo | JiraError, plan: PollPlan, now: datetime
    ) -> None:
        pass

    def cancel(self, result: CancelResult) -> None:
        pass

    def store_failed(self) -> None:
        pass

    def tick(self, seconds: float, at: datetime) -> None:
        pass


NO_TELEMETRY: Telemetry = _NoTelemetry()
