"""Several CLI processes adding and removing while the daemon writes: no failure, no loss."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from monitor.simulator import Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, write_config

pytestmark = pytest.mark.slow

WRITERS = 4
ROUNDS = 3
PER_ROUND = 5


def test_cli_writers_beside_a_live_daemon_all_succeed(sim: Simulator, tmp_path: Path) -> None:
    for i in range(40):
        sim.add_task(TaskScript(str(i), queued_s=0.2, run_s=600, message_every_pct=1))
    config = write_config(tmp_path, sim, SIM_EMAIL, poll={"interval": "1s", "max_interval": "1s"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", *[str(i) for i in range(40)], env=env).returncode == 0

    def writer(n: int) -> list[int]:
        codes = []
        for r in range(ROUNDS):
            ids = [f"w{n}-{r}-{k}" for k in range(PER_ROUND)]
            codes.append(jtm(config, "add", *ids, "--label", f"writer {n}", env=env).returncode)
            codes.append(jtm(config, "remove", ids[0], env=env).returncode)
            codes.append(jtm(config, "list", "--json", env=env).returncode)
        return codes

    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        with ThreadPoolExecutor(WRITERS) as pool:
            results = list(pool.map(writer, range(WRITERS)))
        polls_during = len(sim.requests_log())
    finally:
        assert daemon.stop() == 0
    assert [code for codes in results for code in codes] == [0] * (WRITERS * ROUNDS * 3)
    assert polls_during > 40  # the daemon was really writing meanwhile
    assert "database is locked" not in daemon.stderr + "\n".join(daemon.lines)

    with sqlite3.connect(tmp_path / "monitor.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM tasks WHERE task_id LIKE 'w%'"))
    assert len(states) == WRITERS * ROUNDS * PER_ROUND
    removed = {task_id for task_id, state in states.items() if state == "removed"}
    assert removed == {f"w{n}-{r}-0" for n in range(WRITERS) for r in range(ROUNDS)}
