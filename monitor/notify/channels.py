"""Notification channels: the `[[notify]]` tables of the config, and which events each takes.

A channel has a `name`, a target `url` and a filter. The URL is an Apprise URL (`slack://...`,
`json://host/path`, `mailto://...`: any service Apprise supports) or `exec:` followed by a
command, run with the event as JSON on its standard input. The filter selects events by name
(`events`, `*` a wildcard), the final Jira status of `task.finished` (`statuses`) and the
task's label (`labels`, `*` a wildcard, any case). Rate and retries: `max_per_minute`
messages at most (a burst beyond it goes out grouped), each delivery bounded by `timeout`,
retried with exponential backoff from `retry_backoff` up to `retry_max_backoff`, and given up
after `max_attempts` attempts.

A channel URL usually holds a secret (a webhook token, a password): it is never shown whole,
in an error, a log line or an output (`Channel.shown_url`).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config_keys import duration, integer
from monitor.errors import ConfigError
from monitor.notify.events import NotifyEvent
from monitor.states import JiraStatus

EXEC_PREFIX = "exec:"
APPRISE_EXTRA = "jira-task-monitor[apprise]"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_KEYS = (
    "name",
    "url",
    "events",
    "statuses",
    "labels",
    "max_per_minute",
    "timeout",
    "retry_backoff",
    "retry_max_backoff",
    "max_attempts",
)


@dataclass(frozen=True, slots=True)
class Channel:
    """One `[[notify]]` table, validated."""

    name: str
    url: str = field(repr=False)  # may hold a secret: see `shown_url`
    events: tuple[str, ...] = ("*",)
    statuses: tuple[str, ...] = ()  # empty: any
    labels: tuple[str, ...] = ()  # empty: any
    max_per_minute: int = 20
    timeout_s: float = 10.0
    retry_backoff_s: float = 5.0
    retry_max_backoff_s: float = 300.0
    max_attempts: int = 20

    @property
    def is_exec(self) -> bool:
        return self.url.startswith(EXEC_PREFIX)

    @property
    def command(self) -> list[str]:
        """The argv of an `exec:` channel (split as a POSIX shell would, without a shell)."""
        return shlex.split(self.url[len(EXEC_PREFIX) :])

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown: the scheme (and for `exec:`, the program) only."""
        if self.is_exec:
            argv = self.command
            return f"exec:{argv[0] if argv else ''}"
        match = _SCHEME.match(self.url)
        return f"{match.group(1)}://..." if match else "..."

    def wants(self, event: str, status: str | None, label: str | None, has_task: bool) -> bool:
        """Does this channel take `event`? `statuses` filters `task.finished` by its final
        status; `labels` filters events about a task (site-wide events pass it)."""
        if not any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events):
            return False
        if self.statuses and event == NotifyEvent.TASK_FINISHED and status not in self.statuses:
            return False
        if self.labels and has_task:
            text = (label or "").casefold()
            return any(fnmatch.fnmatchcase(text, p.casefold()) for p in self.labels)
        return True


def apprise_installed() -> bool:
    """Whether Apprise can be imported (without importing it: that costs ~12 MB)."""
    return importlib.util.find_spec("apprise") is not None


def require_transports(channels: Sequence[Channel]) -> None:
    """Raise ConfigError if a channel names an Apprise URL and Apprise is not installed."""
    needing = [c.name for c in channels if not c.is_exec]
    if needing and not apprise_installed():
        raise ConfigError(
            f"notify channel {needing[0]!r} has an Apprise URL, but Apprise is not installed: "
            f"install {APPRISE_EXTRA} (or use an exec: channel)"
        )


def parse_channels(tables: object, source: Path) -> tuple[Channel, ...]:
    """The `[[notify]]` array of tables of the file `source`, validated; ConfigError (one line,
    naming the channel, the key and the file) for anything wrong. The URL is never echoed."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"notify in {source}: expected [[notify]] tables")
    channels: list[Channel] = []
    for index, table in enumerate(tables, start=1):
        channel = _channel(table, f"[[notify]] #{index} in {source}")
        if any(c.name == channel.name for c in channels):
            raise ConfigError(f"notify.name = {channel.name!r} in {source}: used twice")
        channels.append(channel)
    return tuple(channels)


def _channel(table: dict[str, Any], where: str) -> Channel:
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"unknown key notify.{key} in {where}")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"notify.name in {where}: required, 1 to 64 letters, digits, '.', '_' or '-'"
        )
    where = f"channel {name!r} ({where})"
    url = table.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"notify.url in {where}: required (an Apprise URL or exec:COMMAND)")
    url = url.strip()
    if url.startswith(EXEC_PREFIX):
        try:
            argv = shlex.split(url[len(EXEC_PREFIX) :])
        except ValueError as exc:
            raise ConfigError(f"notify.url in {where}: bad exec: command ({exc})") from None
        if not argv:
            raise ConfigError(f"notify.url in {where}: exec: names no command")
    elif not _SCHEME.match(url):
        raise ConfigError(f"notify.url in {where}: not an Apprise URL (scheme://...) or exec:")
    defaults = Channel(name, url)
    events = _names(table, "events", where, defaults.events)
    known = [str(e) for e in NotifyEvent]
    for pattern in events:
        if not any(fnmatch.fnmatchcase(event, pattern) for event in known):
            raise ConfigError(
                f"notify.events = {pattern!r} in {where}: matches no event "
                f"(events: {', '.join(known)})"
            )
    statuses = tuple(s.upper() for s in _names(table, "statuses", where, ()))
    for status in statuses:
        if status not in {str(s) for s in JiraStatus}:
            raise ConfigError(f"notify.statuses = {status!r} in {where}: not a Jira status")
    return Channel(
        name=name,
        url=url,
        events=events,
        statuses=statuses,
        labels=_names(table, "labels", where, ()),
        max_per_minute=_value(table, "max_per_minute", where, integer(1, 10_000), 20),
        timeout_s=_value(table, "timeout", where, duration(), defaults.timeout_s),
        retry_backoff_s=_value(table, "retry_backoff", where, duration(), 5.0),
        retry_max_backoff_s=_value(table, "retry_max_backoff", where, duration(), 300.0),
        max_attempts=_value(table, "max_attempts", where, integer(1, 1000), 20),
    )


def _names(
    table: dict[str, Any], key: str, where: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"notify.{key} in {where}: expected a list of strings")
    return tuple(v.strip() for v in value)


def _value(table: dict[str, Any], key: str, where: str, convert: Any, default: Any) -> Any:
    if key not in table:
        return default
    try:
        return convert(table[key])
    except ValueError as exc:
        raise ConfigError(f"notify.{key} = {table[key]!r} in {where}: {exc}") from None
