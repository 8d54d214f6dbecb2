"""Fault injection: the real daemon against the simulator's fault modes.

Under every fault the daemon keeps running, records no wrong status, ends with the true final
statuses, and sends nothing to the site while a Retry-After is in force.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest

from monitor.simulator import Fault, Simulator, TaskScript
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, write_config

pytestmark = pytest.mark.slow

OUTCOMES = {"1": "COMPLETE", "2": "FAILED", "3": "DEAD"}
SCRIPTS = [
    TaskScript("1", queued_s=0.3, run_s=2.0, outcome="COMPLETE"),
    TaskScript("2", queued_s=0.2, run_s=2.5, outcome="FAILED"),
    TaskScript("3", queued_s=0.5, run_s=1.5, outcome="DEAD"),
]


def _http_date_in(seconds: float) -> str:
    return formatdate(time.time() + seconds, usegmt=True)


# (faults, seconds of silence expected after the first 429/503, status of the error expected)
Scenario = tuple[Callable[[], list[Fault]], float, int | None]

# name: scenario
SCENARIOS: dict[str, Scenario] = {
    "429, Retry-After in seconds": (lambda: [Fault("rate_limit", retry_after="2")], 2.0, None),
    # An HTTP date has whole seconds, and the fault is hit a moment after it is made: the
    # silence owed is a good second or two shorter than the date's distance.
    "429, Retry-After as an HTTP date": (
        lambda: [Fault("rate_limit", retry_after=_http_date_in(5))],
        1.9,
        None,
    ),
    "429, Retry-After 0": (lambda: [Fault("rate_limit", retry_after="0")], 0.95, None),
    "429 without Retry-After": (lambda: [Fault("rate_limit")], 3.4, None),
    "503 with Retry-After": (lambda: [Fault("status", status=503, retry_after="1")], 0.95, None),
    "5xx": (lambda: [Fault("status", status=500, count=3), Fault("status", status=502)], 0, 500),
    "connection reset": (lambda: [Fault("reset", count=3)], 0, None),
    "slow answers past the timeout": (lambda: [Fault("slow", delay_s=1.2, count=2)], 0, None),
    "malformed JSON": (lambda: [Fault("malformed", count=3)], 0, 200),
    "HTML error page from a proxy": (lambda: [Fault("html", status=502, count=3)], 0, 502),
    "401 for one task": (lambda: [Fault("status", status=401, count=2, task_id="2")], 0, 401),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_daemon_survives_and_ends_with_the_true_statuses(
    name: str, sim: Simulator, tmp_path: Path
) -> None:
    faults, silence_s, error_status = SCENARIOS[name]
    for script in SCRIPTS:
        sim.add_task(script)
    config = write_config(
        tmp_path, sim, SIM_EMAIL, jira={"timeout": "0.5s", "max_rps": 5}, poll={"interval": "1s"}
    )
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", *OUTCOMES, env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        for fault in faults():
            sim.add_fault(fault)
        daemon.wait_event("task.finished", count=3, timeout=40)
    finally:
        returncode = daemon.stop()
    assert returncode == 0, daemon.stderr
    assert "Traceback" not in daemon.stderr + "\n".join(daemon.lines)
    daemon.events()  # every line is JSON

    with sqlite3.connect(tmp_path / "monitor.db") as db:
        final = dict(db.execute("SELECT task_id, status FROM tasks"))
        seen = set(db.execute("SELECT task_id, status FROM snapshots"))
    assert final == OUTCOMES
    allowed = {(t, s) for t, out in OUTCOMES.items() for s in ("ENQUEUED", "RUNNING", out)}
    assert seen <= allowed  # no wrong status was ever recorded

    log = sim.requests_log()
    if silence_s:
        refusals = [r for r in log if r.status in (429, 503)]
        assert refusals, "the fault was not hit"
        first = refusals[0].monotonic
        inside = [r for r in log if first < r.monotonic < first + silence_s]
        assert inside == [], f"requests sent inside the Retry-After window: {inside}"
        [limited, *_] = daemon.events("jira.rate_limited")
        assert limited["wait_s"] >= silence_s
    if error_status is not None:
        errors = daemon.events("jira.error")
        assert any(e["status"] == error_status for e in errors)
        assert all(e["transient"] is (e["status"] != 401) for e in errors)


def test_the_daemon_refuses_to_start_on_rejected_credentials(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    daemon = Daemon(config, base_env(JTM_JIRA_TOKEN="not-the-token"))
    returncode = daemon.proc.wait(timeout=30)
    daemon.stop()
    assert returncode == 77
    assert [e["event"] for e in daemon.events()] == [
        "database.upgraded",
        "daemon.credentials_rejected",
    ]
    assert "credentials rejected" in daemon.stderr
    assert len(daemon.stderr.strip().splitlines()) == 1
