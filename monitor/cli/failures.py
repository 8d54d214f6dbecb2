"""`jtm show bulk:ID --failures`: a bulk operation's failed issues, with Jira's reasons.

Jira reports them as `failedAccessibleIssues` (issue ID to a list of reasons); the monitor
keeps the latest such report as the task's `result` (`monitor.jira.bulk`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from monitor.cli.output import emit_csv, emit_json, emit_table
from monitor.errors import UsageError

if TYPE_CHECKING:
    from monitor.records import Task

FAILURE_FIELDS = ("issue_id", "reason")


def failures_of(task: Task) -> dict[str, list[str]]:
    """The failed issues of a bulk operation as last seen, in Jira's order; UsageError for a
    task (only bulk operations fail per issue)."""
    if not task.bulk:
        raise UsageError(f"--failures is for bulk operations, and {task.ref} is a task")
    if task.result is None:
        return {}
    try:
        stored = json.loads(task.result)
    except ValueError:  # cut past its stored limit: what is left is not JSON
        return {"?": [f"the list of failures was too long to keep: {task.result[:200]}"]}
    if not isinstance(stored, dict):
        return {}
    return {
        str(k): [str(r) for r in v] if isinstance(v, list) else [str(v)] for k, v in stored.items()
    }


def _rows(failures: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    for issue, reasons in failures.items():
        for reason in reasons or [""]:
            yield {"issue_id": issue, "reason": reason}


def emit_failures(task: Task, fmt: str) -> None:
    """Print `task`'s failed issues: JSON (an object of issue ID to reasons), CSV (one row
    per reason), or a table."""
    failures = failures_of(task)
    if fmt == "json":
        emit_json({"task_id": task.task_id, "kind": task.kind, "failures": failures})
    elif fmt == "csv":
        emit_csv(FAILURE_FIELDS, _rows(failures))
    else:
        emit_table(("ISSUE", "REASON"), [[r["issue_id"], r["reason"]] for r in _rows(failures)])
