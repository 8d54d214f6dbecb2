"""Closed vocabularies, defined once: task kinds and states, Jira statuses, event kinds,
timeouts, kinds of error, and the closed choices of the configuration (auth, log format and
level)."""

from __future__ import annotations

from enum import StrEnum


class TaskKind(StrEnum):
    """Which of Jira's trackers a task lives in; part of the task's identity.

    `task`: `/rest/api/{2|3}/task/{ID}` (cancellable). `bulk`: a bulk issue operation,
    `/rest/api/3/bulk/queue/{ID}` (no cancel endpoint). The same ID may exist in both.
    """

    TASK = "task"
    BULK = "bulk"


class TaskState(StrEnum):
    """The monitor's own view of a registered task (Jira's status is kept separately)."""

    WATCHING = "watching"
    FINISHED = "finished"
    GONE = "gone"
    REMOVED = "removed"


class JiraStatus(StrEnum):
    """The statuses Jira documents. Jira may send others: those are kept as plain strings."""

    ENQUEUED = "ENQUEUED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {JiraStatus.COMPLETE, JiraStatus.FAILED, JiraStatus.CANCELLED, JiraStatus.DEAD}
)


def is_terminal(status: str | None) -> bool:
    """True for the statuses after which a task never changes again."""
    return status in TERMINAL_STATUSES


class EventKind(StrEnum):
    """Rows of a task's timeline (`jtm show`)."""

    REGISTERED = "registered"
    UPDATED = "updated"
    REMOVED = "removed"
    FIRST_SEEN = "first_seen"
    STATUS_CHANGED = "status_changed"
    FINISHED = "finished"
    GONE = "gone"
    POLL_FAILED = "poll_failed"
    POLL_RECOVERED = "poll_recovered"
    TIMEOUT = "timeout"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_SENT = "cancel_sent"
    CANCEL_FAILED = "cancel_failed"
    CANCEL_UNCONFIRMED = "cancel_unconfirmed"
    CANCEL_CONFIRMED = "cancel_confirmed"


class TimeoutKind(StrEnum):
    TOTAL = "total"
    QUEUED = "queued"
    RUN = "run"
    STALL = "stall"


class TimeoutAction(StrEnum):
    CANCEL = "cancel"
    WARN = "warn"


class Auth(StrEnum):
    """`jira.auth`: how the token is sent."""

    BASIC = "basic"  # Authorization: Basic base64(email:token), an Atlassian API token
    BEARER = "bearer"  # Authorization: Bearer <token>, an OAuth or service-account token


class LogFormat(StrEnum):
    """`log.format`; AUTO is CONSOLE on a terminal, JSON otherwise."""

    JSON = "json"
    CONSOLE = "console"
    AUTO = "auto"


class LogLevel(StrEnum):
    """`log.level`, the lowest level written."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class GoneReason(StrEnum):
    NOT_FOUND = "not_found"
    EXPIRED = "expired"


class CancelSource(StrEnum):
    """Who decided a cancel: the monitor on a timeout, or a person with `jtm cancel`."""

    MONITOR = "monitor"
    USER = "user"


class CancelOutcome(StrEnum):
    """How a cancel decision ended; no outcome yet means it is still in progress."""

    CONFIRMED = "confirmed"  # the task reached CANCELLED
    OVERTAKEN = "overtaken"  # the task reached another terminal status first
    REFUSED = "refused"  # Jira answered that the task cannot be cancelled (or another 4xx)
    UNCONFIRMED = "unconfirmed"  # still not terminal after every attempt's grace period


class ErrorKind(StrEnum):
    """Why a task's last poll failed (`tasks.last_error_kind`), most urgent first."""

    CREDENTIALS = "credentials"  # 401: nothing will work until an operator acts
    FORBIDDEN = "forbidden"  # 403 on this task: the account may not see it (admin or creator)
    RATE_LIMITED = "rate_limited"  # 429 (or 503 with Retry-After)
    UNREACHABLE = "unreachable"  # DNS, connection, TLS, timeout
    SERVER_ERROR = "server_error"  # 5xx
    NOT_FOUND = "not_found"  # 404: on its way to "gone"
    OTHER = "other"  # a body that was not the expected JSON, another 4xx, an internal error
