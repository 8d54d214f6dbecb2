"""The metrics endpoint, `jtm metrics` and the counters behind them.

The real daemon serves what it counts and what the database says; the counters are checked
against the real simulator one tick at a time; the rest of the CLI must not pay for the
metrics library.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.backlog import Backlog
from monitor.canceller import MAX_ATTEMPTS
from monitor.config import Secret, Settings, TimeoutSettings
from monitor.errors import JiraNotFound, JiraUnreachable, StoreUnavailable
from monitor.jira import JiraClient
from monitor.jira.pacing import SiteGate
from monitor.logs import get_logger
from monitor.metrics.address import ListenAddress, parse_listen
from monitor.metrics.census import Census
from monitor.metrics.recorder import Recorder
from monitor.metrics.site import PauseReason
from monitor.poller import Poller
from monitor.simulator import Simulator, TaskScript
from monitor.states import TaskKind, TimeoutAction
from monitor.store import Registration, Store
from monitor.taskref import TaskRef
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import JTM, Daemon, base_env, jtm, wait_for, write_config
from tests.scrape import free_port, parse, scrape, value

NOW = datetime.now(UTC)
TICKS = "jtm_tick_duration_seconds_count"
HOURS = 3600.0


def db_counts(store: Store) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT state, coalesce(status, ''), count(*) FROM tasks GROUP BY 1, 2"
        )
        return {(state, status): count for state, status, count in rows}


# -- the address -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ListenAddress("127.0.0.1", 9464)),
        ("localhost:1", ListenAddress("localhost", 1)),
        ("[::1]:9464", ListenAddress("::1", 9464)),
        ("[::]:65535", ListenAddress("::", 65535)),
        (
            "unix:/run/jira-task-monitor/metrics.sock",
            ListenAddress(path="/run/jira-task-monitor/metrics.sock"),
        ),
    ],
)
def test_listen_addresses(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected
    assert str(parse_listen(str(expected))) == str(expected)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9464", "expected HOST:PORT"),
        (":9464", "expected HOST:PORT"),
        ("127.0.0.1:0", "from 1 to 65535"),
        ("127.0.0.1:99999", "from 1 to 65535"),
        ("127.0.0.1:http", "from 1 to 65535"),
        ("::1:9464", "in brackets"),
        ("[::1]9464", "[IPV6]:PORT"),
        ("[nope]:9464", "not an IPv6 address"),
        ("bad host:9464", "not a host name"),
        ("unix:metrics.sock", "absolute path"),
        ("unix:/" + "x" * 200, "at most 107 bytes"),
    ],
)
def test_bad_listen_addresses_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        parse_listen(text)


def test_a_bad_address_in_the_config_is_refused_with_exit_78(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": "[::1]9464"})
    result = jtm(config, "list", env=base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    assert result.returncode == 78
    assert result.stderr.count("\n") == 1
    assert "metrics.listen = '[::1]9464'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_already_taken_stops_the_start_with_exit_78(sim: Simulator, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": f"127.0.0.1:{port}"})
        result = jtm(config, "run", env=base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    assert result.returncode == 78
    assert f"metrics.listen = '127.0.0.1:{port}': address already in use" in result.stderr
    assert "Traceback" not in result.stderr


# -- the live endpoint -----------------------------------------------------------------------


def test_the_endpoint_serves_the_counters_and_the_database(
    sim: Simulator, tmp_path: Path, store: Store
) -> None:
    port = free_port()
    sim.add_task(TaskScript("1", queued_s=0.2, run_s=0.5))
    sim.add_task(TaskScript("2", queued_s=0.2, run_s=0.5, outcome="FAILED"))
    sim.add_task(TaskScript("3", queued_s=0, run_s=HOURS, started_ago_s=HOURS / 4, stall_at=25))
    sim.add_task(TaskScript("4", queued_s=HOURS))
    config = write_config(
        tmp_path,
        sim,
        SIM_EMAIL,
        database={"url": str(store.engine.url)},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", "1", "2", "4", env=env).returncode == 0
    assert jtm(config, "add", "3", "--stall", "2s", "--action", "warn", env=env).returncode == 0
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("task.finished", count=2)
        daemon.wait_event("task.timeout")
        wait_for(lambda: bool(value(parse(scrape(port)[0]), TICKS)), what="a completed tick")
        text, content_type = scrape(port)
        open_metrics, om_type = scrape(port, "application/openmetrics-text; version=1.0.0")
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        assert daemon.stop() == 0
    assert content_type.startswith("text/plain; version=0.0.4")
    assert om_type.startswith("application/openmetrics-text")
    assert open_metrics.endswith("# EOF\n")
    assert elsewhere.value.code == 404

    samples = parse(text)
    assert value(samples, "jtm_tasks_finished_total", kind="task", status="COMPLETE") == 1
    assert value(samples, "jtm_tasks_finished_total", kind="task", status="FAILED") == 1
    assert value(samples, "jtm_tasks_finished_total", kind="task", status="DEAD") == 0
    assert value(samples, "jtm_task_duration_seconds_count", kind="task") == 2
    assert value(samples, "jtm_timeouts_total", kind="task", limit="stall", action="warn") == 1
    assert value(samples, "jtm_timeouts_total", kind="task", limit="run", action="warn") == 0
    polls = value(samples, "jtm_polls_total", kind="task", outcome="ok")
    assert polls is not None and polls >= 4
    assert value(samples, "jtm_polls_total", kind="task", outcome="credentials") == 0
    requests = value(samples, "jtm_jira_requests_total", code_class="2xx")
    assert requests is not None and requests > polls  # and the start's GET /myself
    assert value(samples, "jtm_jira_request_duration_seconds_count") == requests
    snapshots = value(samples, "jtm_snapshots_written_total")
    assert snapshots is not None and snapshots >= 4
    assert value(samples, "jtm_store_write_failures_total") == 0
    ticks = value(samples, TICKS)
    assert ticks is not None and ticks >= 1
    last_tick = value(samples, "jtm_last_tick_timestamp_seconds")
    assert last_tick is not None and abs(last_tick - datetime.now(UTC).timestamp()) < 60
    stall = value(samples, "jtm_longest_stall_seconds", kind="task")
    assert stall is not None and stall >= 2
    age = value(samples, "jtm_oldest_watched_task_age_seconds", kind="task")
    assert age is not None and age > 0
    assert value(samples, "jtm_build_info", version=_version(), schema=_schema()) == 1
    served = {
        (dict(labels)["state"], dict(labels)["status"]): count
        for (name, labels), count in samples.items()
        if name == "jtm_tasks"
    }
    assert served == db_counts(store)
    assert served[("watching", "RUNNING")] == 1
    assert served[("watching", "ENQUEUED")] == 1

    # `jtm metrics`: the same gauges, from the database alone.
    printed = jtm(config, "metrics", env=env)
    assert printed.returncode == 0, printed.stderr
    once = parse(printed.stdout)
    assert {key: v for key, v in once.items() if key[0] == "jtm_tasks"} == {
        key: v for key, v in samples.items() if key[0] == "jtm_tasks"
    }
    assert value(once, "jtm_polls_total", kind="task", outcome="ok") is None  # the daemon's
    assert value(once, "jtm_last_tick_timestamp_seconds") is not None
    # With per-task series: the stalled task's progress and time past its stall limit.
    per_task = jtm(config, "metrics", env={**env, "JTM_METRICS_PER_TASK": "true"})
    tasks = parse(per_task.stdout)
    assert value(tasks, "jtm_task_progress_ratio", kind="task", task_id="3") == 0.25
    left = value(tasks, "jtm_task_limit_remaining_seconds", kind="task", task_id="3", limit="stall")
    assert left is not None and left < 0
    assert value(tasks, "jtm_task_progress_ratio", kind="task", task_id="1") is None  # finished
    # Atomically to a file, for node_exporter's textfile collector.
    target = tmp_path / "jtm.prom"
    assert jtm(config, "metrics", "--output", str(target), env=env).returncode == 0
    assert parse(target.read_text()).keys() == once.keys()
    failed = jtm(config, "metrics", "-o", str(tmp_path / "no" / "such" / "dir.prom"), env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("jtm: error: cannot write") and "Traceback" not in failed.stderr


def test_a_unix_socket_endpoint(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "metrics.sock"
    config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": f"unix:{path}"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    # A socket file left by a daemon that was killed is taken over.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    daemon = Daemon(config, env)
    try:
        daemon.wait_event("daemon.started")
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(path))
            conn.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            answer = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
    finally:
        assert daemon.stop() == 0
    assert answer.startswith("HTTP/1.0 200")
    assert "jtm_build_info{" in answer
    assert not path.exists()  # removed at the stop


# -- the counters, one tick at a time --------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_cancel_steps_and_limits_are_counted_by_result(
    sim: Simulator,
    store: Store,
    client: JiraClient,
    settings: Settings,
    registry: CollectorRegistry,
) -> None:
    def running(task_id: str, **script: Any) -> TaskScript:
        return TaskScript(task_id, queued_s=0, run_s=100 * HOURS, started_ago_s=2 * HOURS, **script)

    sim.add_task(running("5", cancellable=False))
    sim.add_task(running("6", ignore_cancel=True))
    sim.add_task(running("7", cancel_delay_s=0.0))
    store.register(["5", "6", "7"], Registration(run_s=HOURS), NOW)
    timeouts = TimeoutSettings(cancel_grace_s=10.0)
    with ThreadPoolExecutor(4) as workers:
        poller = Poller(
            store,
            client,
            settings.poll,
            timeouts,
            workers,
            rng=random.Random(7),
            telemetry=Recorder(registry),
        )
        for second in range(61):
            poller.tick(NOW + timedelta(seconds=second))

    def cancels(result: str) -> float | None:
        return registry.get_sample_value("jtm_cancels_total", {"kind": "task", "result": result})

    assert cancels("refused") == 1
    assert cancels("unconfirmed") == 1
    assert cancels("confirmed") == 1
    assert cancels("sent") == MAX_ATTEMPTS + 1
    assert cancels("overtaken") == 0
    labels = {"kind": "task", "limit": "run", "action": str(TimeoutAction.CANCEL)}
    assert registry.get_sample_value("jtm_timeouts_total", labels) == 3
    finished = {"kind": "task", "status": "CANCELLED"}
    assert registry.get_sample_value("jtm_tasks_finished_total", finished) == 1


def test_a_bulk_operation_is_counted_under_its_own_kind(
    sim: Simulator,
    store: Store,
    client: JiraClient,
    settings: Settings,
    registry: CollectorRegistry,
) -> None:
    # A task and a bulk operation with the same ID, and a bulk one still running: each series
    # about tasks says which kind it counts.
    sim.add_task(TaskScript("8", queued_s=0, run_s=1.0, started_ago_s=HOURS))
    sim.add_task(
        TaskScript("8", kind="bulk", queued_s=0, run_s=1.0, started_ago_s=HOURS, outcome="FAILED")
    )
    sim.add_task(
        TaskScript("9", kind="bulk", queued_s=0, run_s=HOURS, started_ago_s=HOURS / 2, stall_at=40)
    )
    bulk = [TaskRef(TaskKind.BULK, "8"), TaskRef(TaskKind.BULK, "9")]
    store.register(["8", *bulk], Registration(), NOW)
    with ThreadPoolExecutor(4) as workers:
        poller = Poller(
            store,
            client,
            settings.poll,
            settings.timeouts,
            workers,
            rng=random.Random(3),
            telemetry=Recorder(registry),
        )
        for second in range(0, 31, 5):
            poller.tick(NOW + timedelta(seconds=second))

    def count(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert count("jtm_tasks_finished_total", kind="task", status="COMPLETE") == 1
    assert count("jtm_tasks_finished_total", kind="task", status="FAILED") == 0
    assert count("jtm_tasks_finished_total", kind="bulk", status="FAILED") == 1
    assert count("jtm_tasks_finished_total", kind="bulk", status="COMPLETE") == 0
    assert count("jtm_task_duration_seconds_count", kind="bulk") == 1
    bulk_polls = count("jtm_polls_total", kind="bulk", outcome="ok")
    task_polls = count("jtm_polls_total", kind="task", outcome="ok")
    assert bulk_polls is not None and task_polls is not None and bulk_polls > task_polls >= 1

    # The census (what a scrape and `jtm metrics` read from the database), per task too.
    census = CollectorRegistry()
    per_task = replace(settings, metrics=replace(settings.metrics, per_task=True))
    census.register(Census(store.engine, lambda: per_task, clock=lambda: NOW))

    def gauge(name: str, **labels: str) -> float | None:
        return census.get_sample_value(name, labels)

    assert gauge("jtm_tasks", kind="task", state="finished", status="COMPLETE") == 1
    assert gauge("jtm_tasks", kind="bulk", state="finished", status="FAILED") == 1
    assert gauge("jtm_tasks", kind="bulk", state="watching", status="RUNNING") == 1
    assert gauge("jtm_tasks", kind="task", state="watching", status="RUNNING") is None
    assert gauge("jtm_oldest_watched_task_age_seconds", kind="task") == 0
    bulk_age = gauge("jtm_oldest_watched_task_age_seconds", kind="bulk")
    assert bulk_age is not None and bulk_age >= 0
    assert gauge("jtm_task_progress_ratio", kind="bulk", task_id="9") == 0.4
    assert gauge("jtm_task_progress_ratio", kind="task", task_id="9") is None


def test_pauses_count_once_each_and_their_seconds_as_wall_time(registry: CollectorRegistry) -> None:
    clock = [100.0]
    gate = SiteGate(10, clock=lambda: clock[0], sleep=lambda _s: None, telemetry=Recorder(registry))
    gate.rate_limited(5.0)  # paused until 105
    gate.rate_limited(2.0)  # within it: adds nothing
    clock[0] = 103.0
    gate.rate_limited(4.0)  # to 107: 2 s more of the same pause
    clock[0] = 110.0
    gate.rate_limited(1.0)  # a new pause
    reason = {"reason": str(PauseReason.RATE_LIMITED)}
    assert registry.get_sample_value("jtm_jira_pauses_total", reason) == 2
    assert registry.get_sample_value("jtm_jira_paused_seconds_total", reason) == 8


def test_requests_are_counted_by_status_class(
    sim: Simulator, settings: Settings, registry: CollectorRegistry
) -> None:
    recorder = Recorder(registry)
    sim.add_task(TaskScript("8"))
    with JiraClient(settings.jira, Secret(SIM_TOKEN), telemetry=recorder) as jira:
        jira.get_task("8")
        with pytest.raises(JiraNotFound):
            jira.get_task("nope")
    nowhere = replace(settings.jira, url=f"http://127.0.0.1:{free_port()}")
    with (
        JiraClient(nowhere, Secret(SIM_TOKEN), telemetry=recorder) as jira,
        pytest.raises(JiraUnreachable),
    ):
        jira.get_task("8")
    for code in ("2xx", "4xx", "error"):
        assert registry.get_sample_value("jtm_jira_requests_total", {"code_class": code}) == 1
    assert registry.get_sample_value("jtm_jira_request_duration_seconds_count") == 3


def test_storage_failures_are_counted(registry: CollectorRegistry) -> None:
    backlog = Backlog(get_logger(), telemetry=Recorder(registry))
    backlog.failed(StoreUnavailable("database or disk is full"))
    backlog.failed(StoreUnavailable("database or disk is full"))
    assert registry.get_sample_value("jtm_store_write_failures_total") == 2


# -- what the rest of the CLI pays ---------------------------------------------------------


def imports(config: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *JTM[1:], "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=base_env(JTM_JIRA_TOKEN=SIM_TOKEN),
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stderr


def test_only_run_and_metrics_import_the_metrics_library(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": "127.0.0.1:9464"})
    for command in (["list"], ["status", "--json"]):
        assert "prometheus_client" not in imports(config, *command), command
    assert "prometheus_client" in imports(config, "metrics")


def _version() -> str:
    from monitor import __version__

    return __version__


def _schema() -> str:
    from monitor.database import SCHEMA_HEAD

    return SCHEMA_HEAD
