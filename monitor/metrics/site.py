"""What the Jira layer reports to the metrics: its requests and the site's pauses.

The Jira client and the site gate sit below a poll's meaning (docs/architecture.md), so they
see only this part of the daemon's `Telemetry` (`monitor.metrics.hooks`): the same object,
through a narrower protocol that names nothing above them. Like the hooks, it imports no
metrics library, and each call must be cheap and never raise.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class PauseReason(StrEnum):
    """Why every request to the site was paused (`monitor.jira.pacing.SiteGate`)."""

    RATE_LIMITED = "rate_limited"  # a 429, or a 503 with Retry-After
    CREDENTIALS = "credentials"  # 401s in a row: the credentials are refused
    FORBIDDEN = "forbidden"  # 403s in a row on tasks: every request is refused


class SiteTelemetry(Protocol):
    """What the Jira client and the site gate report. Implementations must be thread-safe."""

    def request(self, status: int | None, seconds: float) -> None:
        """A request to Jira ended: its HTTP status (None: no answer), its duration from
        send to last byte (the wait for the rate cap excluded)."""

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        """The site's pause grew by `seconds` of wall time; `new`: no pause was in force."""


class _Quiet:
    """Counts nothing: a client or gate built without the daemon's telemetry."""

    def request(self, status: int | None, seconds: float) -> None:
        pass

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        pass


NO_SITE_TELEMETRY: SiteTelemetry = _Quiet()
