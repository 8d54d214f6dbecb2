"""What a reload (SIGHUP) reads: the config and token as they are now, and what changed.

The daemon applies the result whole (`Daemon._reload`), or refuses it whole and keeps the old
config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

from monitor.config import Secret, Settings, load_settings, load_token
from monitor.errors import ConfigError

RESTART_ONLY_KEYS = ("jira.url", "database.url")
"""Keys a reload refuses to change: the daemon's site and database are fixed for its life."""


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The config keys (`section.key`) whose values differ between `old` and `new`."""
    changed = []
    for section in fields(Settings):
        if section.name == "source":
            continue
        before, after = getattr(old, section.name), getattr(new, section.name)
        for item in fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                changed.append(f"{section.name}.{item.name.removesuffix('_s')}")
    return changed


def reread(
    old: Settings, config_path: Path | None, env: Mapping[str, str], token: Secret | None
) -> tuple[Settings, Secret, list[str]]:
    """The config and token as they are now, and the keys that changed since `old` and
    `token`; a MonitorError if they cannot be used (invalid, unreadable, or a change of a
    key only a restart may change)."""
    new = load_settings(config_path, env)
    new.jira.require_url()
    changed = changed_keys(old, new)
    refused = [key for key in RESTART_ONLY_KEYS if key in changed]
    if refused:
        raise ConfigError(
            f"{' and '.join(refused)} cannot change while the daemon runs: "
            "restart the service to use the new value"
        )
    fresh = load_token(new, env)
    if fresh != token:
        changed.append("jira.token")
    return new, fresh, changed
