"""Shapes and renderings of what the commands print: the contract's JSON, CSV, and tables."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from monitor.bulkcounts import ISSUE_COUNTS, issue_counts, issue_counts_text
from monitor.durations import format_approx
from monitor.palette import STATE_COLOURS, STATUS_COLOURS
from monitor.states import ErrorKind, TaskKind
from monitor.terminal import visible

if TYPE_CHECKING:
    from sqlalchemy import Row

    from monitor.records import Task

    SnapshotRecord = Row[Any]
    EventRecord = Row[Any]


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


def task_json(task: Task, events: Sequence[EventRecord] | None = None) -> dict[str, Any]:
    """The contract's task object (`jtm show --json`; without `events` for `jtm list --json`).

    A bulk operation's also carries its per-issue counts (`ISSUE_COUNTS`)."""
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "kind": task.kind,
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
        "last_error_kind": task.last_error_kind if task.consecutive_errors else None,
        "result": _result(task.result),
    }
    if task.bulk:
        data |= issue_counts(task)
    if events is not None:
        data["events"] = [
            {"at": iso(event.at), "kind": event.kind, "detail": event.detail} for event in events
        ]
    return data


SNAPSHOT_FIELDS = (  # new columns go last: scripts may read CSV columns by position
    "task_id",
    "observed_at",
    "status",
    "progress",
    "message",
    "elapsed_runtime_ms",
    "last_seen_at",
    "kind",
    *ISSUE_COUNTS,
)


def snapshot_json(snapshot: SnapshotRecord) -> dict[str, Any]:
    """The contract's history row (a bulk operation's with its per-issue counts)."""
    data = {
        "task_id": snapshot.task_id,
        "kind": snapshot.task_kind,
        "observed_at": iso(snapshot.observed_at),
        "status": snapshot.status,
        "progress": snapshot.progress,
        "message": snapshot.message,
        "elapsed_runtime_ms": snapshot.elapsed_runtime_ms,
        "last_seen_at": iso(snapshot.last_seen_at),
    }
    if snapshot.task_kind == TaskKind.BULK:
        data |= issue_counts(snapshot)
    return data


TASK_CSV_FIELDS = (
    "task_id",
    "state",
    "status",
    "progress",
    "label",
    "message",
    "registered_at",
    "first_seen_at",
    "last_seen_at",
    "finished_at",
    "removed_at",
    "cancel_requested_at",
    "timed_out",
    "elapsed_runtime_ms",
    "jira_submitted",
    "jira_started",
    "jira_finished",
    "limit_total_s",
    "limit_queued_s",
    "limit_run_s",
    "limit_stall_s",
    "timeout_action",
    "polls",
    "next_poll_at",
    "last_error",
    "last_error_at",
    "last_error_kind",
    "kind",
    *ISSUE_COUNTS,
)
"""`jtm list --csv` columns, in order: the JSON's fields, with `jira` and `limits` flattened
(new columns go last: scripts may read CSV columns by position)."""


def task_csv_row(data: dict[str, Any]) -> dict[str, Any]:
    """A `task_json` object as one flat CSV row (see TASK_CSV_FIELDS)."""
    flat = {k: v for k, v in data.items() if k not in ("jira", "limits", "events", "result")}
    flat |= {f"jira_{k}": v for k, v in data["jira"].items()}
    limits = data["limits"]
    flat |= {f"limit_{k}": v for k, v in limits.items() if k != "action"}
    flat["timeout_action"] = limits["action"]
    return flat


def _no_colour() -> bool:
    return bool(os.environ.get("NO_COLOR"))  # https://no-color.org; off a TTY, click strips it


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


_ENCODER = json.JSONEncoder(ensure_ascii=False)


def emit_json_list(items: Iterable[dict[str, Any]]) -> None:
    """A JSON array written as it is produced, one element per line (valid for any `jq`)."""
    out = sys.stdout
    encode = _ENCODER.encode  # one encoder for all: `json.dumps` with options makes one a call
    separator = "[\n"
    for item in items:
        out.write(separator)
        out.write(encode(item))
        separator = ",\n"
    out.write("[]\n" if separator == "[\n" else "\n]\n")
    out.flush()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: None is empty, and text that a spreadsheet would take for a
    formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
    `'`, as OWASP advises against CSV injection; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def emit_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """CSV with a header row, written as rows come (no row is kept in memory); every cell
    passes `csv_cell`."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    sys.stdout.flush()


class Cell(NamedTuple):
    """A table cell with a style, applied after alignment (colour only on a terminal)."""

    text: str
    fg: str | None = None
    dim: bool = False
    bold: bool = False


CellLike = str | Cell


def _text(cell: CellLike) -> str:
    return cell.text if isinstance(cell, Cell) else cell


def _styled(cell: CellLike, width: int) -> str:
    if not isinstance(cell, Cell):
        return cell.ljust(width)
    padded = cell.text.ljust(width)
    if cell.fg is None and not cell.dim and not cell.bold:
        return padded
    return click.style(padded, fg=cell.fg, dim=cell.dim or None, bold=cell.bold or None)


def _visible_cell(cell: CellLike) -> CellLike:
    if isinstance(cell, Cell):
        return cell._replace(text=visible(cell.text))
    return visible(cell)


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[CellLike]]) -> None:
    """Left-aligned columns, two spaces apart; header bold and cells coloured on a terminal.

    Control characters in cells are shown escaped (`monitor.terminal.visible`)."""
    rows = [[_visible_cell(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(_text(cell))) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines[0] = click.style(lines[0], bold=True)
    widths[-1] = 0  # the last column is not padded: no trailing blanks
    for row in rows:
        cells = [_styled(c, w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    click.echo("\n".join(lines), color=False if _no_colour() else None)


def age(since: datetime | None, now: datetime) -> str:
    """Time since `since` in its two largest units (2h5m, 4m10s, 45s); "-" for None."""
    if since is None:
        return "-"
    return format_approx(max((now - since).total_seconds(), 0))


def progress_text(progress: int | None) -> str:
    return "-" if progress is None else f"{progress}%"


def status_cell(status: str | None) -> Cell:
    return Cell(status or "-", fg=STATUS_COLOURS.get(status or ""))


def state_cell(state: str) -> Cell:
    return Cell(state, fg=STATE_COLOURS.get(state), dim=state == "removed")


def task_row(task: Task, now: datetime) -> list[CellLike]:
    counts = issue_counts_text(issue_counts(task)) if task.bulk else None
    return [
        str(task.ref),
        state_cell(task.state),
        # A task the account may not see has no status worth showing: say why instead.
        Cell(ErrorKind.FORBIDDEN, fg="red")
        if task.consecutive_errors and task.last_error_kind == ErrorKind.FORBIDDEN
        else status_cell(task.status),
        progress_text(task.progress) + (f" ({counts})" if counts else ""),
        age(task.jira_submitted_at or task.registered_at, now),
        age(task.last_seen_at, now) if task.last_seen_at else "never",
        Cell(task.timed_out, fg="red") if task.timed_out else "",
        task.label or "",
    ]


TASK_HEADERS = ("TASK", "STATE", "STATUS", "PROGRESS", "AGE", "SEEN", "TIMEOUT", "LABEL")
