"""What the system test's checks share: the paths of the installed service, and small helpers
to run commands, read systemd's view of the unit, its journal, the database and the simulator.

Standard library only: this runs on Debian's own python3, beside the installed venv.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .guide import SIMULATOR

UNIT = "jira-task-monitor"
SERVICE_USER = "jira-task-monitor"
OPERATOR = "alice"  # in the service's group, as the guide's `usermod -aG` makes her
OUTSIDER = "bob"  # not in it
CHECKOUT = Path("/root/jira-task-monitor")  # this commit's checkout
WORK = Path("/root/system-test")
VENV = Path("/opt/jira-task-monitor")
STATE = Path("/var/lib/jira-task-monitor")
DATABASE = STATE / "monitor.db"
CONFIG = Path("/etc/jira-task-monitor/config.toml")
TOKEN = Path("/etc/jira-task-monitor/jira-token")
DROP_INS = Path("/etc/systemd/system/jira-task-monitor.service.d")

# structlog's level names and the syslog priorities journald files them under.
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

T = TypeVar("T")


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen instead."""


def run(
    *args: str, user: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command (as `user` through runuser, with that user's groups), output captured."""
    command = ["runuser", "-u", user, "--", *args] if user else list(args)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise CheckFailed(f"`{' '.join(args)}` exited {result.returncode}: {tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 3) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


def prop(name: str, unit: str = UNIT) -> str:
    return run("systemctl", "show", "-P", name, unit).stdout.strip()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll `probe` until it returns something truthy; CheckFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"no {what} after {timeout:.0f} s")
        time.sleep(0.5)


def ensure_active() -> None:
    """Leave the service running with the installed unit, whatever a check left behind."""
    if prop("ActiveState") != "active":
        run("systemctl", "reset-failed", UNIT, check=False)
        run("systemctl", "start", UNIT, timeout=300)


def ticked(status: str) -> str | None:
    """The unit's StatusText once the daemon has completed a tick."""
    return status if "last tick" in status else None


# -- the journal ------------------------------------------------------------------------------


def now_us() -> int:
    return time.time_ns() // 1000


def journal(since_us: int = 0) -> list[dict[str, Any]]:
    """The unit's journal entries (journalctl -o json) from `since_us` (microseconds)."""
    out = run("journalctl", "-u", UNIT, "-o", "json", "--no-pager").stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in entries if int(e["__REALTIME_TIMESTAMP"]) >= since_us]


def events(entries: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(journald priority, decoded JSON line) for each of the daemon's JSON log lines."""
    for entry in entries:
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or not message.startswith("{"):
            continue
        try:
            event = json.loads(message)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            yield int(entry.get("PRIORITY", -1)), event


def logged(since_us: int, name: str, **fields: object) -> list[dict[str, Any]]:
    return [
        e
        for _, e in events(journal(since_us))
        if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
    ]


# -- the CLI and the database -----------------------------------------------------------------


def jtm(*args: str, user: str = OPERATOR) -> subprocess.CompletedProcess[str]:
    """The CLI as the operator runs it: `jtm` on the PATH, no options but the command's."""
    return run("jtm", *args, user=user)


# Run as the service user with its umask, so that a -wal or -shm file SQLite creates belongs
# to the service's group (a file of root's would lock the daemon out).
_READER = """\
import json, sqlite3, sys
connection = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
print(json.dumps(connection.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))
"""


def query(sql: str, *params: object) -> list[list[Any]]:
    """Rows of a read-only query on the service's database, straight from SQLite (as the
    contract lets anyone read it): much cheaper than a `jtm` start under emulation, for the
    checks that wait on the database."""
    result = run(
        "sh",
        "-c",
        'umask 0007; exec python3 -c "$0" "$@"',
        _READER,
        str(DATABASE),
        sql,
        json.dumps(params),
        user=SERVICE_USER,
    )
    rows: list[list[Any]] = json.loads(result.stdout)
    return rows


def task_states() -> dict[str, tuple[str, str | None]]:
    """task id -> (the monitor's state, Jira's last status), from the database."""
    return {
        task_id: (state, status)
        for task_id, state, status in query("SELECT task_id, state, status FROM tasks")
    }


# -- the simulator ----------------------------------------------------------------------------


def simulator(method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{SIMULATOR}/_sim/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return json.loads(text) if text.strip() else None


# -- the config -------------------------------------------------------------------------------


def set_config(text: str) -> None:
    CONFIG.write_text(text)


def with_poll_interval(text: str, interval: str) -> str:
    """The config text with `interval` set in its [poll] table."""
    lines = [line for line in text.splitlines() if not line.startswith("interval = ")]
    at = lines.index("[poll]") + 1
    return "\n".join([*lines[:at], f'interval = "{interval}"', *lines[at:]]) + "\n"
