"""Prometheus's own tools on the monitor's metrics: `promtool` on the rules and on a live
scrape, and a real Prometheus scraping a real `jtm run` against the simulator.

Marked `prometheus` (left out of the default run): `make metrics-test` installs Debian's
`prometheus` (which carries `promtool`) and `prometheus-alertmanager` (with `amtool`) when
missing and runs these; the alert goes through a real Alertmanager too; CI runs it. The
tests fail, not skip, without the binaries: a check that cannot run must not pass.

For the alert, the test loads a copy of the shipped rules with every `for:` rewritten to `0s`:
the expressions are the shipped ones, only the time an alert must hold before it fires is cut,
so a stalled task fires `JiraTaskPastLimit` seconds after its stall limit passes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Simulator, TaskScript
from monitor.store import Store
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import Daemon, base_env, jtm, wait_for, write_config
from tests.scrape import free_port, scrape
from tests.test_metrics import db_counts
from tests.test_metrics_contrib import RULE_TESTS, RULES

pytestmark = pytest.mark.prometheus

HOURS = 3600.0


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make metrics-test` installs Debian's prometheus")
    return path


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", RULE_TESTS.name],
        check=False,
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def _ready(proc: subprocess.Popen[str], url: str) -> bool:
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


class Alertmanager:
    """Debian's prometheus-alertmanager on loopback, one route to a receiver that only keeps
    the alerts (its API lists them); the config is checked with amtool first."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = directory / "alertmanager.yml"
        config.write_text(
            "route:\n  receiver: keep\n  group_wait: 0s\nreceivers:\n  - name: keep\n"
        )
        check = subprocess.run(
            [tool("amtool"), "check-config", str(config)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen(
            [
                tool("prometheus-alertmanager"),
                f"--config.file={config}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no peers: no gossip port
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{self.port}/-/ready"
        wait_for(lambda: _ready(self.proc, url), timeout=60, what="alertmanager to be ready")

    def alerts(self) -> list[dict[str, str]]:
        """The labels of the active alerts it received."""
        alerts = _get_json(f"http://127.0.0.1:{self.port}/api/v2/alerts?active=true")
        return [alert["labels"] for alert in alerts]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Prometheus:
    """Debian's prometheus on loopback, scraping `target` every second, evaluating `rules`
    every second and sending what fires to the Alertmanager on port `alertmanager`."""

    def __init__(self, directory: Path, target: str, rules: Path, alertmanager: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = directory / "prometheus.yml"
        manager = json.dumps(f"127.0.0.1:{alertmanager}")
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: [{manager}]}}]}}]}}\n"
            f"rule_files: [{json.dumps(str(rules))}]\n"
            "scrape_configs:\n"
            "  - job_name: jira-task-monitor\n"
            f"    static_configs: [{{targets: [{json.dumps(target)}]}}]\n"
        )
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{self.port}/-/ready"
        wait_for(lambda: _ready(self.proc, url), timeout=60, what="prometheus to be ready")

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = _get_json(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}")
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's result: each series' labels (sorted) and value."""
        return {
            tuple(sorted(item["metric"].items())): float(item["value"][1])
            for item in self.api("query", query=expr)["result"]
        }

    def firing(self) -> list[dict[str, str]]:
        return [
            alert["labels"] for alert in self.api("alerts")["alerts"] if alert["state"] == "firing"
        ]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass(frozen=True)
class Live:
    daemon: Daemon
    port: int  # of its endpoint
    config: Path


@pytest.fixture
def live(sim: Simulator, tmp_path: Path, store: Store) -> Iterator[Live]:
    """`jtm run` with its endpoint on a free port, on `store`'s database."""
    port = free_port()
    config = write_config(
        tmp_path,
        sim,
        SIM_EMAIL,
        database={"url": str(store.engine.url)},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    sim.add_task(TaskScript("1", queued_s=0.2, run_s=0.5))
    sim.add_task(TaskScript("2", queued_s=0.2, run_s=0.5, outcome="FAILED"))
    sim.add_task(TaskScript("4", queued_s=HOURS))
    sim.add_task(TaskScript("3", queued_s=0, run_s=HOURS, started_ago_s=HOURS / 4, stall_at=25))
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", "1", "2", "4", env=env).returncode == 0
    running = Daemon(config, env)
    try:
        running.wait_event("daemon.started")
        yield Live(running, port, config)
    finally:
        assert running.stop() == 0


def test_a_live_scrape_passes_promtool_check_metrics(live: Live) -> None:
    live.daemon.wait_event("task.finished", count=2)
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        text, _type = scrape(live.port, accept)
        if accept is None:
            check = subprocess.run(
                [tool("promtool"), "check", "metrics"],
                check=False,
                input=text,
                capture_output=True,
                text=True,
            )
            assert (check.returncode, check.stdout, check.stderr) == (0, "", "")
        else:
            assert text.endswith("# EOF\n")


def test_prometheus_sees_what_the_database_says_and_a_stalled_task_fires_an_alert(
    live: Live, tmp_path: Path, store: Store
) -> None:
    running = live.daemon
    rules = tmp_path / "rules.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 0s", RULES.read_text()))
    assert "for: 5m" not in rules.read_text()
    alertmanager = Alertmanager(tmp_path / "alertmanager")
    prometheus = Prometheus(
        tmp_path / "prometheus", f"127.0.0.1:{live.port}", rules, alertmanager.port
    )
    try:
        # Two scrapes first, so that the counters' zeros are known before anything happens.
        def scrapes() -> float:
            counts = prometheus.query('count_over_time(up{job="jira-task-monitor"}[1m])')
            return min(counts.values(), default=0.0)

        wait_for(lambda: scrapes() >= 2, timeout=60, what="two scrapes")
        assert list(prometheus.query('up{job="jira-task-monitor"}').values()) == [1.0]
        # A task that stalls: registered now, while Prometheus watches.
        env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
        added = jtm(live.config, "add", "3", "--stall", "2s", "--action", "warn", env=env)
        assert added.returncode == 0, added.stderr
        running.wait_event("task.timeout")
        running.wait_event("task.finished", count=2)

        def stall_alert() -> list[dict[str, str]]:
            return [
                labels
                for labels in prometheus.firing()
                if labels["alertname"] == "JiraTaskPastLimit" and labels["limit"] == "stall"
            ]

        wait_for(lambda: bool(stall_alert()), timeout=60, what="JiraTaskPastLimit to fire")
        [alert] = stall_alert()
        assert (alert["severity"], alert["action"], alert["kind"]) == ("warning", "warn", "task")

        def per_state() -> dict[str, float]:
            return {
                dict(labels)["state"]: value
                for labels, value in prometheus.query("sum by (state) (jtm_tasks)").items()
            }

        def db_per_state() -> dict[str, float]:
            totals: dict[str, float] = {}
            for (state, _status), count in db_counts(store).items():
                totals[state] = totals.get(state, 0) + count
            return totals

        wait_for(lambda: per_state() == db_per_state(), timeout=30, what="tasks per state")
        assert per_state() == {"watching": 2, "finished": 2}
        finished = {
            dict(labels)["status"]: value
            for labels, value in prometheus.query('jtm_tasks_finished_total{kind="task"}').items()
        }
        assert finished == {"COMPLETE": 1, "FAILED": 1, "CANCELLED": 0, "DEAD": 0}
        stalls = prometheus.query('sum(jtm_timeouts_total{limit="stall", action="warn"})')
        assert list(stalls.values()) == [1.0]
        [stall] = prometheus.query('jtm_longest_stall_seconds{kind="task"}').values()
        assert stall >= 2
        others = {labels["alertname"] for labels in prometheus.firing()} - {"JiraTaskPastLimit"}
        assert others == set()
        # And Alertmanager got it, as it would route it to a pager.
        wait_for(
            lambda: any(a["alertname"] == "JiraTaskPastLimit" for a in alertmanager.alerts()),
            timeout=60,
            what="the alert at alertmanager",
        )
    finally:
        prometheus.stop()
        alertmanager.stop()
