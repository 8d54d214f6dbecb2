"""Figure 5: latency of the operator's read commands on large databases, against the bare
cost of starting Python and importing SQLAlchemy (`python -c "import sqlalchemy"`).

The database is migrated by the real migrations, then filled fast with raw `sqlite3`
(`executemany`): N watched tasks that have each been polled, their events, and M snapshot rows
spread evenly over them and over the last 30 days. Every command runs as a subprocess, output
to a file; the runs of the three commands are interleaved, after one warm-up run each (page
cache, bytecode), and the medians compared.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import jtm_command, median, timed_run, write_config
from bench.report import Result, ratio
from bench.scale import Scale

GOAL = 1.5
BASELINE = [sys.executable, "-c", "import sqlalchemy"]


def _stamp(when: datetime) -> str:
    return when.replace(tzinfo=None).isoformat(" ")


def task_id(i: int) -> str:
    return str(100_000 + i)


def build_database(db: Path, tasks: int, snapshots: int) -> None:
    """A migrated database with `tasks` watched tasks and `snapshots` snapshot rows."""
    from monitor.database import open_database

    open_database(f"sqlite:///{db}", "upgrade").dispose()
    now = datetime.now(UTC)
    span = timedelta(days=30)
    per_task = max(1, snapshots // tasks)
    step = span / per_task
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    start = _stamp(now - span)
    last = _stamp(now - timedelta(seconds=30))
    next_poll = _stamp(now + timedelta(minutes=5))
    conn.executemany(
        "INSERT INTO tasks (task_id, label, state, registered_at, updated_at, status, progress,"
        " message, description, elapsed_runtime_ms, jira_submitted_at, jira_started_at,"
        " jira_last_update_at, next_poll_at, poll_interval_s, polls, first_seen_at,"
        " last_seen_at, last_change_at, consecutive_errors, not_found_count)"
        " VALUES (?, 'bulk clean-up', 'watching', ?, ?, 'RUNNING', 42, 'Processed 40 of 100"
        " items', 'Delete custom field', 1234567, ?, ?, ?, ?, 300.0, ?, ?, ?, ?, 0, 0)",
        (
            (task_id(i), start, last, start, start, last, next_poll, per_task, start, last, last)
            for i in range(tasks)
        ),
    )
    conn.executemany(
        "INSERT INTO events (task_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        (
            row
            for i in range(tasks)
            for row in (
                (task_id(i), start, "registered", None),
                (task_id(i), start, "first_seen", "RUNNING 0%"),
            )
        ),
    )
    conn.executemany(
        "INSERT INTO snapshots (task_id, observed_at, last_seen_at, status, progress, message,"
        " elapsed_runtime_ms, jira_last_update_at) VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?)",
        _snapshot_rows(now - span, step, tasks, snapshots),
    )
    conn.execute("COMMIT")
    # No ANALYZE: the daemon never runs it, so the query planner works without statistics.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _snapshot_rows(
    start: datetime, step: timedelta, tasks: int, total: int
) -> Iterator[tuple[object, ...]]:
    # Time-major, as a daemon would write them: every task's k-th snapshot, then the next.
    per_task = max(1, total // tasks)
    for k in range(per_task):
        at = start + step * k
        observed, seen = _stamp(at), _stamp(at + step)
        progress = min(100, k * 100 // per_task)
        message = f"Processed {progress - progress % 10} of 100 items"
        for i in range(tasks):
            yield (task_id(i), observed, seen, progress, message, k * 1000, observed)


def run(scale: Scale, sim: object, workdir: Path) -> list[Result]:
    db = workdir / "cli.db"
    build_database(db, scale.cli_tasks, scale.cli_snapshots)
    rows = sqlite3.connect(db).execute("SELECT count(*) FROM snapshots").fetchone()[0]
    config = write_config(workdir, "http://127.0.0.1:9", db, concurrency=scale.concurrency)
    target = task_id(scale.cli_tasks // 2)
    shown = {"list": ["list", "--json"], "history": ["history", target]}
    jtm = [*jtm_command(), "--config", str(config)]
    commands = {"baseline": BASELINE} | {name: jtm + args for name, args in shown.items()}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    sizes: dict[str, int] = {}
    for run_no in range(scale.cli_runs + 1):
        for name, argv in commands.items():
            wall, cpu, out = timed_run(argv)
            if run_no > 0:  # the first run of each warms the page cache and the bytecode
                walls[name].append(wall)
                cpus[name].append(cpu)
            sizes[name] = len(out)
    base, base_cpu = median(walls["baseline"]), median(cpus["baseline"])
    results = []
    for name, title in (
        ("list", f"jtm list --json, {scale.cli_tasks:,} tasks"),
        ("history", f"jtm history ID, {rows:,} snapshot rows"),
    ):
        value = median(walls[name])
        value_ratio = ratio(value, base)
        results.append(
            Result(
                key=f"cli.{name}",
                title=title,
                value=value * 1000,
                unit="ms",
                baseline=base * 1000,
                baseline_label='python -c "import sqlalchemy"',
                goal=f"<= {GOAL}x",
                holds=value_ratio <= GOAL,
                details={
                    "runs_ms": [round(w * 1000) for w in walls[name]],
                    "baseline_runs_ms": [round(w * 1000) for w in walls["baseline"]],
                    "cpu_ms": round(median(cpus[name]) * 1000),
                    "baseline_cpu_ms": round(base_cpu * 1000),
                    "cpu_ratio": round(ratio(median(cpus[name]), base_cpu), 2),
                    "output_bytes": sizes[name],
                    "command": "jtm " + " ".join(shown[name]),
                },
            )
        )
    return results
