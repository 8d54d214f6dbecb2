"""`jtm status`: the daemon's liveness, counts, trouble from real failed polls, next poll, size."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.database import SCHEMA_HEAD
from monitor.health import DaemonState, daemon_health, error_kind, group_trouble
from monitor.poller import Poller
from monitor.records import Heartbeat
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import ErrorKind
from monitor.store import Registration, Store
from monitor.store.queries import FailingTask
from monitor.taskref import as_ref
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Status = Callable[..., Result]


def beat(at: datetime, *, instance: str = "host:1", stopped: bool = False) -> Heartbeat:
    return Heartbeat(
        instance=instance, pid=1, version="x", started_at=at - timedelta(hours=1),
        heartbeat_at=at, last_tick_at=at, last_tick_polls=0, next_poll_at=None,
        stopped_at=at if stopped else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("beats", "state", "others"),
    [
        ([], DaemonState.NEVER_RAN, 0),
        ([beat(T0 - timedelta(seconds=10))], DaemonState.ALIVE, 0),
        ([beat(T0 - timedelta(seconds=121))], DaemonState.STALE, 0),
        ([beat(T0 - timedelta(seconds=10), stopped=True)], DaemonState.STOPPED, 0),
        # a restart: the old instance stopped, the new one beats
        ([beat(T0 - timedelta(hours=1), stopped=True), beat(T0, instance="h:2")],
         DaemonState.ALIVE, 0),
        # two daemons on one database at once
        ([beat(T0), beat(T0, instance="other:9")], DaemonState.ALIVE, 1),
        # one crashed an hour ago (never stopped), then a clean stop
        ([beat(T0 - timedelta(hours=1)), beat(T0 - timedelta(minutes=5), instance="h:2",
                                              stopped=True)], DaemonState.STOPPED, 0),
    ],
)  # fmt: skip
def test_daemon_health(beats: list[Heartbeat], state: DaemonState, others: int) -> None:
    health = daemon_health(beats, T0)
    assert (health.state, health.others_alive) == (state, others)
    assert health.alive == (state == DaemonState.ALIVE)


@pytest.mark.parametrize(
    ("error", "transient", "kind"),
    [
        ("get task 1: HTTP 401: credentials rejected (check jira.email and the API token)", False,
         ErrorKind.CREDENTIALS),
        ("get task 1: HTTP 403: forbidden: the account is not a Jira admin", False,
         ErrorKind.CREDENTIALS),
        ("get task 1: HTTP 429: rate limited (Retry-After 2s; ...)", True,
         ErrorKind.RATE_LIMITED),
        ("get task 1: HTTP 503: rate limited (Retry-After 2s; ...)", True,
         ErrorKind.RATE_LIMITED),
        ("cannot reach https://x.atlassian.net: connection refused", True,
         ErrorKind.UNREACHABLE),
        ("get task 1: HTTP 502 Bad Gateway", True, ErrorKind.SERVER_ERROR),
        ("get task 1: HTTP 404: not found", False, ErrorKind.NOT_FOUND),
        ("internal error: KeyError('x')", True, ErrorKind.OTHER),
    ],
)  # fmt: skip
def test_an_error_stored_without_a_kind_is_read_from_its_text(
    error: str, transient: bool, kind: ErrorKind
) -> None:
    assert error_kind(None, error, transient) == kind


def test_a_stored_kind_is_taken_as_it_is() -> None:
    assert error_kind("unreachable", "get task 1: HTTP 401: no", False) == ErrorKind.UNREACHABLE
    assert error_kind("no such kind", "get task 1: HTTP 401: no", False) == ErrorKind.CREDENTIALS


def test_trouble_is_grouped_most_urgent_first() -> None:
    failing = [FailingTask(as_ref(str(i)), "HTTP 502 Bad Gateway", True, None) for i in range(3)]
    failing += [
        FailingTask(as_ref(str(i)), "HTTP 401: no", False, "credentials") for i in range(10, 17)
    ]
    groups = group_trouble(failing)
    assert [(g.kind, g.count) for g in groups] == [("credentials", 7), ("server_error", 3)]
    assert groups[0].task_ids == ["10", "11", "12", "13", "14"]


@pytest.fixture
def status(tmp_path: Path) -> Status:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n')

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), "status", *args])

    return invoke


def _beat(store: Store, ago_s: float, *, stopped: bool = False) -> None:
    now = datetime.now(UTC)
    at = now - timedelta(seconds=ago_s)
    values: dict[str, Any] = {
        "pid": 4242, "version": "9.9", "started_at": at - timedelta(hours=2), "heartbeat_at": at,
        "last_tick_at": at, "last_tick_polls": 3, "next_poll_at": None,
        "stopped_at": at if stopped else None,
    }  # fmt: skip
    store.beat("ops-host:4242", values)


def test_status_without_a_daemon_exits_1(status: Status) -> None:
    result = status()
    assert result.exit_code == 1
    assert "none has run on this database" in result.output
    data = json.loads(status("--json").output)
    assert data["daemon"]["state"] == "never_ran" and data["daemon"]["alive"] is False
    assert data["tasks"] == {"watching": 0, "finished": 0, "gone": 0, "removed": 0}
    assert data["next_poll"] is None and data["trouble"] == []
    assert data["database"]["size_bytes"] > 0 and data["database"]["schema"] == SCHEMA_HEAD


def test_status_follows_the_heartbeat(status: Status, tmp_path: Path) -> None:
    from monitor.database import open_database

    store = Store(open_database(f"sqlite:///{tmp_path / 'monitor.db'}"))
    _beat(store, 5)
    result = status()
    assert result.exit_code == 0, result.output
    assert "alive: heartbeat 5s ago (pid 4242 on ops-host, version 9.9, up 2h)" in result.output
    _beat(store, 300)
    stale = status()
    assert stale.exit_code == 1 and "STALE: last heartbeat 5m ago" in stale.output
    assert status("--stale-after", "10m").exit_code == 0
    assert json.loads(status("--json").output)["daemon"]["heartbeat_age_s"] >= 300
    _beat(store, 1, stopped=True)
    assert status().exit_code == 1 and "stopped" in status().output
    store.engine.dispose()


def test_status_reports_trouble_from_failed_polls(
    sim: Simulator, store: Store, poller: Poller, tmp_path: Path, db_url: str
) -> None:
    for task_id in ("1", "2", "3", "4"):
        sim.add_task(TaskScript(task_id, run_s=600))
    store.register(["1", "2", "3", "4"], Registration(), T0)
    sim.add_fault(Fault(kind="status", status=401, task_id="1", count=None))
    sim.add_fault(Fault(kind="status", status=401, task_id="2", count=None))
    sim.add_fault(Fault(kind="rate_limit", retry_after="0", task_id="3", count=None))
    poller.tick(T0)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')

    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    trouble = {t["kind"]: t for t in json.loads(result.output)["trouble"]}
    assert set(trouble) == {"credentials", "rate_limited"}
    assert (trouble["credentials"]["tasks"], sorted(trouble["credentials"]["task_ids"])) == (
        2,
        ["1", "2"],
    )
    assert "HTTP 401" in trouble["credentials"]["example"]
    assert trouble["rate_limited"]["task_ids"] == ["3"]
    assert SIM_TOKEN not in result.output

    text = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "trouble    credentials: 2 tasks (" in text
    assert "rate_limited: 1 task (3)" in text
    assert "4 watching" in text and "next poll" in text


@pytest.mark.slow
def test_status_of_a_running_daemon(sim: Simulator, tmp_path: Path) -> None:
    sim.add_task(TaskScript("77", run_s=600))
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", "77", env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        wait_for(lambda: jtm(config, "status", env=env).returncode == 0, what="a heartbeat")
        result = jtm(config, "status", "--json", env=env)
    finally:
        assert daemon.stop() == 0
    data = json.loads(result.stdout)
    assert data["daemon"]["state"] == "alive" and data["daemon"]["pid"] == daemon.proc.pid
    assert data["tasks"]["watching"] == 1
    assert data["next_poll"]["task_id"] == "77"
    assert data["database"]["snapshots"] >= 1
    stopped = jtm(config, "status", env=env)
    assert stopped.returncode == 1 and "stopped" in stopped.stdout
