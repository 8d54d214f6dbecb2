"""What a notification says: the events that trigger one, and the fields of its payload.

Every notification carries the same fields, those that do not apply being null:

    event_id, idempotency_key, event, at, kind ("task" or "bulk"), task_id, label, status, progress,
    message (Jira's last one), duration_s, url (the site's link to the task), reason,
    timeout_kind, action (what the monitor did), title and text (for a person)

`Notice` is one event to announce; `payload` builds its fields. Nothing here touches the
database or the network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.durations import format_duration


class NotifyEvent(StrEnum):
    """The events a channel can take (its `events` filter names them)."""

    TASK_FINISHED = "task.finished"
    TASK_TIMEOUT = "task.timeout"
    TASK_CANCEL_FAILED = "task.cancel_failed"
    TASK_CANCEL_UNCONFIRMED = "task.cancel_unconfirmed"
    TASK_GONE = "task.gone"
    SITE_PAUSED = "site.paused"
    STORE_WRITE_FAILED = "store.write_failed"
    TEST = "notify.test"


class DeliveryState(StrEnum):
    """A row of the outbox: waiting (or retrying), delivered, or given up."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to announce, before it is matched to channels."""

    event: NotifyEvent
    at: datetime
    fields: dict[str, Any]
    task_id: str | None = None
    kind: str | None = None  # the task's kind (`task` or `bulk`), with task_id
    status: str | None = None  # the final status of task.finished, for the statuses filter
    label: str | None = None
    event_id: str = ""

    def with_id(self) -> Notice:
        """A copy with a fresh event id (done once, when the event is decided)."""
        return replace(self, event_id=new_id())


def new_id() -> str:
    return uuid.uuid4().hex


def delivery_key(event_id: str, channel: str) -> str:
    """The idempotency key of `event_id`'s delivery to `channel`: stable, so that every
    attempt and every restart sends the same key."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"jtm:{event_id}:{channel}").hex


def payload(notice: Notice) -> dict[str, Any]:
    """The notification's fields (see the module docstring), with `title` and `text`."""
    fields: dict[str, Any] = {
        "event_id": notice.event_id,
        "event": str(notice.event),
        "at": notice.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "kind": notice.kind,
        "task_id": notice.task_id,
        "label": notice.label,
        "status": None,
        "progress": None,
        "message": None,
        "duration_s": None,
        "url": None,
        "reason": None,
        "timeout_kind": None,
        "action": None,
    }
    fields.update(notice.fields)
    fields["title"], fields["text"] = describe(fields)
    return fields


def describe(fields: dict[str, Any]) -> tuple[str, str]:
    """A short title and a few lines for a person: what happened, to which task, how long
    it ran, its last message, the link, and what the monitor did."""
    task = fields.get("task_id")
    name = f"task {task}" + (f" ({fields['label']})" if fields.get("label") else "")
    event = fields["event"]
    if event == NotifyEvent.TASK_FINISHED:
        what = f"{name} finished {fields.get('status')}"
    elif event == NotifyEvent.TASK_TIMEOUT:
        what = f"{name} passed its {fields.get('timeout_kind')} limit"
    elif event == NotifyEvent.TASK_CANCEL_FAILED:
        what = f"{name}: the cancel failed"
    elif event == NotifyEvent.TASK_CANCEL_UNCONFIRMED:
        what = f"{name}: the cancel is unconfirmed"
    elif event == NotifyEvent.TASK_GONE:
        what = f"{name} is gone ({fields.get('reason')})"
    elif event == NotifyEvent.SITE_PAUSED:
        what = f"requests to the site paused ({fields.get('reason')})"
    elif event == NotifyEvent.STORE_WRITE_FAILED:
        what = "the monitor cannot write its database"
    else:
        what = "test message from jira-task-monitor"
    lines = [what[0].upper() + what[1:]]
    if fields.get("duration_s") is not None:
        lines.append(f"Ran {format_duration(round(float(fields['duration_s'])))}.")
    if fields.get("progress") is not None:
        lines.append(f"Progress {fields['progress']}%.")
    if fields.get("message"):
        lines.append(f"Last message: {fields['message']}")
    if fields.get("reason") and event != NotifyEvent.TASK_GONE:
        lines.append(f"Reason: {fields['reason']}")
    if fields.get("action"):
        lines.append(f"Monitor: {fields['action']}")
    if fields.get("url"):
        lines.append(str(fields["url"]))
    return f"jtm: {what}", "\n".join(lines)
