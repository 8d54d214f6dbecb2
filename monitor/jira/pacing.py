"""One request budget per Jira site, shared by every worker thread.

Jira Cloud rate-limits per site (tenant), so everything the monitor sends to one site goes
through one `SiteGate`. The gate enforces two rules before each request:

1. Pacing: requests are spaced at least `1 / max_rps` apart and never more than `max_rps` of
   them fall in any one-second window (for a non-integer rate, `floor(max_rps)`, at least 1).
   Nobody bursts, not even after a quiet spell.
2. Pause: after a 429 the client calls `rate_limited(retry_after)` (or `pause(seconds)`);
   until that deadline nobody sends. A pause only ever grows: a shorter, later `pause()` never
   cuts an earlier, longer one.

How long a rate-limit answer pauses the site (`rate_limited`), per Atlassian's advice:
- with a `Retry-After`: that long, but at least `MIN_PAUSE_S` (Jira has been seen to send `0`,
  and an immediate retry would only earn another 429) and at most `MAX_PAUSE_S` (a bad header
  must not silence the daemon for days; a request sent too early just earns a fresh 429);
- without one: 5 s doubling with each consecutive rate-limit answer *to the site*, capped at
  30 s, then jittered x0.7-1.3. Any success (`succeeded()`) resets the count.

Time is injectable (`clock`, `sleep`) so unit tests run without real waiting. With the default
`sleep=None` the gate waits on an internal event, so `close()` wakes every waiting thread at
once and makes `acquire()` raise `JiraUnreachable("client closed")`: a daemon shutting down is
never stuck in a long pause.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from monitor.errors import ClientClosed
from monitor.metrics.site import NO_SITE_TELEMETRY, PauseReason, SiteTelemetry

__all__ = [
    "AUTH_PAUSE_AFTER",
    "AUTH_PAUSE_MAX_S",
    "AUTH_PAUSE_S",
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "FORBIDDEN_PAUSE_AFTER",
    "MAX_PAUSE_S",
    "MIN_PAUSE_S",
    "SiteGate",
    "rate_limit_reset_seconds",
    "retry_after_seconds",
]

MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 3600.0
BACKOFF_INITIAL_S = 5.0
BACKOFF_MAX_S = 30.0
AUTH_PAUSE_AFTER = 3
AUTH_PAUSE_S = 60.0
AUTH_PAUSE_MAX_S = 900.0
FORBIDDEN_PAUSE_AFTER = 20
"""403s on tasks in a row, with no success between them, that mean every request is refused:
a few tasks the account may not see never come near it while others are polled."""
_DELTA_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)

# Waits shorter than this count as done: with float clocks a computed wait of 1e-17 s would
# otherwise never advance `now` past the slot.
_EPSILON = 1e-9


class SiteGate:
    """A thread-safe, per-site request gate: even pacing plus a site-wide pause.

    `acquire()` blocks until one request may be sent and accounts for it; call it once per
    request, right before sending. `clock` must be monotonic (seconds); `paused_until()` is
    expressed on that clock.
    """

    def __init__(
        self,
        max_rps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        telemetry: SiteTelemetry = NO_SITE_TELEMETRY,
    ) -> None:
        """`telemetry` is told how much each pause adds (`monitor.metrics`)."""
        self._telemetry = telemetry
        if not (math.isfinite(max_rps) and max_rps > 0):
            raise ValueError(f"max_rps must be a positive number, got {max_rps!r}")
        self.max_rps = max_rps
        self._spacing = 1.0 / max_rps
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._next_free = -math.inf  # earliest time the next request may go (spacing)
        self._pause_deadline = -math.inf
        # Send times of the last `window` requests: the oldest must be >= 1 s old before the
        # next one goes. Redundant with the spacing for integer rates, decisive otherwise
        # (at 2.5 rps, spacing alone would let 3 requests into one second).
        self._window = max(1, math.floor(max_rps))
        self._recent: deque[float] = deque(maxlen=self._window)
        self._rate_limited_in_a_row = 0
        self._rejected_in_a_row = 0
        self._forbidden_in_a_row = 0
        self._random = random.Random()
        self.on_rate_limited: Callable[[float], None] | None = None
        """Called with the pause after each rate-limit answer (several instances share it,
        `monitor.sharing`); it must not raise."""

    def acquire(self) -> None:
        """Block until a request may be sent, and count it as sent.

        Raises `JiraUnreachable("client closed")` once `close()` has been called, including
        for threads already waiting.
        """
        while True:
            with self._lock:
                if self._closed.is_set():
                    raise ClientClosed()
                now = self._clock()
                ready_at = max(self._pause_deadline, self._next_free)
                if len(self._recent) == self._window:
                    ready_at = max(ready_at, self._recent[0] + 1.0)
                wait = ready_at - now
                if wait <= _EPSILON:
                    self._recent.append(now)
                    self._next_free = now + self._spacing
                    return
            # Sleep outside the lock; on waking, re-check everything: a pause may have been
            # set meanwhile, or another thread may have taken the slot.
            self._wait(wait)

    def share(self, instances: int) -> None:
        """Pace at `max_rps / instances`: this process is one of `instances` daemons sending
        to the site (`monitor.sharing`), which together keep to `max_rps`."""
        instances = max(1, instances)
        with self._lock:
            rate = self.max_rps / instances
            window = max(1, math.floor(rate))
            if window != self._window:
                self._window = window
                self._recent = deque(self._recent, maxlen=window)
            self._spacing = 1.0 / rate

    def pause(self, seconds: float, reason: PauseReason | None = None) -> None:
        """Stop all sending for `seconds` from now, unless a longer pause is already in force."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            before = max(self._pause_deadline, now)
            self._pause_deadline = max(self._pause_deadline, now + seconds)
            added = self._pause_deadline - before
        if reason is not None and added > 0:
            self._telemetry.paused(reason, added, new=before == now)

    def rate_limited(self, retry_after_s: float | None) -> float:
        """Record a rate-limit answer from the site and pause it; return the pause (seconds).

        See the module docstring for the policy (Retry-After clamped, else jittered backoff).
        """
        with self._lock:
            self._rate_limited_in_a_row += 1
            in_a_row = self._rate_limited_in_a_row
        if retry_after_s is not None and math.isfinite(retry_after_s):
            seconds = min(MAX_PAUSE_S, max(MIN_PAUSE_S, retry_after_s))
        else:
            doubled = BACKOFF_INITIAL_S * 2.0 ** min(in_a_row - 1, 16)
            seconds = min(BACKOFF_MAX_S, doubled) * self._random.uniform(0.7, 1.3)
        self.pause(seconds, PauseReason.RATE_LIMITED)
        if self.on_rate_limited is not None:
            self.on_rate_limited(seconds)
        return seconds

    def credentials_rejected(self) -> float | None:
        """Record a 401 (or a 403 on the site itself); return the site-wide pause it caused.

        Returns None when it caused none.

        One refusal can be one task's permissions; `AUTH_PAUSE_AFTER` in a row with no success
        between them means the credentials themselves are refused. Then every worker stops
        for `AUTH_PAUSE_S`, doubling with each further refusal up to `AUTH_PAUSE_MAX_S`,
        instead of hammering the site with requests bound to fail.
        """
        with self._lock:
            self._rejected_in_a_row += 1
            in_a_row = self._rejected_in_a_row
        if in_a_row < AUTH_PAUSE_AFTER:
            return None
        seconds = min(AUTH_PAUSE_MAX_S, AUTH_PAUSE_S * 2.0 ** min(in_a_row - AUTH_PAUSE_AFTER, 16))
        self.pause(seconds, PauseReason.CREDENTIALS)
        return seconds

    def forbidden(self) -> float | None:
        """Record a 403 on one task; return the site-wide pause it caused, if any.

        A 403 on a task is normally that task's problem (the account is neither a Jira admin
        nor its creator) and pauses nothing. Only `FORBIDDEN_PAUSE_AFTER` in a row with no
        success between them (every request refused) pause the site, as refused credentials
        do: `AUTH_PAUSE_S`, doubling up to `AUTH_PAUSE_MAX_S`.
        """
        with self._lock:
            self._forbidden_in_a_row += 1
            in_a_row = self._forbidden_in_a_row
        if in_a_row < FORBIDDEN_PAUSE_AFTER:
            return None
        seconds = min(
            AUTH_PAUSE_MAX_S, AUTH_PAUSE_S * 2.0 ** min(in_a_row - FORBIDDEN_PAUSE_AFTER, 16)
        )
        self.pause(seconds, PauseReason.FORBIDDEN)
        return seconds

    def succeeded(self) -> None:
        """A request to the site succeeded: backoffs for rate limits and refused credentials
        start from the beginning again."""
        with self._lock:
            self._rate_limited_in_a_row = 0
            self._rejected_in_a_row = 0
            self._forbidden_in_a_row = 0

    def paused_until(self) -> float | None:
        """The clock time at which the current pause ends, or None if no pause is in force."""
        with self._lock:
            deadline = self._pause_deadline
            return deadline if deadline > self._clock() else None

    def close(self) -> None:
        """Wake every waiting thread; from now on `acquire()` raises `JiraUnreachable`."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _wait(self, seconds: float) -> None:
        if self._sleep is None:
            self._closed.wait(seconds)
        else:
            self._sleep(seconds)

    def __repr__(self) -> str:
        return f"SiteGate(max_rps={self.max_rps!r})"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds ("0", "2", "1.5") or an HTTP
    date (relative to `now`, default the current time). None when missing or garbage; never
    negative (a date in the past gives 0)."""
    text = (value or "").strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    when = http_date(text)
    if when is None:
        return None
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta) if math.isfinite(delta) else None


def rate_limit_reset_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds until `X-RateLimit-Reset`, an ISO 8601 timestamp ("2026-03-01T12:34Z"); a
    naive one is UTC. None when missing or garbage; never negative."""
    text = (value or "").strip()
    if not text or len(text) > 40:
        return None
    when: datetime | None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = http_date(text)
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta) if math.isfinite(delta) else None


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (as in `Date` or `Retry-After`) as an aware UTC datetime; None when
    missing or garbage."""
    try:
        when = parsedate_to_datetime((value or "").strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
