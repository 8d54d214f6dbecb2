"""A canary token never reaches a log line, an error, the database or any output."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.simulator import Fault, Simulator, TaskScript
from tests.conftest import SIM_EMAIL
from tests.helpers import Daemon, base_env, jtm, write_config

pytestmark = pytest.mark.slow

CANARY = "canary-7d0f-SECRET-token"


def test_the_token_never_shows_anywhere(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(CANARY + "\n")
    token_file.chmod(0o600)
    outputs: list[str] = []
    with Simulator(email=SIM_EMAIL, token=CANARY) as sim:
        sim.add_task(TaskScript("1", queued_s=0.2, run_s=1.0))
        sim.add_task(TaskScript("2", queued_s=0, run_s=600, cancellable=False))
        sim.add_task(TaskScript("3", queued_s=0, run_s=600))
        config = write_config(tmp_path, sim, SIM_EMAIL, jira={"token_file": str(token_file)})
        env = base_env()

        def run(*args: str, code: int = 0) -> None:
            result = jtm(config, *args, env=env)
            assert result.returncode == code, (args, result.stderr)
            outputs.append(result.stdout + result.stderr)

        run("db", "upgrade")
        run("add", "1", "2", "3", "--label", "canary test", "--stall", "1h")
        daemon = Daemon(config, env)
        try:
            daemon.wait_event("task.finished")
            sim.add_fault(Fault("status", status=401, count=2, task_id="3"))
            sim.add_fault(Fault("status", status=500, count=2, task_id="3"))
            daemon.wait_event("jira.error", count=4)
            run("cancel", "2", code=1)  # Jira refuses: an error message
            run("cancel", "3")
            sim.add_fault(Fault("status", status=401, count=None, method="POST"))
            run("add", "4")
            run("cancel", "4", code=1)  # credentials refused: an error message
        finally:
            assert daemon.stop() == 0
        outputs.append("\n".join(daemon.lines) + daemon.stderr)
        for args in (
            ("list", "--all"), ("list", "--all", "--json"), ("show", "2"), ("show", "3", "--json"),
            ("history",), ("history", "--json"), ("history", "--csv"),
        ):  # fmt: skip
            run(*args)
        bad = Daemon(config, base_env(JTM_JIRA_TOKEN="unused"))  # token_file still wins
        bad.stop()
        outputs.append("\n".join(bad.lines) + bad.stderr)

    assert outputs and all(CANARY not in text for text in outputs)
    assert any("401" in text for text in outputs)  # the failures were really exercised
    for path in tmp_path.iterdir():
        if path.name.startswith("monitor.db"):
            assert CANARY.encode() not in path.read_bytes(), path.name
