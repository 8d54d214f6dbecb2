"""The daemon's state file: what `jtm status` learns while the database cannot record it.

While the database cannot be written (a full disk, a read-only remount), neither can the
heartbeat row: it would go stale, and `jtm status` would call a working daemon dead and see
no trouble. So while that lasts the daemon also writes a small JSON file, rewritten after
every tick and removed once writes work again (and at a clean stop):

    {"instance": "host:pid", "pid": 123, "updated_at": "...Z",
     "store": {"error": "...", "since": "...Z", "tasks_waiting": 3}}

It lives in the daemon's runtime directory, which is on another file system than the
database as a rule: `$RUNTIME_DIRECTORY` (systemd; the unit asks for /run/jira-task-monitor,
a tmpfs), else `$XDG_RUNTIME_DIR/jira-task-monitor`, else the database's own folder. It is
written atomically (a temporary file renamed over it), so a reader sees the old state or
the new, never half of one. The heartbeat row names the file (`heartbeats.state_file`),
written while the database still could be, so `jtm status` in any shell finds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

APP_DIR = "jira-task-monitor"


@dataclass(frozen=True, slots=True)
class StoreTrouble:
    """The database could not be written since `since`; `tasks_waiting` tasks' polls are held."""

    error: str
    since: datetime
    tasks_waiting: int


def trouble_text(trouble: StoreTrouble) -> str:
    """The database outage, in a few words (STATUS=, `jtm status`)."""
    noun = "task" if trouble.tasks_waiting == 1 else "tasks"
    return (
        f"cannot write the database since {trouble.since:%Y-%m-%d %H:%M:%S} UTC "
        f"({trouble.tasks_waiting} {noun} waiting): {trouble.error}"
    )


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What a daemon's state file says."""

    instance: str
    updated_at: datetime
    store: StoreTrouble | None


def state_dir(env: Mapping[str, str], database_url: str) -> Path | None:
    """Where the daemon keeps its state file (see the module's docstring); None: nowhere."""
    from monitor.sqlite_path import sqlite_file

    if runtime := env.get("RUNTIME_DIRECTORY", "").split(":")[0]:
        return Path(runtime)
    if xdg := env.get("XDG_RUNTIME_DIR", ""):
        return Path(xdg) / APP_DIR
    database_file = sqlite_file(database_url)  # an invalid URL is reported at opening
    return None if database_file is None else database_file.parent


class StateFile:
    """One daemon instance's state file; never raises (it is advice, like STATUS=)."""

    def __init__(self, folder: Path | None, instance: str) -> None:
        name = f"daemon-{instance.replace('/', '_').replace(':', '-')}.json"
        self.instance = instance
        self.path = None if folder is None else folder / name

    def update(self, trouble: StoreTrouble | None) -> None:
        """Write the file while there is `trouble`; remove it once there is none."""
        if self.path is None:
            return
        if trouble is None:
            self.remove()
            return
        data = {
            "instance": self.instance,
            "pid": os.getpid(),
            "updated_at": _iso(datetime.now(UTC)),
            "store": {
                "error": trouble.error,
                "since": _iso(trouble.since),
                "tasks_waiting": trouble.tasks_waiting,
            },
        }
        scratch = self.path.with_name(f".{self.path.name}.new")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_text(json.dumps(data) + "\n")
            os.replace(scratch, self.path)
        except OSError:
            scratch.unlink(missing_ok=True)

    def remove(self) -> None:
        if self.path is not None:
            with suppress(OSError):
                self.path.unlink(missing_ok=True)


def read_state_file(path: str) -> DaemonState | None:
    """The state a daemon's file holds; None if there is none, or it cannot be read."""
    try:
        data: Any = json.loads(Path(path).read_text())
        store = data.get("store")
        trouble = None
        if store is not None:
            trouble = StoreTrouble(
                str(store["error"]), _parse(store["since"]), int(store["tasks_waiting"])
            )
        return DaemonState(str(data["instance"]), _parse(data["updated_at"]), trouble)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: object) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)
