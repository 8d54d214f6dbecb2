"""A simulated bulk operation's body, in Jira's `BulkOperationProgress` shape.

The lifecycle is a task's (`monitor.simulator.scripts.view_at`: ENQUEUED, RUNNING, the
outcome, a stall, expiry); only the body differs. Of the script's `issues`, the invalid ones
are counted apart; the others are processed as progress moves, the failing ones
(`TaskScript.failures`) and the succeeding ones each in proportion, so that at 100% every
issue is reported. Issue IDs of the succeeding ones are made up from 20001 up.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from monitor.simulator.scripts import TaskScript, TaskView

FIRST_ISSUE_ID = 20001


def bulk_json(script: TaskScript, view: TaskView, account_id: str) -> dict[str, object]:
    """The bulk operation at one instant, keys in the order of Atlassian's example."""
    reasons: dict[str, list[str]] = {}
    for issue, reason in script.failures:
        reasons.setdefault(issue, []).append(reason)
    succeeding = script.issues - script.invalid_issues - len(reasons)
    done = view.progress / 100

    def share(count: int) -> int:
        return math.floor(count * done + 1e-9)

    failed = dict(list(reasons.items())[: share(len(reasons))])
    body: dict[str, object] = {
        "taskId": script.task_id,
        "status": view.status,
        "progressPercent": view.progress,
        "submittedBy": {"accountId": account_id},
        "created": _moment(view.submitted, script.iso_times),
    }
    if view.started is not None:
        body["started"] = _moment(view.started, script.iso_times)
    body |= {
        "updated": _moment(view.last_update, script.iso_times),
        "totalIssueCount": script.issues,
        "processedAccessibleIssues": [FIRST_ISSUE_ID + n for n in range(share(succeeding))],
        "failedAccessibleIssues": failed,
        "invalidOrInaccessibleIssueCount": script.invalid_issues,
    }
    return body


def _moment(seconds: float, iso: bool) -> object:
    if iso:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return round(seconds * 1000)
