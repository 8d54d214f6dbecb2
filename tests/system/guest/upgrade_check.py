"""The upgrade (check 11 of the README's list). The machine's image installed the previous
release by that release's own README guide, so it boots running the previous release with an
empty database: it registers tasks and records their history, then this commit is installed
over it by the README's upgrade commands and the service restarted."""

from __future__ import annotations

import ast
import json
from collections import Counter

from .install_checks import run_guide
from .systest import (
    CHECKOUT,
    CONFIG,
    UNIT,
    VENV,
    CheckFailed,
    ensure_active,
    events,
    journal,
    jtm,
    prop,
    query,
    run,
    set_config,
    simulator,
    tail,
    task_states,
    wait_for,
    with_poll_interval,
)

Snapshot = tuple[int, str, str]  # (row id, task id, observed at), as the database has them


def snapshots() -> list[Snapshot]:
    rows = query("SELECT id, task_id, observed_at FROM snapshots ORDER BY id")
    return [(row_id, task_id, at) for row_id, task_id, at in rows]


def schema_head() -> str:
    """The checkout's newest schema revision: the last of `SCHEMA_REVISIONS` in
    monitor/database.py (read, not imported: an import of SQLAlchemy costs seconds here)."""
    source = (CHECKOUT / "monitor" / "database.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "SCHEMA_REVISIONS" for t in targets):
                assert node.value is not None
                revisions: tuple[str, ...] = ast.literal_eval(node.value)
                return revisions[-1]
    raise CheckFailed("no SCHEMA_REVISIONS in monitor/database.py")


def check_upgrade() -> str:
    ensure_active()
    set_config(with_poll_interval(CONFIG.read_text(), "4s"))
    run("systemctl", "reload", UNIT)
    simulator(
        "POST",
        "tasks",
        [
            {"task_id": "20001", "run_s": 300.0, "description": "Long"},
            {"task_id": "20002", "run_s": 2.0, "description": "Short"},
        ],
    )
    jtm("add", "20001", "20002", "--label", "upgrade")

    def recorded() -> list[Snapshot] | None:
        rows = snapshots()
        long_ones = sum(1 for _, task_id, _ in rows if task_id == "20001")
        short_done = task_states().get("20002", ("",))[0] == "finished"
        return rows if long_ones >= 3 and short_done else None

    wait_for("history from the previous release", recorded, 120)
    old_schema = query("SELECT version_num FROM alembic_version")[0][0]
    before = snapshots()
    # The upgrade, as the README says; the daemon migrates the database before READY=1.
    commands = run_guide("upgrade")
    if prop("ActiveState") != "active":
        raise CheckFailed(f"after the upgrade: {prop('ActiveState')}")
    stale = run(
        "diff",
        "-r",
        "-x",
        "__pycache__",
        "-x",
        "_migrations",
        str(CHECKOUT / "monitor"),
        str(next(VENV.glob("lib/python3*/site-packages/monitor"))),
        check=False,
    )
    if stale.returncode != 0:
        raise CheckFailed(f"the installed package is not the checkout's: {tail(stale)}")
    head = schema_head()
    schema = json.loads(jtm("status", "--json").stdout)["database"]["schema"]
    if schema != head:
        raise CheckFailed(f"schema {schema} after the upgrade, not {head}")
    kept = set(snapshots())
    lost = [row for row in before if row not in kept]
    if lost:
        raise CheckFailed(f"{len(lost)} snapshots lost, e.g. {lost[:3]}")
    shown = json.loads(jtm("history", "--label", "upgrade", "--limit", "0", "--json").stdout)
    if len(shown) < len(before):
        raise CheckFailed(f"jtm history shows {len(shown)} snapshots, {len(before)} were recorded")
    last = before[-1][0]
    wait_for(
        "a new snapshot of 20001 after the upgrade",
        lambda: [r for r in snapshots() if r[0] > last and r[1] == "20001"],
        60,
    )
    finished = Counter(e["task_id"] for _, e in events(journal()) if e["event"] == "task.finished")
    if finished["20002"] != 1:
        raise CheckFailed(f"task.finished for 20002: {finished['20002']} lines")
    return (
        f"previous release (schema {old_schema}) recorded {len(before)} snapshots; the "
        f"README's {commands} upgrade commands installed this checkout, schema {schema} at "
        f"start, no snapshot lost ({len(shown)} in jtm history), 20001 polled on"
    )
