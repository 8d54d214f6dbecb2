"""The benchmark suite still runs: `python -m bench --smoke` end to end, tiny sizes.

Benchmarks are not tests: nothing here looks at a timing or a goal, only at the shape of the
results (every figure measured, every number a number).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report as bench_report
from tests.databases import postgresql_server

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {"cpu", "throughput", "memory", "storage", "cli", "registration", "metrics"}
"""Measured everywhere; `instances` also, with a PostgreSQL server (`TEST_POSTGRESQL_URL`)."""


@pytest.mark.slow
def test_bench_smoke_runs_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    markdown = tmp_path / "benchmarks.md"
    argv = ["--smoke", "--json", str(results), "--markdown", str(markdown)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(results.read_text())
    assert document["scale"] == "smoke"
    assert document["machine"]["nproc"] >= 1
    keys = [r["key"] for r in document["results"]]
    expected = FIGURES | ({"instances"} if postgresql_server() else set())
    assert {key.split(".")[0] for key in keys} == expected
    for result in document["results"]:
        assert math.isfinite(result["value"]), result
        assert result["holds"] in (True, False, None)
        if result["baseline"] is not None:
            assert result["ratio"] == pytest.approx(result["value"] / result["baseline"])
    assert "| figure |" in markdown.read_text()
    redrawn = tmp_path / "redrawn.md"
    redrawn.write_text("# Benchmarks\n")
    bench_report.main([str(results), str(redrawn)])  # the saved results draw the same table
    assert (
        redrawn.read_text().split(bench_report.BEGIN)[1]
        == markdown.read_text().split(bench_report.BEGIN)[1]
    )
