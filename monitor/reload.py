"""What a reload (SIGHUP) reads: the config and token as they are now, and what changed.

The daemon applies the result whole (`Daemon._reload`), or refuses it whole and keeps the old
config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from monitor.config import Secret, Settings, load_settings, load_token
from monitor.errors import ConfigError
from monitor.notify.service import check_channels
from monitor.settings import changed_keys

RESTART_ONLY_KEYS = ("jira.url", "database.url", "metrics.listen")
"""Keys a reload refuses to change: the daemon's site, database and metrics address are fixed
for its life."""


def reread(
    old: Settings, config_path: Path | None, env: Mapping[str, str], token: Secret | None
) -> tuple[Settings, Secret, list[str]]:
    """The config and token as they are now, and the keys that changed since `old` and
    `token`; a MonitorError if they cannot be used (invalid, unreadable, a change of a key
    only a restart may change, or a notification channel that cannot work)."""
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
    check_channels(new.notify)
    if fresh != token:
        changed.append("jira.token")
    return new, fresh, changed
