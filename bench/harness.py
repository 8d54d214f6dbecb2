"""Processes and readings: the simulator in a process of its own, `jtm` subprocesses, the
measured children, CPU and memory from /proc, and a description of the machine.

Everything measured runs in a process of its own, so that neither the orchestrator nor the
simulator shares a GIL or a CPU-time counter with it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-token-0123456789"
EMAIL = "bench@example.com"


def jtm_command() -> list[str]:
    """`jtm` as an operator starts it: the console script beside this Python when there is
    one (what `pip install` makes), else `python -m monitor`."""
    script = Path(sys.executable).parent / "jtm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every subprocess: no stray JTM_ settings, this repository importable
    (for `python -m bench.child`), the token of the bench configs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JTM_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
    env["JTM_JIRA_TOKEN"] = TOKEN
    env.update(extra)
    return env


# -- /proc readings ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed_run(
    argv: Sequence[str], *, stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run `argv` to completion: (wall seconds, CPU seconds, stdout). Fails loudly.

    Input and output go through files, so the clock measures the command and not a pipe. The
    CPU time (user + system, from `wait4`) is the command's own, which makes it a figure that
    other load on the machine disturbs less than the wall time. (`ru_maxrss` from `wait4` is
    not used: on Linux a child inherits the high-water mark of the parent it was forked from.)
    """
    with (
        tempfile.TemporaryFile("w+") as inp,
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        if stdin is not None:
            inp.write(stdin)
            inp.flush()
            inp.seek(0)
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=inp, stdout=out, stderr=err, env=env if env is not None else child_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.read()[-2000:]}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, out.read()


def run_child(args: Sequence[str], *, timeout: float = 900.0) -> dict[str, Any]:
    """Run `python -m bench.child ARGS` and return the JSON object it prints last."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.child {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the simulator ---------------------------------------------------------------------------


def stalled_script(task_id: str, stall_at: int = 37) -> dict[str, Any]:
    """A simulated task that stays RUNNING at `stall_at`% (it started an hour ago)."""
    return {"task_id": task_id, "started_ago_s": 3600.0, "run_s": 7200.0, "stall_at": stall_at}


class SimProcess:
    """`jtm simulate --auth none` in a process of its own, driven through its control API."""

    def __init__(self) -> None:
        self._scenario = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        self._scenario.write("[]")
        self._scenario.close()
        scenario = self._scenario.name
        self.proc = subprocess.Popen(
            [*jtm_command(), "simulate", "--port", "0", "--auth", "none", "--scenario", scenario],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://[^\s]+", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = match.group(0)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def control(self, method: str, name: str, payload: object = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}/_sim/{name}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def add_tasks(self, scripts: Iterable[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for script in scripts:
            batch.append(script)
            if len(batch) == 2000:
                self.control("POST", "tasks", batch)
                batch = []
        if batch:
            self.control("POST", "tasks", batch)

    def reset(self) -> None:
        self.control("POST", "reset")

    def requests_log(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self.control("GET", "requests")
        return log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self._scenario.name).unlink(missing_ok=True)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the daemon ------------------------------------------------------------------------------


def write_config(
    directory: Path,
    sim_url: str,
    db_path: Path,
    *,
    concurrency: int,
    interval: str = "30s",
    max_interval: str = "5m",
    max_rps: int = 5000,
    db_url: str | None = None,
) -> Path:
    """A config file for `jtm`: the simulator, a database (`db_url`, else the SQLite file
    `db_path`), JSON logs. The token comes from JTM_JIRA_TOKEN (see `child_env`)."""
    path = directory / f"{db_path.stem}.toml"
    path.write_text(
        f'[jira]\nurl = "{sim_url}"\nemail = "{EMAIL}"\ntimeout = "10s"\nmax_rps = {max_rps}\n'
        f'[database]\nurl = "{db_url or f"sqlite:///{db_path}"}"\n'
        f'[poll]\ninterval = "{interval}"\nmax_interval = "{max_interval}"\n'
        f"concurrency = {concurrency}\n"
        '[log]\nformat = "json"\nlevel = "info"\n'
    )
    return path


class DaemonProcess:
    """`jtm run` as systemd would start it; its log lines go to a file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self._log: IO[str] = log_path.open("w")
        self.proc = subprocess.Popen(
            [*jtm_command(), "--config", str(config), "run"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"jtm run exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
            )

    def peak_rss_mb(self) -> float:
        """VmHWM of the running daemon. (Not `ru_maxrss`, which a child inherits from the
        process it was forked from: here the orchestrator, which is not small.)"""
        return peak_rss_mb(self.pid)

    def stop(self) -> float:
        """SIGTERM and wait; returns the highest VmHWM seen until it exited (MiB)."""
        peak = float("nan")
        if self.proc.poll() is None:
            peak = self.peak_rss_mb()
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while self.proc.poll() is None:
                # Exiting: /proc/PID/status may be gone, or have no memory lines left.
                with suppress(OSError, RuntimeError):
                    peak = max(peak, self.peak_rss_mb())
                if time.monotonic() > deadline:
                    self.proc.kill()
                time.sleep(0.02)
        self._log.close()
        return peak


def db_scalar(db_path: Path, sql: str) -> Any:
    """One value read from a database another process is writing (WAL lets us)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def wait_until(condition: Any, timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions: dict[str, str] = {}
    for name in ("sqlalchemy", "requests", "urllib3", "apscheduler", "structlog"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            versions[name] = "?"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
        "memory_mb": _mem_total_mb(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
    }


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def register_tasks(db_path: Path | str, task_ids: Sequence[str]) -> None:
    """A migrated database at `db_path` (a SQLite file, or a URL) with `task_ids` registered
    (in this process)."""
    from datetime import UTC, datetime

    from monitor.database import open_database
    from monitor.store import Registration, Store

    url = db_path if isinstance(db_path, str) else f"sqlite:///{db_path}"
    engine = open_database(url, "upgrade")
    try:
        Store(engine).register(list(task_ids), Registration(), datetime.now(UTC))
    finally:
        engine.dispose()
