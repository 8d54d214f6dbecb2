"""How big each figure is: the full run (the issue's numbers) and a smoke run for CI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    concurrency: int
    # 1. CPU per poll: tasks per round, measured rounds, and repetitions of each side.
    cpu_tasks: int
    cpu_rounds: int
    cpu_repeats: int
    # 2. Throughput: tasks at a 1 s interval, the measured window; then the ceiling.
    rate_tasks: int
    rate_warmup_s: float
    rate_window_s: float
    ceiling_tasks: int
    ceiling_window_s: float
    ceiling_repeats: int
    # 3. Memory: watched tasks, and how long the daemon runs on after polling each once.
    memory_tasks: int
    memory_settle_s: float
    # 4. Storage: simulated seconds of polling per scenario.
    storage_span_s: float
    # 5. CLI latency: database size and runs per command.
    cli_tasks: int
    cli_snapshots: int
    cli_runs: int
    # 6. Registration: IDs per `jtm add -`, runs.
    register_ids: int
    register_runs: int
    # 7. Metrics: the measured window and repetitions per side (tasks: `rate_tasks`).
    metrics_window_s: float
    metrics_repeats: int
    # 8. Several instances on PostgreSQL: tasks, all due every interval.
    pg_tasks: int
    pg_interval_s: float


FULL = Scale(
    name="full",
    concurrency=8,
    cpu_tasks=500,
    cpu_rounds=4,
    cpu_repeats=3,
    rate_tasks=300,
    rate_warmup_s=4.0,
    rate_window_s=20.0,
    ceiling_tasks=2000,
    ceiling_window_s=8.0,
    ceiling_repeats=2,
    memory_tasks=10_000,
    memory_settle_s=2.0,
    storage_span_s=86_400.0,
    cli_tasks=10_000,
    cli_snapshots=1_000_000,
    cli_runs=7,
    register_ids=10_000,
    register_runs=3,
    metrics_window_s=15.0,
    metrics_repeats=3,
    pg_tasks=10_000,
    pg_interval_s=30.0,
)

SMOKE = Scale(
    name="smoke",
    concurrency=4,
    cpu_tasks=20,
    cpu_rounds=2,
    cpu_repeats=1,
    rate_tasks=10,
    rate_warmup_s=0.5,
    rate_window_s=1.0,
    ceiling_tasks=20,
    ceiling_window_s=1.0,
    ceiling_repeats=1,
    memory_tasks=50,
    memory_settle_s=0.2,
    storage_span_s=1_800.0,
    cli_tasks=50,
    cli_snapshots=500,
    cli_runs=1,
    register_ids=100,
    register_runs=1,
    metrics_window_s=1.0,
    metrics_repeats=1,
    pg_tasks=30,
    pg_interval_s=2.0,
)

SCALES = {s.name: s for s in (FULL, SMOKE)}
