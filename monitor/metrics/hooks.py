"""The calls the daemon makes where things happen, for the metrics (`Telemetry`).

This module is the whole surface the poll path, the canceller and the backlog see of
metrics: one object passed in, one call per event, and `NO_TELEMETRY`, which does nothing,
when the endpoint is off. The Jira client and the site gate are handed the same object as a
`SiteTelemetry` (`monitor.metrics.site`), the part of it they report to. It imports no
metrics library, so that the modules calling it stay as light as they were. The counting is
`monitor.metrics.recorder`'s.

Where each call is made: `polled` by `monitor.pollreport.report_poll`, from a poll's written
`Outcome` (what happened is decided once, in `monitor.observation`); `cancel` by the
canceller; `store_failed` by the backlog; `tick` by `Daemon.tick`; `request` by the client's
`_send`; `paused` by `SiteGate.pause`.

Each call must be cheap and must never raise: it runs on the request and poll paths.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from monitor.metrics.site import PauseReason, SiteTelemetry
from monitor.states import TaskKind

if TYPE_CHECKING:
    from monitor.outcome import Outcome

__all__ = ["NO_TELEMETRY", "CancelResult", "PauseReason", "SiteTelemetry", "Telemetry"]


class CancelResult(StrEnum):
    """What became of a cancel: a step of the canceller, or the outcome a poll saw."""

    SENT = "sent"  # Jira accepted the request
    REFUSED = "refused"  # Jira said no: the decision is closed
    FAILED = "failed"  # no answer, or a transient error: another attempt follows
    UNCONFIRMED = "unconfirmed"  # still not terminal after every attempt's grace period
    CONFIRMED = "confirmed"  # the task reached CANCELLED
    OVERTAKEN = "overtaken"  # the task reached another terminal status first


class Telemetry(SiteTelemetry, Protocol):
    """What the daemon reports as it works. Implementations must be thread-safe."""

    def polled(self, outcome: Outcome) -> None:
        """A poll's outcome was written (not called for one that lost its race)."""

    def cancel(self, kind: TaskKind, result: CancelResult) -> None:
        """A cancel step was taken (by the daemon's canceller) on a task of `kind`."""

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

    def polled(self, outcome: Outcome) -> None:
        pass

    def cancel(self, kind: TaskKind, result: CancelResult) -> None:
        pass

    def store_failed(self) -> None:
        pass

    def tick(self, seconds: float, at: datetime) -> None:
        pass


NO_TELEMETRY: Telemetry = _NoTelemetry()
