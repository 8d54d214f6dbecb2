"""A bulk operation's per-issue counts, and how they read (no database here: the CLI's output
uses them at start-up)."""

from __future__ import annotations

from typing import Any

__all__ = ["ISSUE_COUNTS", "issue_counts", "issue_counts_text"]

ISSUE_COUNTS = ("total_issues", "succeeded_issues", "failed_issues", "invalid_issues")
"""A bulk operation's per-issue counts: columns of its task row and its snapshots, fields of
its JSON objects and CSV rows."""


def issue_counts(record: Any) -> dict[str, int | None]:
    """The per-issue counts of a bulk operation's task row or snapshot row."""
    return {name: getattr(record, name) for name in ISSUE_COUNTS}


def issue_counts_text(counts: dict[str, Any]) -> str | None:
    """What a bulk operation's counts say, as "3/10 issues done, 1 failed, 2 invalid"; None
    if Jira gave none (a task, or a bulk operation not yet counted)."""
    total, done = counts.get("total_issues"), counts.get("succeeded_issues")
    failed, invalid = counts.get("failed_issues"), counts.get("invalid_issues")
    if total is None and done is None and not failed and not invalid:
        return None
    parts = [f"{done or 0}/{'?' if total is None else total} issues done"]
    if failed:
        parts.append(f"{failed} failed")
    if invalid:
        parts.append(f"{invalid} invalid")
    return ", ".join(parts)
