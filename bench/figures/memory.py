"""Figure 3: peak RSS of `jtm run` watching many tasks, after each was polled at least once.

Peak RSS is the daemon's VmHWM (the kernel's high-water mark of its resident set, so start-up
and every tick are included), read until it exits after a graceful stop. Beside it: the same
daemon watching one task, and a bare Python that only imports the libraries the daemon uses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.harness import (
    DaemonProcess,
    SimProcess,
    db_scalar,
    register_tasks,
    stalled_script,
    timed_run,
    wait_until,
    write_config,
)
from bench.report import Result
from bench.scale import Scale

GOAL_MB = 80.0
IMPORTS = "import sqlalchemy, sqlalchemy.orm, requests, apscheduler, structlog, click"
SELF_PEAK = (
    "import pathlib; print(next(line.split()[1] for line in"
    " pathlib.Path('/proc/self/status').read_text().splitlines() if line.startswith('VmHWM')))"
)


def _daemon_peak(sim: SimProcess, workdir: Path, name: str, tasks: int, scale: Scale) -> float:
    ids = [f"{name}-{i}" for i in range(tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(t) for t in ids)
    db = workdir / f"{name}.db"
    register_tasks(db, ids)
    config = write_config(workdir, sim.url, db, concurrency=scale.concurrency)
    daemon = DaemonProcess(config, workdir / f"{name}.log")
    try:
        wait_until(
            lambda: db_scalar(db, "SELECT count(*) FROM tasks WHERE polls > 0") >= tasks,
            timeout=max(60.0, tasks / 20),
            what=f"{tasks} tasks polled once",
        )
        time.sleep(scale.memory_settle_s)  # that tick's heartbeat, the next tick finding nothing
        daemon.check_alive()
    finally:
        peak = daemon.stop()
    return peak


def run(scale: Scale, sim: SimProcess, workdir: Path) -> list[Result]:
    tasks = scale.memory_tasks
    peak = _daemon_peak(sim, workdir, "mem", tasks, scale)
    idle = _daemon_peak(sim, workdir, "idle", 1, scale)
    imports = int(timed_run([sys.executable, "-c", f"{IMPORTS}; {SELF_PEAK}"])[2]) / 1024
    return [
        Result(
            key="memory.peak_rss",
            title=f"Peak RSS of jtm run, {tasks:,} tasks",
            value=peak,
            unit="MiB",
            baseline=imports,
            baseline_label="python importing the same libraries",
            goal=f"<= {GOAL_MB:g} MiB",
            holds=peak <= GOAL_MB,
            details={
                "tasks": tasks,
                "idle_daemon_one_task_mb": round(idle, 1),
                "per_task_kb": round((peak - idle) * 1024 / max(tasks - 1, 1), 2),
                "bare_imports": IMPORTS,
            },
        )
    ]
