"""Task references as users type them: a bare task ID, `bulk:ID`, or the URL Jira answered with.

A task ID is 1 to 64 letters, digits, `-` and `_` (Jira's are numeric, but typed as strings).
A task has a kind (`monitor.states.TaskKind`), part of its identity: a bare ID names a task of
kind `task`, `bulk:ID` one of kind `bulk`. A URL is accepted when its path ends in
`/rest/api/{2|3}/task/{ID}` (kind `task`: what Jira's `303 See Other` points at) or in
`/rest/api/3/bulk/queue/{ID}` (kind `bulk`: where a bulk issue operation's progress is read).
Given the configured site (`jira.url`), a URL must also be on it: the monitor polls every task
on that site, so a task URL of another site would name a different task there. Anything else
is a usage error naming what was wrong.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from monitor.errors import UsageError
from monitor.states import TaskKind

TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
BULK_PREFIX = "bulk:"
_TASK_PATH = re.compile(r"/rest/api/[23]/task/([^/]+)/?", re.ASCII)
_BULK_PATH = re.compile(r"/rest/api/3/bulk/queue/([^/]+)/?", re.ASCII)
_SHOWN_MAX = 80


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "...")


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TaskRef(NamedTuple):
    """A task's identity: its kind and its ID. Shown as users type it (`10042`, `bulk:10042`)."""

    kind: TaskKind
    task_id: str

    def __str__(self) -> str:
        return self.task_id if self.kind == TaskKind.TASK else BULK_PREFIX + self.task_id

    def api_path(self, api_version: int) -> str:
        """Where Jira reports it, below the site: `/rest/api/{2|3}/task/ID`, or
        `/rest/api/3/bulk/queue/ID` for a bulk operation (which has no v2)."""
        if self.kind == TaskKind.BULK:
            return f"/rest/api/3/bulk/queue/{self.task_id}"
        return f"/rest/api/{api_version}/task/{self.task_id}"


def parse_task_ref(text: str, site: str | None = None, *, bulk: bool = False) -> TaskRef:
    """A task reference from a bare ID, `bulk:ID`, or a task or bulk-queue URL.

    `bulk` (the CLI's `--bulk`) makes a bare ID name a bulk task; a task URL then contradicts
    it. Raises UsageError (exit 2) for anything else.
    """
    if "://" in text:
        ref = _from_url(text, site)
        if bulk and ref.kind != TaskKind.BULK:
            raise UsageError(
                f"--bulk given, but {_shown(text)} is the URL of a task, not a bulk one"
            )
        return ref
    if text.startswith(BULK_PREFIX):
        return TaskRef(TaskKind.BULK, _bare_id(text[len(BULK_PREFIX) :]))
    return TaskRef(TaskKind.BULK if bulk else TaskKind.TASK, _bare_id(text))


def as_ref(ref: TaskRef | str) -> TaskRef:
    """`ref` as a TaskRef: a plain string is the ID of a task of kind `task`, as a bare ID on
    the command line is (no parsing: the caller has a valid ID)."""
    return ref if isinstance(ref, TaskRef) else TaskRef(TaskKind.TASK, ref)


def parse_task_id(text: str, site: str | None = None) -> str:
    """A task ID from a bare ID or a task URL; raises UsageError (exit 2) otherwise.

    With `site` (the configured `jira.url`), a task URL must be on that site: the same
    scheme, host and port, and the path of `site` (an OAuth base names a cloud ID) before
    `/rest/api/`.
    """
    return parse_task_ref(text, site).task_id


def _bare_id(text: str) -> str:
    if TASK_ID.fullmatch(text):
        return text
    if not text:
        raise UsageError("invalid task ID '': it is empty")
    if len(text) > 64:
        raise UsageError(f"invalid task ID {_shown(text)}: longer than 64 characters")
    raise UsageError(
        f"invalid task ID {_shown(text)}: use only letters, digits, '-' and '_' (or a task URL)"
    )


def _site_of(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def _from_url(text: str, site: str | None) -> TaskRef:
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"invalid task URL {_shown(text)}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(
            f"invalid task URL {_shown(text)}: expected https://HOST/rest/api/3/task/ID"
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        raise UsageError(
            f"invalid task URL {_shown(text)}: http:// is only allowed for loopback hosts"
        )
    if parts.username or parts.password:
        raise UsageError("invalid task URL: it must not contain credentials")
    if parts.query or parts.fragment:
        raise UsageError(f"invalid task URL {_shown(text)}: unexpected query or fragment")
    kind, match = TaskKind.TASK, _TASK_PATH.search(parts.path)
    if match is None or match.end() != len(parts.path):
        kind, match = TaskKind.BULK, _BULK_PATH.search(parts.path)
    if match is None or match.end() != len(parts.path):
        raise UsageError(
            f"invalid task URL {_shown(text)}: its path must end in /rest/api/{{2|3}}/task/ID"
            " or /rest/api/3/bulk/queue/ID"
        )
    task_id = match.group(1)
    if not TASK_ID.fullmatch(task_id):
        raise UsageError(f"invalid task URL {_shown(text)}: {_shown(task_id)} is not a task ID")
    if site is not None:
        base = parts._replace(path=parts.path[: match.start()]).geturl()
        if _site_of(base) != _site_of(site):
            raise UsageError(
                f"task URL {_shown(text)} is not on the configured site: it names a task of "
                f"{_shown(base)}, and jira.url is {_shown(site)}"
            )
    return TaskRef(kind, task_id)
