"""Shapes and renderings of what the commands print: the contract's JSON, CSV, and tables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from monitor.durations import format_duration

if TYPE_CHECKING:
    from monitor.models import Event, Snapshot, Task


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the millisecond; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _result(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # stored truncated: give it back as text
        return text


def task_json(task: Task, events: Sequence[Event] | None = None) -> dict[str, Any]:
    """The contract's task object (`jtm show --json`; without `events` for `jtm list --json`)."""
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "state": task.state,
        "status": task.status,
        "progress": task.progress,
        "message": task.message,
        "description": task.description,
        "label": task.label,
        "registered_at": iso(task.registered_at),
        "first_seen_at": iso(task.first_seen_at),
        "last_seen_at": iso(task.last_seen_at),
        "finished_at": iso(task.finished_at),
        "removed_at": iso(task.removed_at),
        "cancel_requested_at": iso(task.cancel_requested_at),
        "cancel_requested_by": task.cancel_requested_by,
        "cancel_reason": task.cancel_reason,
        "cancel_attempts": task.cancel_attempts,
        "cancel_outcome": task.cancel_outcome,
        "timed_out": task.timed_out,
        "timeouts_fired": task.timeouts_fired.split(",") if task.timeouts_fired else [],
        "elapsed_runtime_ms": task.elapsed_runtime_ms,
        "jira": {
            "submitted": iso(task.jira_submitted_at),
            "started": iso(task.jira_started_at),
            "finished": iso(task.jira_finished_at),
            "last_update": iso(task.jira_last_update_at),
        },
        "limits": {
            "total_s": task.limit_total_s,
            "queued_s": task.limit_queued_s,
            "run_s": task.limit_run_s,
            "stall_s": task.limit_stall_s,
            "action": task.timeout_action,
        },
        "polls": task.polls,
        "next_poll_at": iso(task.next_poll_at),
        "last_error": task.last_error,
        "last_error_at": iso(task.last_error_at),
        "result": _result(task.result),
    }
    if events is not None:
        data["events"] = [
            {"at": iso(event.at), "kind": event.kind, "detail": event.detail} for event in events
        ]
    return data


SNAPSHOT_FIELDS = (
    "task_id",
    "observed_at",
    "status",
    "progress",
    "message",
    "elapsed_runtime_ms",
    "last_seen_at",
)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The contract's history row."""
    return {
        "task_id": snapshot.task_id,
        "observed_at": iso(snapshot.observed_at),
        "status": snapshot.status,
        "progress": snapshot.progress,
        "message": snapshot.message,
        "elapsed_runtime_ms": snapshot.elapsed_runtime_ms,
        "last_seen_at": iso(snapshot.last_seen_at),
    }


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def emit_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    click.echo(buffer.getvalue(), nl=False)


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, two spaces apart; the header bold on a terminal."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    click.secho(line(headers), bold=True)
    for row in rows:
        click.echo(line(row))


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "-"
    return format_duration(max(round((now - since).total_seconds()), 0))


def progress_text(progress: int | None) -> str:
    return "-" if progress is None else f"{progress}%"


def task_row(task: Task, now: datetime) -> list[str]:
    return [
        task.task_id,
        task.state,
        task.status or "-",
        progress_text(task.progress),
        age(task.jira_submitted_at or task.registered_at, now),
        age(task.last_seen_at, now) if task.last_seen_at else "never",
        task.timed_out or "",
        task.label or "",
    ]


TASK_HEADERS = ("TASK", "STATE", "STATUS", "PROGRESS", "AGE", "SEEN", "TIMEOUT", "LABEL")
