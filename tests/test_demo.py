"""`jtm demo`, the README's first command, runs to its end and tells the story it promises."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import JTM, base_env

pytestmark = pytest.mark.slow


def test_demo_runs_to_the_final_table() -> None:
    result = subprocess.run(
        [*JTM, "demo"], capture_output=True, text=True, timeout=120, env=base_env(), check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "daemon started" in out
    assert out.count("finished COMPLETE") == 4  # a bulk operation among them
    assert "task bulk:10000 finished COMPLETE" in out and "2 issues failed" in out
    assert "finished FAILED" in out and "finished DEAD" in out
    assert "is gone" in out
    assert "passed its run limit" in out and "cancel requested" in out
    assert "finished CANCELLED" in out and "(cancelled by the monitor)" in out
    table = out.split("Final states")[1]
    assert table.count("finished") == 7 and "gone" in table
    assert "36/40 issues done, 2 failed, 2 invalid" in table
    assert "exit code 0" in out
    assert "Traceback" not in result.stderr
