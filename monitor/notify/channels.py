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
from dataclasses import MISSING, Field, dataclass, fields
from pathlib import Path
from typing import Any

from monitor.config_keys import duration, integer, key, key_name, key_spec, required_key
from monitor.errors import ConfigError
from monitor.notify.events import NotifyEvent
from monitor.states import JiraStatus

EXEC_PREFIX = "exec:"
APPRISE_EXTRA = "jira-task-monitor[apprise]"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("expected a list of strings")
    return tuple(v.strip() for v in value)


def _channel_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError("1 to 64 letters, digits, '.', '_' or '-'")
    return value


def _channel_url(value: object) -> str:
    """An Apprise URL or `exec:COMMAND` (its message never quotes the URL: see `Channel`)."""
    url = value.strip() if isinstance(value, str) else ""
    if url.startswith(EXEC_PREFIX):
        try:
            argv = shlex.split(url[len(EXEC_PREFIX) :])
        except ValueError as exc:
            raise ValueError(f"bad exec: command ({exc})") from None
        if not argv:
            raise ValueError("exec: names no command")
    elif not _SCHEME.match(url):
        raise ValueError("not an Apprise URL (scheme://...) or exec:COMMAND")
    return url


def _events(value: object) -> tuple[str, ...]:
    events = _names(value)
    known = [str(e) for e in NotifyEvent]
    for pattern in events:
        if not any(fnmatch.fnmatchcase(event, pattern) for event in known):
            raise ValueError(f"{pattern!r} matches no event (events: {', '.join(known)})")
    return events


def _statuses(value: object) -> tuple[str, ...]:
    statuses = tuple(s.upper() for s in _names(value))
    for status in statuses:
        if status not in {str(s) for s in JiraStatus}:
            raise ValueError(f"{status!r} is not a Jira status")
    return statuses


@dataclass(frozen=True, slots=True)
class Channel:
    """One `[[notify]]` table, validated. Its keys are its fields (declared once, as the
    sections' are in `monitor.settings`: a key's name is the field's less its `_s`)."""

    name: str = required_key(_channel_name)
    url: str = required_key(_channel_url, shown=False)  # may hold a secret: see `shown_url`
    events: tuple[str, ...] = key(("*",), _events)
    statuses: tuple[str, ...] = key((), _statuses)  # empty: any
    labels: tuple[str, ...] = key((), _names)  # empty: any
    max_per_minute: int = key(20, integer(1, 10_000), "int")
    timeout_s: float = key(10.0, duration(), "duration")
    retry_backoff_s: float = key(5.0, duration(), "duration")
    retry_max_backoff_s: float = key(300.0, duration(), "duration")
    max_attempts: int = key(20, integer(1, 1000), "int")

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
    declared = {key_name(item): item for item in fields(Channel)}
    for name in table:
        if name not in declared:
            raise ConfigError(f"unknown key notify.{name} in {where}")
    name = _take(table, declared.pop("name"), where)
    where = f"channel {name!r} ({where})"
    found = {item.name: _take(table, item, where) for item in declared.values()}
    return Channel(name=name, **found)


def _take(table: dict[str, Any], item: Field[Any], where: str) -> Any:
    """The value of `item`'s key in `table`, converted; its default if absent. The error
    quotes the value unless the field is one never shown (the URL)."""
    name = key_name(item)
    if name not in table:
        if item.default is MISSING:
            raise ConfigError(f"notify.{name} in {where}: required")
        return item.default
    value = table[name]
    try:
        return key_spec(item).convert(value)
    except ValueError as exc:
        shown = f" = {value!r}" if item.repr else ""
        raise ConfigError(f"notify.{name}{shown} in {where}: {exc}") from None
