"""Figure 2: throughput of the real `jtm run`.

*Requested rate*: N tasks at a 1 s interval (`max_interval` 1 s too, so an unchanged task is
not backed off) are due N times a second; the figure is the share of that rate achieved in a
steady-state window, counted from the simulator's request log (receipt times), with the gaps
between successive polls of each task.

*Ceiling*: many more tasks than can be polled in a second, so every tick finds all of them
due; polls per second in a window against the bare client's (`bench.child ceiling`) at the same
concurrency. The simulator's CPU use in both windows says whether it was the bottleneck.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    DaemonProcess,
    SimProcess,
    cpu_seconds,
    db_scalar,
    register_tasks,
    run_child,
    stalled_script,
    wait_until,
    write_config,
)
from bench.report import Result, ratio
from bench.scale import Scale

RATE_GOAL = 0.95
CEILING_GOAL = 0.9
JITTER = 0.1  # monitor.poller.JITTER: next polls are spread by +/-10%
CEILING_PREFIX = "ceil-"


def _window(
    sim: SimProcess,
    daemon: DaemonProcess,
    db: Path,
    tasks: int,
    *,
    warmup_s: float,
    window_s: float,
) -> dict[str, Any]:
    """Start after every task was polled once and `warmup_s` more; measure `window_s`."""
    wait_until(
        lambda: db_scalar(db, "SELECT count(*) FROM tasks WHERE polls > 0") >= tasks,
        timeout=max(60.0, tasks / 20),
        what="every task polled once",
    )
    time.sleep(warmup_s)
    daemon.check_alive()
    t0, cpu0, sim0 = time.monotonic(), cpu_seconds(daemon.pid), sim.cpu_seconds()
    time.sleep(window_s)
    t1, cpu1, sim1 = time.monotonic(), cpu_seconds(daemon.pid), sim.cpu_seconds()
    daemon.check_alive()
    daemon.stop()
    log = [r for r in sim.requests_log() if t0 <= r["monotonic"] < t1 and r["method"] == "GET"]
    errors = sum(1 for r in log if r["status"] != 200)
    return {
        "polls": len(log),
        "errors": errors,
        "wall_s": t1 - t0,
        "cpu_s": cpu1 - cpu0,
        "sim_cpu_s": sim1 - sim0,
        "log": log,
    }


def _gaps(log: list[dict[str, Any]]) -> list[float]:
    last: dict[str, float] = {}
    gaps = []
    for record in sorted(log, key=lambda r: r["monotonic"]):
        task_id = record["task_id"]
        if task_id in last:
            gaps.append(record["monotonic"] - last[task_id])
        last[task_id] = record["monotonic"]
    return gaps


def requested_rate(scale: Scale, sim: SimProcess, workdir: Path) -> Result:
    ids = [f"rate-{i}" for i in range(scale.rate_tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(t) for t in ids)
    db = workdir / "rate.db"
    register_tasks(db, ids)
    config = write_config(
        workdir, sim.url, db, concurrency=scale.concurrency, interval="1s", max_interval="1s"
    )
    daemon = DaemonProcess(config, workdir / "rate.log")
    try:
        w = _window(
            sim, daemon, db, len(ids), warmup_s=scale.rate_warmup_s, window_s=scale.rate_window_s
        )
    finally:
        daemon.stop()
    requested = len(ids) / 1.0
    achieved = w["polls"] / w["wall_s"]
    gaps = sorted(_gaps(w["log"]))
    share = achieved / requested
    details: dict[str, Any] = {
        "tasks": len(ids),
        "interval_s": 1.0,
        "concurrency": scale.concurrency,
        "window_s": round(w["wall_s"], 2),
        "polls": w["polls"],
        "errors": w["errors"],
        "daemon_cpu_share_of_a_core": round(w["cpu_s"] / w["wall_s"], 3),
        "simulator_cpu_share_of_a_core": round(w["sim_cpu_s"] / w["wall_s"], 3),
        "daemon_cpu_us_per_poll": round(w["cpu_s"] / max(w["polls"], 1) * 1e6),
    }
    if gaps:
        details |= {
            "gap_mean_s": round(statistics.fmean(gaps), 3),
            "gap_p50_s": round(gaps[len(gaps) // 2], 3),
            "gap_p95_s": round(gaps[int(len(gaps) * 0.95)], 3),
            "gap_max_s": round(gaps[-1], 3),
            "share_of_gaps_within_jitter": round(
                sum(1 for g in gaps if g <= 1.0 + JITTER) / len(gaps), 3
            ),
        }
    return Result(
        key="throughput.rate",
        title=f"Polls achieved, {len(ids)} tasks at 1 s",
        value=achieved,
        unit="polls/s",
        baseline=requested,
        baseline_label="requested",
        goal=f">= {RATE_GOAL:.0%} of requested",
        holds=share >= RATE_GOAL,
        details=details,
    )


def _daemon_ceiling(scale: Scale, sim: SimProcess, workdir: Path, run_no: int) -> dict[str, Any]:
    db = workdir / f"ceiling-{run_no}.db"
    register_tasks(db, [f"{CEILING_PREFIX}{i}" for i in range(scale.ceiling_tasks)])
    config = write_config(
        workdir, sim.url, db, concurrency=scale.concurrency, interval="1s", max_interval="1s"
    )
    daemon = DaemonProcess(config, workdir / f"ceiling-{run_no}.log")
    try:
        return _window(
            sim, daemon, db, scale.ceiling_tasks, warmup_s=1.0, window_s=scale.ceiling_window_s
        )
    finally:
        daemon.stop()


def _bare_ceiling(scale: Scale, sim: SimProcess, workdir: Path, run_no: int) -> dict[str, Any]:
    return run_child(
        [
            *("ceiling", "--sim", sim.url, "--sim-pid", str(sim.pid)),
            *("--db", str(workdir / f"ceiling-bare-{run_no}.db")),
            *("--tasks", str(scale.ceiling_tasks), "--prefix", CEILING_PREFIX),
            *("--concurrency", str(scale.concurrency)),
            *("--duration", str(scale.ceiling_window_s)),
        ]
    )


def ceiling(scale: Scale, sim: SimProcess, workdir: Path) -> Result:
    """Daemon and bare client alternately, `ceiling_repeats` times each; the best window of
    each counts (other load on the machine can only slow a window down)."""
    sim.reset()
    sim.add_tasks(stalled_script(f"{CEILING_PREFIX}{i}") for i in range(scale.ceiling_tasks))
    daemon_runs, bare_runs = [], []
    for run_no in range(scale.ceiling_repeats):
        daemon_runs.append(_daemon_ceiling(scale, sim, workdir, run_no))
        bare_runs.append(_bare_ceiling(scale, sim, workdir, run_no))
    w = max(daemon_runs, key=lambda r: r["polls"] / r["wall_s"])
    bare = max(bare_runs, key=lambda r: r["polls"] / r["wall_s"])
    daemon_rate = w["polls"] / w["wall_s"]
    bare_rate = bare["polls"] / bare["wall_s"]
    value_ratio = ratio(daemon_rate, bare_rate)
    sim_share_daemon = w["sim_cpu_s"] / w["wall_s"]
    sim_share_bare = bare["sim_cpu_s"] / bare["wall_s"]
    return Result(
        key="throughput.ceiling",
        title=f"Ceiling at concurrency {scale.concurrency}",
        value=daemon_rate,
        unit="polls/s",
        baseline=bare_rate,
        baseline_label="bare client",
        goal=f">= {CEILING_GOAL}x",
        holds=value_ratio >= CEILING_GOAL,
        details={
            "tasks": scale.ceiling_tasks,
            "window_s": round(w["wall_s"], 2),
            "daemon_runs_polls_per_s": [round(r["polls"] / r["wall_s"]) for r in daemon_runs],
            "bare_runs_polls_per_s": [round(r["polls"] / r["wall_s"]) for r in bare_runs],
            "daemon_errors": w["errors"],
            "daemon_cpu_share_of_a_core": round(w["cpu_s"] / w["wall_s"], 3),
            "daemon_cpu_us_per_poll": round(w["cpu_s"] / max(w["polls"], 1) * 1e6),
            "bare_cpu_share_of_a_core": round(bare["cpu_s"] / bare["wall_s"], 3),
            "bare_cpu_us_per_poll": round(bare["cpu_s"] / max(bare["polls"], 1) * 1e6),
            "simulator_cpu_share_of_a_core_daemon_run": round(sim_share_daemon, 3),
            "simulator_cpu_share_of_a_core_bare_run": round(sim_share_bare, 3),
            "simulator_us_per_request": round(bare["sim_cpu_s"] / max(bare["polls"], 1) * 1e6),
            "simulator_bound": max(sim_share_daemon, sim_share_bare) > 0.9,
        },
    )


def run(scale: Scale, sim: SimProcess, workdir: Path) -> list[Result]:
    return [requested_rate(scale, sim, workdir), ceiling(scale, sim, workdir)]
