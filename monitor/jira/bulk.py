"""Parse a bulk operation's progress (`BulkOperationProgress`) into the same `TaskInfo`.

`GET /rest/api/3/bulk/queue/{taskId}` answers with its own shape; the monitor maps it onto a
task's so that one poll path serves both kinds:

- `taskId`: checked against the ID asked for, like a task's `id`;
- `status`: `status` (the same seven values); `progressPercent`: `progress`;
- `created`, `started`, `updated`: `submitted`, `started`, `last_update`;
- `totalIssueCount`, `processedAccessibleIssues` (counted), `failedAccessibleIssues` (counted),
  `invalidOrInaccessibleIssueCount`: `bulk` (`BulkCounts`);
- `failedAccessibleIssues` itself (issue ID to its list of reasons): `result`.

Timestamps are declared as date-time strings but shown as epoch milliseconds in Atlassian's
examples: both are accepted. There is no message, description or elapsed run time; the
finish time is the `updated` of a terminal answer. The rules of `monitor.jira.payload` hold:
an odd field is an anomaly, never a crash; only a body that is not a JSON object or has no
usable `status` raises `JiraBadResponse`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.jira.payload import (
    BulkCounts,
    TaskInfo,
    _instant,
    _integer,
    _load_object,
    _show,
    status_of,
)
from monitor.states import is_terminal

__all__ = ["parse_bulk"]


def parse_bulk(body: bytes, *, expected_id: str) -> TaskInfo:
    """Parse the body of `GET /bulk/queue/{id}`; see the module's docstring for the mapping."""
    data = _load_object(body)
    anomalies: list[str] = []

    status = status_of(data, anomalies)

    task_id = data.get("taskId")
    if "taskId" not in data:
        anomalies.append("taskId: missing")
    elif not isinstance(task_id, str | int) or isinstance(task_id, bool):
        anomalies.append(f"taskId: expected string, got {_show(task_id)}")
    elif str(task_id) != expected_id:
        anomalies.append(f"taskId: expected {_show(expected_id)}, got {_show(task_id)}")

    progress = _integer(data, "progressPercent", anomalies, required=True)
    if progress is not None and not 0 <= progress <= 100:
        anomalies.append(f"progressPercent: out of range, got {progress} (clamped)")
        progress = min(100, max(0, progress))

    submitter = data.get("submittedBy")
    if submitter is not None and not (
        isinstance(submitter, dict) and isinstance(submitter.get("accountId"), str)
    ):
        anomalies.append(f"submittedBy: expected an object with accountId, got {_show(submitter)}")

    failures = _failures(data, anomalies)
    submitted = _moment(data, "created", anomalies, required=True)
    started = _moment(data, "started", anomalies, required=False)
    updated = _moment(data, "updated", anomalies, required=True)
    counts = BulkCounts(
        total=_count(data, "totalIssueCount", anomalies),
        succeeded=_listed(data, "processedAccessibleIssues", anomalies),
        failed=None if failures is None else len(failures),
        invalid=_count(data, "invalidOrInaccessibleIssueCount", anomalies),
    )
    return TaskInfo(
        task_id=expected_id,
        status=status,
        progress=progress,
        message=None,
        description=None,
        result=failures,
        elapsed_runtime_ms=None,
        submitted=submitted,
        started=started,
        finished=updated if is_terminal(status) else None,
        last_update=updated,
        anomalies=tuple(anomalies),
        bulk=counts,
    )


def _moment(
    data: dict[str, object], key: str, anomalies: list[str], *, required: bool
) -> datetime | None:
    """Epoch milliseconds (number or numeric text), or an ISO 8601 date-time string."""
    value = data.get(key)
    if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            anomalies.append(f"{key}: expected a date-time, got {_show(value)}")
            return None
        if moment.tzinfo is None:
            anomalies.append(f"{key}: date-time without an offset, taken as UTC")
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    return _instant(data, key, anomalies, required=required)


def _count(data: dict[str, object], key: str, anomalies: list[str]) -> int | None:
    count = _integer(data, key, anomalies, required=False)
    if count is not None and count < 0:
        anomalies.append(f"{key}: negative, got {count}")
        return None
    return count


def _listed(data: dict[str, object], key: str, anomalies: list[str]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        return len(value)
    anomalies.append(f"{key}: expected a list, got {_show(value)}")
    return None


def _failures(data: dict[str, object], anomalies: list[str]) -> dict[str, list[str]] | None:
    """`failedAccessibleIssues` as issue ID to reasons (an odd reason list becomes text)."""
    value = data.get("failedAccessibleIssues")
    if value is None:
        return None
    if not isinstance(value, dict):
        anomalies.append(f"failedAccessibleIssues: expected an object, got {_show(value)}")
        return None
    failures: dict[str, list[str]] = {}
    for issue, reasons in value.items():
        if isinstance(reasons, list):
            failures[str(issue)] = [r if isinstance(r, str) else _show(r) for r in reasons]
        else:
            failures[str(issue)] = [reasons if isinstance(reasons, str) else _show(reasons)]
    return failures
