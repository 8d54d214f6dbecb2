"""The daemon's modules import only the layers below them (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import monitor

PACKAGE = Path(monitor.__file__).parent

LAYERS = [
    ["states", "errors", "durations", "terminal", "palette", "systemd", "logs", "bulkcounts",
     "metrics.site", "metrics.address", "metrics.names"],
    ["taskref", "sqlite_path", "config_keys", "notify.events", "notify.channels", "settings",
     "config", "schema", "records", "deadlines"],
    ["jira.payload", "jira.bulk", "jira.pacing", "jira.deadline", "jira.diagnosis",
     "jira.transport", "jira.client", "jira", "jira.api"],
    ["outcome", "observation", "notify.router", "metrics.hooks"],
    ["postgresql", "database", "store.queries", "statefile", "store.outbox", "store.polls",
     "store.shared", "store", "store.copy"],
    ["backlog", "notify.transport", "notify.delivery", "notify.service", "canceller",
     "pollreport", "retention", "metrics.recorder", "metrics.census", "metrics.exposition",
     "metrics.server", "metrics.endpoint"],
    ["heartbeat", "poller", "daemon_status"],
    ["runtime", "reload", "sharing", "services", "startup"],
    ["daemon"],
]  # fmt: skip
ORDER = [name for layer in LAYERS for name in layer]


def _source(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
    return path if path.exists() else PACKAGE.joinpath(*name.split("."), "__init__.py")


def imported(name: str) -> set[str]:
    """The package's modules that `name` imports (at any depth of its code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(_source(name).read_text())):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("monitor."):
            continue
        module = (node.module or "").removeprefix("monitor.")
        found.add(module)
        found |= {f"{module}.{alias.name}" for alias in node.names} & set(ORDER)
    return found - {name}


def test_every_layered_module_exists() -> None:
    assert all(_source(name).exists() for name in ORDER)


def test_no_module_imports_one_above_it() -> None:
    upward = [
        f"{name} imports {other}"
        for name in ORDER
        for other in sorted(imported(name))
        if other not in ORDER or ORDER.index(other) > ORDER.index(name)
    ]
    assert upward == []


def test_systemd_and_the_pure_decision_stay_where_they_are() -> None:
    assert imported("systemd") == set()
    assert not {"store", "store.polls", "database"} & imported("observation")
    assert "poller" not in imported("heartbeat")
    # The Jira layer sees only the metrics' site hooks, never the poll-level ones.
    assert {"metrics.site"} == {m for m in imported("jira.client") if m.startswith("metrics")}
