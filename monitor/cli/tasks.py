"""Commands about registered tasks: add, remove, list, show, history."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from monitor.bulkcounts import issue_counts_text
from monitor.cli.context import AppContext, pass_app
from monitor.cli.failures import emit_failures
from monitor.cli.options import complete_task_id, filter_options, output_format
from monitor.cli.output import (
    SNAPSHOT_FIELDS,
    TASK_CSV_FIELDS,
    TASK_HEADERS,
    Cell,
    emit_csv,
    emit_json,
    emit_json_list,
    emit_table,
    iso,
    progress_text,
    snapshot_json,
    status_cell,
    task_csv_row,
    task_json,
    task_row,
)
from monitor.cli.params import DURATION, LABEL
from monitor.errors import UsageError
from monitor.states import EventKind, TaskState, TimeoutAction
from monitor.taskref import TaskRef
from monitor.terminal import visible

if TYPE_CHECKING:
    from monitor.store.queries import Filters


def _read_refs(app: AppContext, refs: tuple[str, ...], *, bulk: bool = False) -> list[TaskRef]:
    """Tasks from arguments; `-` reads more from stdin (whitespace separated, # comments).
    With `bulk`, a bare ID names a bulk operation."""
    found: list[TaskRef] = []
    for ref in refs:
        if ref == "-":
            for line in sys.stdin:
                words = line.split("#", 1)[0].split()
                found.extend(app.task_ref(word, bulk=bulk) for word in words)
        else:
            found.append(app.task_ref(ref, bulk=bulk))
    if not found:
        raise UsageError("no task IDs given")
    return found


def _shown_refs(refs: list[TaskRef]) -> str:
    return " ".join(map(str, refs)) if len(refs) <= 20 else f"{len(refs)} tasks"


@click.command()
@click.argument("refs", metavar="ID...", nargs=-1, required=True)
@click.option("--total", type=DURATION, help="Limit from Jira's submitted time to the end.")
@click.option("--queued", type=DURATION, help="Limit on time spent ENQUEUED.")
@click.option("--run", "run_", type=DURATION, help="Limit on run time from Jira's started time.")
@click.option("--stall", type=DURATION, help="Limit on time with no progress while running.")
@click.option("--action", type=click.Choice([a.value for a in TimeoutAction]), help="On timeout.")
@click.option("--label", type=LABEL, help="A note to recognise the task by.")
@click.option("--bulk", is_flag=True, help="Bare IDs are bulk operations (/bulk/queue/ID).")
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
    bulk: bool,
) -> None:
    """Register task IDs (or task URLs; `-` reads them from stdin).

    A bare ID is a task (/rest/api/3/task/ID); `bulk:ID`, --bulk or a bulk-queue URL name a
    bulk operation (/rest/api/3/bulk/queue/ID). Re-adding an ID updates its options and
    never duplicates it. Per-task limits override the [timeouts] of the config. A bulk
    operation cannot be cancelled: its --action can only be warn.

    \b
    Example:
      jtm add 10042 https://example.atlassian.net/rest/api/3/task/10043 --run 2h --label reindex
      jtm add --bulk 10000 --stall 15m --label 'move to OPS'
      cat ids.txt | jtm add - --stall 15m
    """
    from monitor.store import Registration

    found = _read_refs(app, refs, bulk=bulk)
    if action == TimeoutAction.CANCEL and (bulk_refs := [r for r in found if r.kind == "bulk"]):
        raise UsageError(
            f"--action cancel cannot apply to {bulk_refs[0]}: Jira has no cancel for bulk "
            "operations (use --action warn)"
        )
    options = Registration(label, total, queued, run_, stall, action)
    results = app.store().register(found, options, datetime.now(UTC))
    by_outcome: dict[str, list[TaskRef]] = {}
    for result in results:
        by_outcome.setdefault(result.outcome, []).append(result.ref)
    for outcome, done in by_outcome.items():
        click.echo(f"{outcome}: {_shown_refs(done)}")


@click.command()
@click.argument("refs", metavar="ID...", nargs=-1, required=True, shell_complete=complete_task_id)
@pass_app
def remove(app: AppContext, refs: tuple[str, ...]) -> None:
    """Stop watching tasks; their history is kept.

    \b
    Example:
      jtm remove 10042
    """
    found = _read_refs(app, refs)
    removed = app.store().remove(found, datetime.now(UTC))
    already = [t for t in dict.fromkeys(found) if t not in removed]
    if removed:
        click.echo(f"removed: {' '.join(map(str, removed))}")
    if already:
        click.echo(f"already removed: {' '.join(map(str, already))}")


@click.command(name="list")
@click.option("--all", "all_", is_flag=True, help="Tasks in every state, not only watched ones.")
@filter_options(what="tasks", time_of="registered")
@output_format(csv=True)
@pass_app
def list_(app: AppContext, all_: bool, filters: Filters, fmt: str) -> None:
    """Watched tasks with their last status, progress and age, newest first.

    Without --state, --status or --all, only the watched tasks (state "watching") are listed.
    Filters combine: every one given must hold.

    \b
    Example:
      jtm list --state finished --status FAILED --since 7d
      jtm list --all --label 'field*' --csv > tasks.csv
      jtm list --all --json | jq '.[] | select(.status == "FAILED")'
    """
    if not (all_ or filters.states or filters.statuses):
        filters = replace(filters, states=(TaskState.WATCHING,))
    tasks = app.queries().tasks(filters)
    if fmt == "json":
        emit_json_list(task_json(task) for task in tasks)
    elif fmt == "csv":
        emit_csv(TASK_CSV_FIELDS, (task_csv_row(task_json(task)) for task in tasks))
    else:
        now = datetime.now(UTC)
        emit_table(TASK_HEADERS, [task_row(task, now) for task in tasks])


@click.command()
@click.argument("ref", metavar="ID", shell_complete=complete_task_id)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in EventKind]),
    help="Only timeline events of this kind (repeatable).",
)
@click.option(
    "--failures", is_flag=True, help="A bulk operation's failed issues with their reasons."
)
@filter_options(what="timeline events", by_task=False)
@output_format(csv=True)
@pass_app
def show(
    app: AppContext,
    ref: str,
    kinds: tuple[str, ...],
    failures: bool,
    filters: Filters,
    fmt: str,
) -> None:
    """One task: its registration, latest status, and timeline of events.

    The timeline is in time order; --limit keeps its newest events, --since and --until
    bound it. For a bulk operation (`bulk:ID`), --failures lists its failed issues with
    Jira's reasons instead (one row per reason with --csv).

    \b
    Example:
      jtm show 10042
      jtm show 10042 --kind status_changed --kind finished --json
      jtm show bulk:10000 --failures --csv > failed-issues.csv
    """
    queries = app.queries()
    task = queries.task(app.task_ref(ref))
    if failures:
        emit_failures(task, fmt)
        return
    if fmt == "csv":
        raise UsageError("--csv goes with --failures (the task itself: use --json)")
    events = queries.events(task.ref, filters, kinds)
    data = task_json(task, events)
    if fmt == "json":
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key in ("events", "jira", "limits", "result") or value is None:
            continue
        shown = progress_text(value) if key == "progress" else value
        click.echo(f"{key.ljust(width)}  {visible(str(shown))}")
    limits = {k: v for k, v in data["limits"].items() if v is not None}
    if limits:
        click.echo(f"{'limits'.ljust(width)}  {visible(str(limits))}")
    click.secho("\ntimeline", bold=True)
    emit_table(
        ("AT", "EVENT", "DETAIL"), [[iso(e.at) or "", e.kind, e.detail or ""] for e in events]
    )


@click.command()
@click.argument("ref", metavar="[ID]", required=False, shell_complete=complete_task_id)
@filter_options(what="snapshots", limit=100, time_of="observed")
@output_format(csv=True)
@pass_app
def history(app: AppContext, ref: str | None, filters: Filters, fmt: str) -> None:
    """Status and progress snapshots, newest first (one row per change).

    --status is the snapshot's Jira status; --state and --label select by task.

    \b
    Example:
      jtm history 10042 --since 1d
      jtm history --status FAILED --label reindex --json
      jtm history --since 2026-03-01 --until 2026-03-02 --limit 0 --csv > march-1.csv
    """
    if ref is not None:
        filters = replace(filters, refs=(app.queries().task(app.task_ref(ref)).ref,))
    with app.queries().snapshots(filters) as snapshots:
        rows = (snapshot_json(s) for s in snapshots)
        if fmt == "json":
            emit_json_list(rows)
        elif fmt == "csv":
            emit_csv(SNAPSHOT_FIELDS, rows)
        else:
            emit_table(HISTORY_HEADERS, [_history_row(r) for r in rows])


HISTORY_HEADERS = ("OBSERVED", "TASK", "STATUS", "PROGRESS", "MESSAGE", "LAST SEEN")


def _history_row(r: dict[str, Any]) -> list[str | Cell]:
    return [
        r["observed_at"],
        str(TaskRef(r["kind"], r["task_id"])),
        status_cell(r["status"]),
        progress_text(r["progress"]),
        r["message"] or issue_counts_text(r) or "",
        r["last_seen_at"],
    ]


COMMANDS = (add, remove, list_, show, history)
