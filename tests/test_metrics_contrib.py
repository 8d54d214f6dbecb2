"""The shipped alert rules, their unit tests, the Grafana dashboard and the README use only
metrics the monitor exports (a renamed metric would leave an alert silent forever)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from monitor.config import DatabaseSettings, Settings
from monitor.metrics.census import Tally, per_task_families, task_families
from monitor.metrics.exposition import add_build_info
from monitor.metrics.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "rules.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "jira-task-monitor.json"
NAME = re.compile(r"\bjtm_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
"""The series names each type of family exposes (the `_created` series are turned off)."""


def families() -> list[Metric]:
    registry = CollectorRegistry()
    Recorder(registry)
    add_build_info(registry)
    now = datetime.now(UTC)
    settings = Settings(database=DatabaseSettings("sqlite://"))
    return [
        *registry.collect(),
        *task_families(Tally([], []), now),
        *per_task_families([], settings, now),
    ]


def exported() -> set[str]:
    """Every series name the daemon's endpoint can expose."""
    return {family.name + end for family in families() for end in SUFFIXES[family.type]}


def test_the_known_names_are_the_real_ones() -> None:
    names = exported()
    assert {"jtm_polls_total", "jtm_task_duration_seconds_bucket", "jtm_tasks"} <= names
    assert "jtm_polls" not in names  # a counter's series carries _total
    assert all(name.startswith("jtm_") for name in names)


def test_the_rules_use_only_exported_metrics() -> None:
    used = set(NAME.findall(RULES.read_text()))
    assert used, "no metric found in the rules"
    assert used <= exported(), used - exported()
    # The unit tests write series of the real names too.
    written = set(NAME.findall(RULE_TESTS.read_text()))
    assert written <= exported(), written - exported()


def _exprs(node: Any) -> list[str]:
    """Every query in the dashboard: targets' `expr` and the variables' queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and "query" in value:
                found.append(str(value["query"]))
            else:
                found.extend(_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_exprs(item))
    return found


def test_the_dashboard_is_valid_json_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert dashboard["uid"] == "jira-task-monitor"
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert NAME.search(target["expr"]) or "up{" in target["expr"], panel["title"]
    used = {name for expr in _exprs(dashboard) for name in NAME.findall(expr)}
    assert used <= exported(), used - exported()
    # Every family is on the dashboard somewhere.
    shown = {name.removesuffix(end) for name in used for end in ("_total", "_bucket", "_sum")}
    assert {family.name for family in families()} <= shown | used


def test_the_readme_documents_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [f.name for f in families() if f"`{f.name}" not in readme]
    assert not missing
