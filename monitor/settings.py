"""The settings: every configuration key declared once, as a field of its section's dataclass.

A field's metadata (made by `key()`) holds what the file and the environment need to know of
the key: its TOML kind (how an environment string is typed) and its converter from
`monitor.config_keys`, which also checks the value. The key's name is the field's, less the
`_s` that marks seconds (`poll.interval` is `PollSettings.interval_s`); the section is the
field's name in `Settings`. Everything else is derived from the dataclasses: `KINDS` (every
`section.key` and its kind, from which `config_keys` derives the `JTM_<SECTION>_<KEY>` names),
`section_values` (each key of a section converted, or its default) and `changed_keys`. The
rules that join keys or need the file's place (an email for basic auth, a cap at least the
interval, paths relative to the file) are `monitor.config`'s, after the conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from monitor import config_keys as keys
from monitor.config_keys import Key, key, key_name, key_spec, required_key
from monitor.errors import ConfigError
from monitor.metrics.address import ListenAddress
from monitor.notify.channels import Channel
from monitor.states import Auth, LogFormat, LogLevel, TimeoutAction

_positive = keys.duration()


@dataclass(frozen=True, slots=True)
class JiraSettings:
    # Required for anything that talks to Jira (`require_url`); checked by `keys.jira_url`,
    # which the client trusts: it builds its URLs from this one as it is.
    url: str | None = key(None, keys.optional(keys.jira_url))
    api_version: int = key(3, keys.api_version, "int")
    auth: Auth = key(Auth.BASIC, keys.choice(Auth))
    email: str | None = key(None, keys.optional(keys.email_address))
    token_file: Path | None = key(None, keys.optional(keys.string))  # made a Path by config
    timeout_s: float = key(10.0, _positive, "duration")
    verify_tls: bool = key(True, keys.boolean, "bool")
    max_rps: float = key(10.0, keys.positive_number, "number")

    def require_url(self) -> str:
        if not self.url:
            raise ConfigError("jira.url is required: set it in the config file or JTM_JIRA_URL")
        return self.url


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = required_key(keys.optional(keys.string))  # default: `default_database_url`


@dataclass(frozen=True, slots=True)
class PollSettings:
    interval_s: float = key(30.0, keys.duration(minimum=1.0), "duration")
    # Left unset, the cap follows a long interval up instead of contradicting it (config).
    max_interval_s: float = key(300.0, _positive, "duration")
    concurrency: int = key(4, keys.integer(1, 64), "int")


@dataclass(frozen=True, slots=True)
class TimeoutSettings:
    total_s: float | None = key(None, keys.optional(_positive), "duration")
    queued_s: float | None = key(None, keys.optional(_positive), "duration")
    run_s: float | None = key(None, keys.optional(_positive), "duration")
    stall_s: float | None = key(None, keys.optional(_positive), "duration")
    action: TimeoutAction = key(TimeoutAction.CANCEL, keys.choice(TimeoutAction))
    cancel_grace_s: float = key(300.0, _positive, "duration")
    # Bulk operations cannot be cancelled (Jira has no endpoint for it): `warn` is the only
    # action they take, and asking for another is a configuration error.
    bulk_action: TimeoutAction = key(TimeoutAction.WARN, keys.bulk_timeout_action)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    snapshots_s: float = key(90 * 86400.0, _positive, "duration")


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: LogFormat = key(LogFormat.AUTO, keys.choice(LogFormat))
    level: LogLevel = key(LogLevel.INFO, keys.choice(LogLevel))


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    # None: no endpoint. Fixed for the daemon's life (`monitor.reload.RESTART_ONLY_KEYS`).
    listen: ListenAddress | None = key(None, keys.optional(keys.listen_address))
    per_task: bool = key(False, keys.boolean, "bool")


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings
    jira: JiraSettings = field(default_factory=JiraSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # The [[notify]] channels: an array of tables, its keys declared by `Channel`'s fields.
    notify: tuple[Channel, ...] = ()
    source: Path | None = None  # the file the settings came from; None when none was found


# --- derived from the dataclasses ----------------------------------------------------------

_HINTS = get_type_hints(Settings)
SECTIONS: dict[str, type[Any]] = {f.name: _HINTS[f.name] for f in fields(Settings)}
SECTIONS.pop("source")
SECTIONS.pop("notify")  # a list of tables, read by `monitor.notify.channels.parse_channels`


def _declared() -> Iterator[tuple[str, Field[Any], Key]]:
    for section, cls in SECTIONS.items():
        for item in fields(cls):
            yield f"{section}.{key_name(item)}", item, key_spec(item)


KINDS: dict[str, keys.Kind] = {dotted: spec.kind for dotted, _item, spec in _declared()}


def section_values(values: keys.Values, section: str) -> dict[str, Any]:
    """Each key of `section` converted and checked, or its field's default; by field name.
    A key without a default (`required_key`) is None when unset."""
    found = {}
    for item in fields(SECTIONS[section]):
        default = None if item.default is MISSING else item.default
        convert = key_spec(item).convert
        found[item.name] = values.take(f"{section}.{key_name(item)}", convert, default)
    return found


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The config keys (`section.key`) whose values differ between `old` and `new`."""
    changed = []
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        for item in fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                changed.append(f"{section}.{key_name(item)}")
    if old.notify != new.notify:
        changed.append("notify")
    return changed
