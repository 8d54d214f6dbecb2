"""Figure 6: N task IDs registered through `jtm add -` (stdin), into a migrated empty
database; then the same N again (the update path: re-adding changes options). Wall time of
the whole command, median of the runs, each on a fresh copy of the database."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.harness import jtm_command, median, timed_run, write_config
from bench.report import Result
from bench.scale import Scale

GOAL_S = 3.0
BASELINE = [sys.executable, "-c", "import sqlalchemy"]


def run(scale: Scale, sim: object, workdir: Path) -> list[Result]:
    from monitor.database import open_database

    template = workdir / "register-template.db"
    open_database(f"sqlite:///{template}", "upgrade").dispose()
    ids = "\n".join(str(200_000 + i) for i in range(scale.register_ids)) + "\n"
    added: list[float] = []
    readded: list[float] = []
    baseline: list[float] = []
    cpus: list[float] = []
    for run_no in range(scale.register_runs):
        db = workdir / f"register-{run_no}.db"
        shutil.copyfile(template, db)
        config = write_config(workdir, "http://127.0.0.1:9", db, concurrency=scale.concurrency)
        argv = [*jtm_command(), "--config", str(config), "add", "-"]
        wall, cpu, out = timed_run(argv, stdin=ids)
        cpus.append(cpu)
        if f"added: {scale.register_ids} tasks" not in out and scale.register_ids > 20:
            raise RuntimeError(f"jtm add - said: {out[:200]}")
        added.append(wall)
        readded.append(timed_run([*argv, "--label", "again"], stdin=ids)[0])
        baseline.append(timed_run(BASELINE)[0])
    value, base, again = median(added), median(baseline), median(readded)
    return [
        Result(
            key="registration.add",
            title=f"jtm add - with {scale.register_ids:,} IDs",
            value=value,
            unit="s",
            baseline=base,
            baseline_label='python -c "import sqlalchemy"',
            goal=f"<= {GOAL_S:g} s",
            holds=value <= GOAL_S,
            details={
                "runs_s": [round(w, 3) for w in added],
                "cpu_s": round(median(cpus), 3),
            },
        ),
        Result(
            key="registration.readd",
            title=f"jtm add - re-adding the same {scale.register_ids:,} IDs",
            value=again,
            unit="s",
            baseline=base,
            baseline_label='python -c "import sqlalchemy"',
            goal=f"<= {GOAL_S:g} s",
            holds=again <= GOAL_S,
            details={"runs_s": [round(w, 3) for w in readded]},
        ),
    ]
