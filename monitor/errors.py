"""The monitor's errors: one tree, one root, translated once at each edge.

    MonitorError                      root; `exit_code` is what the CLI exits with
    ├── UsageError            (2)     bad option, duration or task ID given on the command line
    ├── NotFoundError         (3)     the task ID is not registered
    ├── ConfigError           (78)    missing or invalid configuration or token
    │   └── ConfigFileMissing (78)    the config file named by --config or JTM_CONFIG is not there
    ├── StoreError            (78)    the database cannot be used (unreachable, newer schema)
    │   ├── NotJtmDatabase    (78)    the file is not jtm's: tables without a schema version
    │   │   └── EmptyDatabaseFile (78) a 0-byte file where the database should be
    │   ├── ReadOnlyStorage   (78)    the file system holding the database is mounted read-only
    │   └── StoreUnavailable  (78)    the storage failed, not the data: disk full, read-only, I/O
    │       │                         error, locked past the busy timeout; the same write may pass
    │       └── ReadOnlyUnavailable   a read or write failed on a read-only file system (also
    │                                 a ReadOnlyStorage)
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
turns any `MonitorError` into a one-line message and its exit code. The exit codes are the
`os.EX_*` values of sysexits(3), named here and nowhere else. Messages never contain a
secret: they are built from status codes, URLs without credentials, and Jira's error messages.
"""

from __future__ import annotations

import os

# The exit codes, once: sysexits(3) where one fits, and the contract's own 1, 2 and 3.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = os.EX_UNAVAILABLE  # 69
EXIT_NOPERM = os.EX_NOPERM  # 77
EXIT_CONFIG = os.EX_CONFIG  # 78


class MonitorError(Exception):
    """Root of every error the monitor raises on purpose."""

    exit_code: int = EXIT_FAILED


class UsageError(MonitorError):
    exit_code = EXIT_USAGE


class NotFoundError(MonitorError):
    exit_code = EXIT_NOT_FOUND


class ConfigError(MonitorError):
    exit_code = EXIT_CONFIG


class ConfigFileMissing(ConfigError):
    """The config file that --config or JTM_CONFIG names does not exist."""


class StoreError(MonitorError):
    exit_code = EXIT_CONFIG


class NotJtmDatabase(StoreError):
    """The database holds tables but no schema version: it is not jtm's."""


class EmptyDatabaseFile(NotJtmDatabase):
    """A 0-byte file where the database should be: truncated or misplaced, never adopted."""


class StoreUnavailable(StoreError):
    """A read or write failed because of the storage, not the data (SQLite's operational
    errors: SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_BUSY, ...).

    The daemon holds its writes back and retries them (the poller's `Backlog`); a constraint
    or data error, by contrast, is one task's problem and is isolated to that task.
    """


class ReadOnlyStorage(StoreError):
    """The file system holding the database is mounted read-only."""


class ReadOnlyUnavailable(StoreUnavailable, ReadOnlyStorage):
    """A read or write failed because the database's file system is mounted read-only: the
    daemon holds its writes back as for any storage failure; `jtm check` names the cause."""


class OperationFailed(MonitorError):
    exit_code = EXIT_FAILED


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
    exit_code = EXIT_UNAVAILABLE
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
    exit_code = EXIT_NOPERM


class JiraForbidden(JiraAuthError):
    """403 on one task: the account is neither a Jira admin nor the task's creator (or, on
    cancel, the token may only read). The task's problem, not the site's: the credentials
    themselves work."""


class JiraNotFound(JiraError):
    exit_code = EXIT_NOT_FOUND


class JiraRefused(JiraError):
    pass
