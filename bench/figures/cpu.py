"""Figure 1: the daemon's CPU time per task poll vs the bare client's, same simulator, same
concurrency, each in a process of its own (`bench.child cpu`).

Two cases, because the daemon's work differs: an *unchanged* poll (the task is stuck, the
daemon updates the task row and moves the newest snapshot's last-seen time) and a *changed*
poll (progress moved since the last poll, a snapshot row is inserted). The bare client inserts
one row per poll in both. Each side runs `cpu_repeats` times, alternating; the lowest CPU time
of each side counts, because other load on the machine (a shared one) can only add to it.
A third, diagnostic side (`same-sql`) does the daemon's reads and writes by hand with
`sqlite3`: the gap between it and the daemon is what the layers cost (SQLAlchemy, the ORM, the
client's wrapping of `requests`), not the work itself.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import SimProcess, median, run_child, stalled_script
from bench.report import Result, ratio
from bench.scale import Scale

GOAL = 1.2
PREFIX = "cpu-"


def run(scale: Scale, sim: SimProcess, workdir: Path) -> list[Result]:
    ids = [f"{PREFIX}{i}" for i in range(scale.cpu_tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(task_id) for task_id in ids)
    results = []
    for case, vary in (("unchanged", False), ("changed", True)):
        per_poll: dict[str, list[float]] = {"daemon": [], "bare": [], "same-sql": []}
        sim_cpu: list[float] = []
        sides = ("bare", "daemon", "same-sql") if not vary else ("bare", "daemon")
        for repeat in range(scale.cpu_repeats):
            for mode in sides:
                db = workdir / f"cpu-{case}-{mode}-{repeat}.db"
                before = sim.cpu_seconds()
                args = ["cpu", "--mode", mode, "--sim", sim.url, "--db", str(db)]
                args += ["--tasks", str(len(ids)), "--prefix", PREFIX]
                args += ["--concurrency", str(scale.concurrency)]
                args += ["--rounds", str(scale.cpu_rounds)] + (["--vary"] if vary else [])
                out = run_child(args)
                per_poll[mode].append(out["cpu_s"] / out["polls"] * 1e6)
                if mode == "bare" and not vary:
                    requests = len(ids) * (scale.cpu_rounds + 2)  # warm-up rounds included
                    sim_cpu.append((sim.cpu_seconds() - before) / requests * 1e6)
        daemon, bare = min(per_poll["daemon"]), min(per_poll["bare"])
        details: dict[str, object] = {
            "tasks": len(ids),
            "polls_per_side": len(ids) * scale.cpu_rounds,
            "repeats": scale.cpu_repeats,
            "concurrency": scale.concurrency,
            "daemon_us_runs": [round(v) for v in per_poll["daemon"]],
            "bare_us_runs": [round(v) for v in per_poll["bare"]],
        }
        if per_poll["same-sql"]:
            same = min(per_poll["same-sql"])
            details["same_sql_us"] = round(same)
            details["same_sql_ratio"] = round(ratio(same, bare), 3)
        if sim_cpu:
            details["simulator_us_per_request_approx"] = round(median(sim_cpu))
        value_ratio = ratio(daemon, bare)
        results.append(
            Result(
                key=f"cpu.{case}",
                title=f"CPU per poll, {case} task",
                value=daemon,
                unit="µs",
                baseline=bare,
                baseline_label="bare requests+json+sqlite3",
                goal=f"<= {GOAL}x",
                holds=value_ratio <= GOAL,
                details=details,
            )
        )
    return results
