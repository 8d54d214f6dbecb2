"""The monitor's errors: one tree, one root, translated once at each edge.

    MonitorError                      root; `exit_code` is what the CLI exits with
    ├── UsageError            (2)     bad option, duration or task ID given on the command line
    ├── NotFoundError         (3)     the task ID is not registered
    ├── ConfigError           (78)    missing or invalid configuration or token
    ├── StoreError            (78)    the database cannot be used (unreachable, newer schema)
    │   └── StoreUnavailable  (78)    the storage failed, not the data: disk full, read-only, I/O
    │                                 error, locked past the busy timeout; the same write may pass
    ├── OperationFailed       (1)     a requested operation did not succeed
    └── JiraError             (1)     a request to Jira failed; `transient` says whether to retry
        ├── JiraUnreachable   (69)    connection refused or reset, DNS, TLS, timeout   transient
        │   └── ClientClosed  (69)    the client was closed (the daemon is stopping)   transient
        ├── JiraRateLimited   (1)     429 (or a 5xx with Retry-After)                    transient
        ├── JiraServerError   (1)     5xx                                                transient
        ├── JiraBadResponse   (1)     a body that is not the JSON that was expected      transient
        ├── JiraAuthError     (77)    401, or 403 on the site itself (GET /myself)       permanent
        │   └── JiraForbidden (77)    403 on one task: this account may not see or cancel it
        ├── JiraNotFound      (3)     404                                                permanent
        └── JiraRefused       (1)     another 4xx, e.g. 400 "cancellation is not possible" permanent

HTTP and transport errors become `JiraError`s inside the Jira client and nowhere else; the CLI
turns any `MonitorError` into a one-line message and its exit code. Messages never contain a
secret: they are built from status codes, URLs without credentials, and Jira's error messages.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error the monitor raises on purpose."""

    exit_code: int = 1


class UsageError(MonitorError):
    exit_code = 2


class NotFoundError(MonitorError):
    exit_code = 3


class ConfigError(MonitorError):
    exit_code = 78


class StoreError(MonitorError):
    exit_code = 78


class StoreUnavailable(StoreError):
    """A read or write failed because of the storage, not the data (SQLite's operational
    errors: SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_BUSY, ...).

    The daemon holds its writes back and retries them (the poller's `Backlog`); a constraint
    or data error, by contrast, is one task's problem and is isolated to that task.
    """


class OperationFailed(MonitorError):
    exit_code = 1


class JiraError(MonitorError):
    """A failed request to Jira.

    `status` is the HTTP status (None when no response arrived); `transient` tells the caller
    whether the same request may succeed later, so that retry decisions are data, not guesses.
    """

    transient: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class JiraUnreachable(JiraError):
    exit_code = 69
    transient = True


class ClientClosed(JiraUnreachable):
    """The request was never sent: the client (or its site gate) was closed first."""

    def __init__(self, message: str = "client closed") -> None:
        super().__init__(message)


class JiraRateLimited(JiraError):
    transient = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        retry_after_s: float | None = None,
        pause_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s  # what Jira asked for (None: no usable header)
        self.pause_s = pause_s  # how long every request to the site was held back
        self.reason = reason  # Jira's RateLimit-Reason, if it gave one


class JiraServerError(JiraError):
    transient = True


class JiraBadResponse(JiraError):
    transient = True


class JiraAuthError(JiraError):
    exit_code = 77


class JiraForbidden(JiraAuthError):
    """403 on one task: the account is neither a Jira admin nor the task's creator (or, on
    cancel, the token may only read). The task's problem, not the site's: the credentials
    themselves work."""


class JiraNotFound(JiraError):
    exit_code = 3


class JiraRefused(JiraError):
    pass
