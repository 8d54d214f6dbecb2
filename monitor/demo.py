"""`jtm demo`: the product in half a minute, with nothing to set up and nothing left behind.

The bundled simulator plays Jira; the real daemon (`python -m monitor run`, a subprocess with a
config file of its own) watches a handful of tasks on a temporary database. The demo reads the
daemon's JSON log lines and tells them as a story, shows progress from the database as the CLI
would, and ends with the table of final states, printed by `jtm list --all` itself.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from monitor.database import open_database
from monitor.simulator import Simulator, TaskScript
from monitor.sqlite_path import file_url
from monitor.states import JiraStatus, TaskKind, TaskState
from monitor.store import Registration, Store
from monitor.store.queries import Filters, Queries
from monitor.taskref import TaskRef

DEMO_TASKS: tuple[tuple[TaskScript, str], ...] = (
    (TaskScript("10001", queued_s=1, run_s=6, outcome="COMPLETE"), "reindex project OPS"),
    (TaskScript("10002", queued_s=2, run_s=12, outcome="COMPLETE"), "delete custom field"),
    (
        TaskScript(
            "10003",
            queued_s=1,
            run_s=8,
            outcome="FAILED",
            ends_at=35,
            result={"errors": ["Field options are in use by 12 issues"]},
        ),
        "replace field options",
    ),
    (TaskScript("10004", queued_s=4, run_s=14, outcome="COMPLETE"), "archive issues by JQL"),
    (
        TaskScript("10005", queued_s=1, run_s=5, outcome="DEAD", ends_at=80),
        "delete project SANDBOX",
    ),
    (TaskScript("10006", queued_s=1, run_s=120, cancel_delay_s=1), "bulk edit (overruns)"),
    (
        TaskScript(
            "10000",
            kind="bulk",
            queued_s=1,
            run_s=10,
            issues=40,
            invalid_issues=2,
            failures=(("10087", "The issue is locked"), ("10093", "Field 'Team' is required")),
        ),
        "bulk transition to Done",
    ),
)
RUN_LIMITS = {"10006": 6.0}  # seconds: the demo's `jtm add --run 6s`
UNKNOWN_TASK = ("10099", "a task that is not on this site")
POLL_EVERY = "1s"


def _config(tmp: Path, sim: Simulator, token: str) -> Path:
    token_file = tmp / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    config = tmp / "config.toml"
    config.write_text(
        f'[jira]\nurl = "{sim.url}"\nemail = "demo@example.com"\ntoken_file = "{token_file}"\n'
        f'[database]\nurl = "{file_url(tmp / "monitor.db")}"\n'
        f'[poll]\ninterval = "{POLL_EVERY}"\nmax_interval = "2s"\nconcurrency = 4\n'
        '[log]\nformat = "json"\n'
    )
    return config


def _narrate(line: str) -> None:
    try:
        event: dict[str, Any] = json.loads(line)
    except ValueError:
        return
    name = event.get("event")
    task = event.get("task_id", "")
    if TaskKind.BULK in (event.get("kind"), event.get("task_kind")):
        task = f"bulk:{task}"
    stamp = str(event.get("timestamp", ""))[11:19]
    if name == "daemon.started":
        text = f"daemon started (pid {event.get('pid')}), watching {event.get('tasks')} tasks"
    elif name == "task.status_changed":
        progress = event.get("progress")
        text = f"task {task}: {event.get('from') or 'first seen'} -> {event.get('to')}"
        text += f" at {progress}%" if progress is not None else ""
    elif name == "task.finished":
        colour = "green" if event.get("status") == JiraStatus.COMPLETE else "red"
        by_monitor = " (cancelled by the monitor)" if event.get("cancelled_by_monitor") else ""
        text = click.style(
            f"task {task} finished {event.get('status')} at {event.get('progress')}% after "
            f"{event.get('duration_s')}s and {event.get('polls')} polls{by_monitor}"
            + (f", {event['failed_issues']} issues failed" if event.get("failed_issues") else ""),
            fg=colour,
        )
    elif name == "task.timeout":
        text = click.style(
            f"task {task} passed its {event.get('kind')} limit of {event.get('limit_s')}s "
            f"({event.get('observed_s')}s): the monitor decides to {event.get('action')} it",
            fg="yellow",
        )
    elif name in ("task.cancel_requested", "task.cancel_failed", "task.cancel_unconfirmed"):
        what = name.split(".")[1].replace("_", " ")
        text = f"task {task}: {what} (attempt {event.get('attempt', '-')})"
    elif name == "task.gone":
        text = click.style(
            f"task {task} is gone: Jira answers 404 ({event.get('reason')})", fg="yellow"
        )
    elif name in ("daemon.stopped", "jira.error", "jira.rate_limited"):
        fields = {k: v for k, v in event.items() if k not in ("event", "timestamp", "level")}
        text = f"{name} {json.dumps(fields)}"
    else:
        return
    click.echo(f"  {stamp}  {text}")


def run_demo(max_seconds: int = 40) -> None:
    token = secrets.token_urlsafe(24)
    with (
        tempfile.TemporaryDirectory(prefix="jtm-demo-") as name,
        Simulator(auth="basic", email="demo@example.com", token=token) as sim,
    ):
        tmp = Path(name)
        for script, _label in DEMO_TASKS:
            sim.add_task(script)
        config = _config(tmp, sim, token)
        store = Store(open_database(file_url(tmp / "monitor.db")))
        now = datetime.now(UTC)
        for script, label in DEMO_TASKS:
            limit = RUN_LIMITS.get(script.task_id)
            ref = TaskRef(TaskKind(script.kind), script.task_id)
            store.register([ref], Registration(label=label, run_s=limit), now)
        unknown = TaskRef(TaskKind.TASK, UNKNOWN_TASK[0])
        store.register([unknown], Registration(label=UNKNOWN_TASK[1]), now)
        click.secho("jira-task-monitor demo", bold=True)
        click.echo(
            f"A simulated Jira site runs at {sim.url}. Eight tasks are registered (as `jtm add`\n"
            f"would; one with `--run 6s`, one bulk operation, and one that does not exist), and\n"
            f"the daemon (`jtm run`) polls them every {POLL_EVERY}. It logs one JSON line per\n"
            "event; here they are, told as a story:\n"
        )
        log_path = tmp / "daemon.log"
        with log_path.open("w") as log_out:
            daemon = subprocess.Popen(
                _jtm(config, "run"),
                stdout=log_out,
                stderr=subprocess.STDOUT,
            )
        try:
            _follow(daemon, log_path, Queries(store.engine), max_seconds)
        finally:
            if daemon.poll() is None:
                daemon.terminate()
            daemon.wait(timeout=30)
        click.echo("")
        click.secho("Final states (as `jtm list --all` shows them):", bold=True)
        # The CLI itself prints them: the demo shows the product, and stays below the CLI.
        subprocess.run(_jtm(config, "list", "--all"), check=False)
        snapshots = Queries(store.engine).snapshot_count()
        click.echo(
            f"\n{snapshots} snapshots were recorded: one per change, not one per poll "
            "(`jtm history` shows them).\nThe daemon stopped cleanly with exit code "
            f"{daemon.returncode}. Try it on your site: see README.md."
        )
        store.engine.dispose()


def _jtm(config: Path, *args: str) -> list[str]:
    """The command line of `jtm --config CONFIG ARGS...`, run by this interpreter."""
    return [sys.executable, "-m", "monitor", "--config", str(config), *args]


def _follow(
    daemon: subprocess.Popen[bytes], log_path: Path, queries: Queries, max_seconds: int
) -> None:
    deadline = time.monotonic() + max_seconds
    offset = 0
    next_table = time.monotonic() + 5
    while time.monotonic() < deadline and daemon.poll() is None:
        with log_path.open() as log_in:
            log_in.seek(offset)
            chunk = log_in.read()
        complete, _, _partial = chunk.rpartition("\n")
        if complete:
            offset += len(complete.encode()) + 1
            for line in complete.splitlines():
                _narrate(line)
        watching = queries.tasks(Filters(states=(TaskState.WATCHING,)))
        if not watching:
            break
        if time.monotonic() >= next_table:
            bars = "  ".join(f"{t.ref} {_bar(t.progress)}" for t in watching)
            click.secho(f"  progress: {bars}", dim=True)
            next_table = time.monotonic() + 5
        time.sleep(0.25)
    daemon.terminate()
    daemon.wait(timeout=30)
    with log_path.open() as log_in:
        log_in.seek(offset)
        for line in log_in.read().splitlines():
            _narrate(line)


def _bar(progress: int | None, width: int = 10) -> str:
    filled = round((progress or 0) / 100 * width)
    return "#" * filled + "." * (width - filled) + f" {progress or 0:>3}%"
