"""The figures; each module's `run(scale, sim, workdir)` returns its `Result`s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.figures import cli, cpu, instances, memory, metrics, registration, storage, throughput
from bench.harness import SimProcess
from bench.report import Result
from bench.scale import Scale

Figure = Callable[[Scale, SimProcess, Path], list[Result]]

FIGURES: dict[str, Figure] = {
    "cpu": cpu.run,
    "throughput": throughput.run,
    "memory": memory.run,
    "storage": storage.run,
    "cli": cli.run,
    "registration": registration.run,
    "metrics": metrics.run,
    "instances": instances.run,
}
