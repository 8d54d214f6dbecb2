"""Running the real `jtm` as a subprocess, and waiting on conditions (never fixed sleeps)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.config import PollSettings
from monitor.jira import TaskInfo
from monitor.observation import observe
from monitor.outcome import Outcome
from monitor.records import Task
from monitor.simulator import Simulator
from monitor.store import Store
from monitor.store.queries import Filters, Queries
from monitor.taskref import as_ref

JTM = [sys.executable, "-m", "monitor"]


def write_config(directory: Path, sim: Simulator, email: str, **sections: dict[str, Any]) -> Path:
    """A config file for the simulator and a database in `directory`; `sections` add keys."""
    values: dict[str, dict[str, Any]] = {
        "jira": {"url": sim.url, "email": email, "timeout": "2s", "max_rps": 1000},
        "database": {"url": f"sqlite:///{directory / 'monitor.db'}"},
        "poll": {"interval": "1s", "max_interval": "2s", "concurrency": 4},
        "log": {"format": "json", "level": "info"},
    }
    for name, keys in sections.items():
        values.setdefault(name, {}).update(keys)
    lines = []
    for name, keys in values.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def jtm(
    config: Path, *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JTM, "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` every 50 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


class Daemon:
    """`jtm run` in a subprocess, its stdout lines collected as they come; `wrapper` goes
    before the command (it must exec it, keeping the pid)."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        extra: Sequence[str] = (),
        wrapper: Sequence[str] = (),
    ) -> None:
        self.proc = subprocess.Popen(
            [*wrapper, *JTM, "--config", str(config), "run", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in list(self.lines)]
        return [e for e in parsed if name is None or e["event"] == name]

    def wait_event(self, name: str, count: int = 1, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.events(name)) >= count, timeout, f"{count} x {name}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        returncode = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no stray JTM_ settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JTM_")}
    env.update(extra)
    return env


def events(store: Store, task_id: str) -> list[Any]:
    """A task's timeline in time order, as `jtm show` reads it."""
    return Queries(store.engine).events(task_id, Filters())


def snapshots(store: Store, task_id: str | None = None, **filters: Any) -> list[Any]:
    """Snapshots, newest first, as `jtm history` reads them."""
    wanted = Filters(refs=(as_ref(task_id),) if task_id else (), **filters)
    with Queries(store.engine).snapshots(wanted) as rows:
        return list(rows)


def answer(
    task_id: str, status: str = "RUNNING", progress: int | None = None, **info: Any
) -> TaskInfo:
    """Jira's answer about `task_id` (`info` sets further `TaskInfo` fields)."""
    bare = TaskInfo(
        task_id=task_id, status=status, progress=progress, message=None, description=None,
        result=None, elapsed_runtime_ms=None, submitted=None, started=None, finished=None,
        last_update=None,
    )  # fmt: skip
    return replace(bare, **info)


def polled(task: Task, at: datetime, status: str = "RUNNING", progress: int | None = None,
           **info: Any) -> Outcome:  # fmt: skip
    """The outcome of a poll of `task` (as read) that saw `status` and `progress`."""
    return observe(task, answer(task.task_id, status, progress, **info), at, PollSettings())


def record(store: Store, task_id: str, at: datetime, status: str = "RUNNING",
           progress: int | None = None, **info: Any) -> bool:  # fmt: skip
    """Record one poll of `task_id` that saw `status` and `progress`, decided and written as
    the daemon does it; False if it lost its race."""
    return store.record_polls([polled(store.get(task_id), at, status, progress, **info)])[0]
