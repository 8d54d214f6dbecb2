"""Injected faults: the ways a Jira site, or a proxy in front of it, misbehaves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus

from monitor.simulator.wire import HTML_TYPE, JSON_TYPE, TEXT_TYPE, Reply, jira_error

FAULT_KINDS = frozenset(
    {"status", "rate_limit", "slow", "malformed", "html", "reset", "drip", "xsrf"}
)
RATE_LIMIT_REASON = "jira-burst-based"
RATE_LIMIT_LIMIT = "100"
FAULT_METHODS = frozenset({"GET", "POST"})


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour applied to matching API requests, in FIFO order, one fault per request.

    kinds:
      "status"      answer `status` (default 500) with a Jira JSON error body, plus Retry-After
                    when `retry_after` is set (Jira's 503 can carry it)
      "rate_limit"  429 with Retry-After = `retry_after` ("0", "2", an HTTP date; no header
                    when None), and Jira's X-RateLimit-Limit/-Remaining and RateLimit-Reason;
                    X-RateLimit-Reset (an ISO timestamp) `reset_in_s` from now when set
      "slow"        sleep `delay_s`, then answer normally
      "drip"        the normal answer, status line to body, one byte every `delay_s` (default
                    1 s): a server or proxy that holds a client as long as it likes
      "xsrf"        403 "XSRF check failed" as plain text, as Jira refuses a POST it suspects
      "malformed"   200 with a truncated JSON body
      "html"        answer `status` (default 502) with an HTML proxy error page
      "reset"       drop the connection without answering
    `count` is how many matching requests it applies to (None: until cleared); `method` ("GET"
    or "POST") and `task_id` restrict which requests match (None: any). Invalid values raise
    ValueError on construction.
    """

    kind: str
    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    count: int | None = 1
    reset_in_s: float | None = None
    method: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.kind not in FAULT_KINDS:
            problems.append(f"kind must be one of {', '.join(sorted(FAULT_KINDS))}")
        if self.status is not None and not 100 <= self.status <= 599:
            problems.append("status must be an HTTP status (100-599)")
        if self.delay_s < 0:
            problems.append("delay_s must be >= 0")
        if self.count is not None and self.count < 1:
            problems.append("count must be >= 1 (or None: until cleared)")
        if self.method is not None and self.method not in FAULT_METHODS:
            problems.append("method must be GET, POST or None")
        if problems:
            raise ValueError(f"invalid Fault {self.kind!r}: " + "; ".join(problems))

    def matches(self, method: str, task_id: str | None) -> bool:
        return (self.method is None or self.method == method) and (
            self.task_id is None or self.task_id == task_id
        )

    def reply(self, task_id: str | None, now: float = 0.0) -> Reply | None:
        """The answer this fault gives instead of the normal one; None for "slow" and "drip",
        which only delay the normal answer. `now` is Jira's clock (epoch seconds)."""
        if self.kind in ("slow", "drip"):
            return None
        if self.kind == "xsrf":
            return Reply(403, b"XSRF check failed", TEXT_TYPE)
        if self.kind == "reset":
            return Reply(0, drop=True)
        if self.kind == "malformed":
            # Cut mid-token, as a connection lost halfway through the body would leave it.
            body = f'{{"self":"","id":"{task_id or ""}","status":"RUNN'.encode()
            return Reply(200, body, JSON_TYPE)
        if self.kind == "html":
            return _html_page(self.status or 502)
        if self.kind == "rate_limit":
            headers = [
                ("X-RateLimit-Limit", RATE_LIMIT_LIMIT),
                ("X-RateLimit-Remaining", "0"),
                ("RateLimit-Reason", RATE_LIMIT_REASON),
            ]
            if self.retry_after is not None:
                headers.append(("Retry-After", self.retry_after))
            if self.reset_in_s is not None:
                reset = datetime.fromtimestamp(now + self.reset_in_s, UTC)
                headers.append(("X-RateLimit-Reset", reset.isoformat(timespec="seconds")))
            return jira_error(429, "Rate limit exceeded.", headers=tuple(headers))
        status = self.status or 500
        retry = () if self.retry_after is None else (("Retry-After", self.retry_after),)
        return jira_error(status, f"Simulated failure: {_reason(status)}", headers=retry)


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _html_page(status: int) -> Reply:
    title = _reason(status)
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode(), HTML_TYPE)


class _Pending:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.count


class FaultQueue:
    """Pending faults in FIFO order. Not thread-safe: the simulator uses it under its lock."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, fault: Fault) -> None:
        self._pending.append(_Pending(fault))

    def clear(self) -> None:
        self._pending.clear()

    def take(self, method: str, task_id: str | None) -> Fault | None:
        """The first pending fault matching the request, one use of it consumed."""
        for index, pending in enumerate(self._pending):
            if not pending.fault.matches(method, task_id):
                continue
            if pending.remaining is not None:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._pending[index]
            return pending.fault
        return None
