"""Task references as users type them: a bare task ID, or the task URL Jira answered with.

A task ID is 1 to 64 letters, digits, `-` and `_` (Jira's are numeric, but typed as strings).
A URL is accepted when its path ends in `/rest/api/{2|3}/task/{ID}`: that is what Jira's
`303 See Other` points at. Given the configured site (`jira.url`), a URL must also be on it:
the monitor polls every task on that site, so a task URL of another site would name a
different task there. Anything else is a usage error naming what was wrong.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from monitor.errors import UsageError

TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_TASK_PATH = re.compile(r"/rest/api/[23]/task/([^/]+)/?", re.ASCII)
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


def parse_task_id(text: str, site: str | None = None) -> str:
    """A task ID from a bare ID or a task URL; raises UsageError (exit 2) otherwise.

    With `site` (the configured `jira.url`), a task URL must be on that site: the same
    scheme, host and port, and the path of `site` (an OAuth base names a cloud ID) before
    `/rest/api/`.
    """
    if "://" in text:
        return _from_url(text, site)
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


def _from_url(text: str, site: str | None) -> str:
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
    match = _TASK_PATH.search(parts.path)
    if match is None or match.end() != len(parts.path):
        raise UsageError(
            f"invalid task URL {_shown(text)}: its path must end in /rest/api/{{2|3}}/task/ID"
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
    return task_id
