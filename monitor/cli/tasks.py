"""Commands about registered tasks: add, remove, list, show, history."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click

from monitor.cli.context import AppContext, pass_app
from monitor.cli.output import (
    SNAPSHOT_FIELDS,
    TASK_HEADERS,
    emit_csv,
    emit_json,
    emit_table,
    iso,
    progress_text,
    snapshot_json,
    task_json,
    task_row,
)
from monitor.cli.params import DURATION
from monitor.errors import UsageError
from monitor.states import TaskState, TimeoutAction
from monitor.taskref import parse_task_id


def _read_ids(refs: tuple[str, ...]) -> list[str]:
    """Task IDs from arguments; `-` reads more from stdin (whitespace separated, # comments)."""
    ids: list[str] = []
    for ref in refs:
        if ref == "-":
            for line in sys.stdin:
                ids.extend(parse_task_id(word) for word in line.split("#", 1)[0].split())
        else:
            ids.append(parse_task_id(ref))
    if not ids:
        raise UsageError("no task IDs given")
    return ids


@click.command()
@click.argument("refs", metavar="ID...", nargs=-1, required=True)
@click.option("--total", type=DURATION, help="Limit from Jira's submitted time to the end.")
@click.option("--queued", type=DURATION, help="Limit on time spent ENQUEUED.")
@click.option("--run", "run_", type=DURATION, help="Limit on run time from Jira's started time.")
@click.option("--stall", type=DURATION, help="Limit on time with no progress while running.")
@click.option("--action", type=click.Choice([a.value for a in TimeoutAction]), help="On timeout.")
@click.option("--label", help="A note to recognise the task by.")
@pass_app
def add(
    app: AppContext,
    refs: tuple[str, ...],
    total: float | None,
    queued: float | None,
    run_: float | None,
    stall: float | None,
    action: str | None,
    label: str | None,
) -> None:
    """Register task IDs (or task URLs; `-` reads them from stdin).

    Re-adding an ID updates its options and never duplicates it. Per-task limits override
    the [timeouts] of the config.

    \b
    Example:
      jtm add 10042 https://example.atlassian.net/rest/api/3/task/10043 --run 2h --label reindex
      cat ids.txt | jtm add - --stall 15m
    """
    from monitor.store import Registration

    ids = _read_ids(refs)
    options = Registration(label, total, queued, run_, stall, action)
    results = app.store().register(ids, options, datetime.now(UTC))
    by_outcome: dict[str, list[str]] = {}
    for result in results:
        by_outcome.setdefault(result.outcome, []).append(result.task_id)
    for outcome, task_ids in by_outcome.items():
        shown = " ".join(task_ids) if len(task_ids) <= 20 else f"{len(task_ids)} tasks"
        click.echo(f"{outcome}: {shown}")


@click.command()
@click.argument("refs", metavar="ID...", nargs=-1, required=True)
@pass_app
def remove(app: AppContext, refs: tuple[str, ...]) -> None:
    """Stop watching tasks; their history is kept.

    \b
    Example:
      jtm remove 10042
    """
    ids = _read_ids(refs)
    removed = app.store().remove(ids, datetime.now(UTC))
    already = [t for t in dict.fromkeys(ids) if t not in removed]
    if removed:
        click.echo(f"removed: {' '.join(removed)}")
    if already:
        click.echo(f"already removed: {' '.join(already)}")


@click.command(name="list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in TaskState]),
    help="Only tasks in this state (repeatable). Default: watching.",
)
@click.option("--all", "all_", is_flag=True, help="Tasks in every state.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def list_(app: AppContext, states: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Watched tasks with their last status, progress and age.

    \b
    Example:
      jtm list --state finished --state gone
      jtm list --all --json | jq '.[] | select(.status == "FAILED")'
    """
    selected = None if all_ else (states or (TaskState.WATCHING,))
    tasks = app.store().tasks(selected)
    if as_json:
        emit_json([task_json(task) for task in tasks])
        return
    now = datetime.now(UTC)
    emit_table(TASK_HEADERS, [task_row(task, now) for task in tasks])


@click.command()
@click.argument("ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@pass_app
def show(app: AppContext, ref: str, as_json: bool) -> None:
    """One task: its registration, latest status, and timeline of events.

    \b
    Example:
      jtm show 10042
    """
    store = app.store()
    task = store.get(parse_task_id(ref))
    events = store.events(task.task_id)
    data = task_json(task, events)
    if as_json:
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key in ("events", "jira", "limits", "result") or value is None:
            continue
        shown = progress_text(value) if key == "progress" else value
        click.echo(f"{key.ljust(width)}  {shown}")
    limits = {k: v for k, v in data["limits"].items() if v is not None}
    if limits:
        click.echo(f"{'limits'.ljust(width)}  {limits}")
    click.secho("\ntimeline", bold=True)
    emit_table(
        ("AT", "EVENT", "DETAIL"),
        [[iso(e.at) or "", e.kind, e.detail or ""] for e in events],
    )


@click.command()
@click.argument("ref", metavar="[ID]", required=False)
@click.option("--since", type=DURATION, help="Only snapshots newer than this (e.g. 2h, 7d).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="At most this many rows (0: no limit).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row on stdout.")
@pass_app
def history(
    app: AppContext,
    ref: str | None,
    since: float | None,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Status and progress snapshots, newest first (one row per change).

    \b
    Example:
      jtm history 10042 --since 1d
      jtm history --csv --limit 0 > history.csv
    """
    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    store = app.store()
    task_id = None
    if ref is not None:
        task_id = store.get(parse_task_id(ref)).task_id
    now = datetime.now(UTC)
    after = now - timedelta(seconds=since) if since is not None else None
    rows = [snapshot_json(s) for s in store.snapshots(task_id, after, limit or None)]
    if as_json:
        emit_json(rows)
    elif as_csv:
        emit_csv(SNAPSHOT_FIELDS, rows)
    else:
        emit_table(
            ("OBSERVED", "TASK", "STATUS", "PROGRESS", "MESSAGE", "LAST SEEN"),
            [
                [
                    r["observed_at"],
                    r["task_id"],
                    r["status"],
                    progress_text(r["progress"]),
                    r["message"] or "",
                    r["last_seen_at"],
                ]
                for r in rows
            ],
        )


COMMANDS = (add, remove, list_, show, history)
