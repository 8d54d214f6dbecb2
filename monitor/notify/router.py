"""Deciding to notify: which channels take an event, as outbox rows written with the event.

The poller and the canceller record an event (a task finished, a limit passed, a cancel
refused, ...) in one transaction; `Router` turns the same decision into outbox rows, one per
channel whose filter takes it, handed to that same write: a poll's ride on its typed
outcome (`attach` sets `Outcome.notices`, which `monitor.store.polls` inserts with the
poll's events), a cancel's go to `Store.update_cancel(notices=...)`. So an event is never
recorded without its notifications, nor notified without being recorded; the delivery
itself runs later, in the background (`monitor.notify.delivery`). The rows are built once,
at decision time: a write retried (held while the database could not be written) carries
the same keys.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.notify.channels import Channel
from monitor.notify.events import DeliveryState, Notice, NotifyEvent, delivery_key, payload
from monitor.outcome import Happened, OutboxRow, Outcome, Seen
from monitor.records import Task
from monitor.states import CancelSource, JiraStatus, TimeoutAction


class Router:
    """Matches events to channels. `site` and `api_version` make the task links."""

    def __init__(self, channels: Sequence[Channel], site: str | None, api_version: int = 3):
        self.channels = tuple(channels)
        self.site = site
        self.api_version = api_version

    def __bool__(self) -> bool:
        return bool(self.channels)

    def rows(self, notices: Sequence[Notice]) -> tuple[OutboxRow, ...]:
        """The outbox rows for `notices`: one per (notice, channel that takes it)."""
        rows: list[OutboxRow] = []
        for notice in notices:
            takers = [
                c
                for c in self.channels
                if c.wants(notice.event, notice.status, notice.label, notice.task_id is not None)
            ]
            if not takers:
                continue
            notice = notice.with_id()  # noqa: PLW2901
            body = json.dumps(payload(notice), ensure_ascii=False, default=str)
            rows.extend(
                {
                    "key": delivery_key(notice.event_id, channel.name),
                    "event_id": notice.event_id,
                    "channel": channel.name,
                    "event": str(notice.event),
                    "task_id": notice.task_id,
                    "task_kind": notice.kind,
                    "payload": body,
                    "created_at": notice.at,
                    "state": DeliveryState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": notice.at,
                }
                for channel in takers
            )
        return tuple(rows)

    def task_url(self, task: Task) -> str | None:
        if not self.site:
            return None
        return self.site + task.ref.api_path(self.api_version)

    def _task_fields(self, task: Task, **fields: Any) -> dict[str, Any]:
        return {
            "status": task.status,
            "progress": task.progress,
            "message": task.message,
            "url": self.task_url(task),
            **fields,
        }

    # -- the poller ------------------------------------------------------------------------

    def attach(self, outcome: Outcome) -> Outcome:
        """`outcome` with the outbox rows of the events it records (finished, timeouts,
        gone), in `Outcome.notices`: `monitor.store.polls` writes them with it."""
        if not self.channels:
            return outcome
        task, now = outcome.task, outcome.at
        notices: list[Notice] = []
        seen = outcome.seen
        if seen is not None:
            info = seen.info
            fields = self._task_fields(
                task, status=info.status, progress=info.progress, message=seen.message
            )
            notices.extend(self._timeout_notices(outcome, fields))
            if outcome.happened == Happened.FINISHED:
                notices.append(self._finished_notice(outcome, seen, fields))
        elif outcome.failure is not None and outcome.failure.gone is not None:
            detail = {"reason": str(outcome.failure.gone), "action": "stopped watching it"}
            fields = self._task_fields(task, **detail)
            notices.append(self._notice(NotifyEvent.TASK_GONE, task, now, fields))
        rows = self.rows(notices)
        return dataclasses.replace(outcome, notices=rows) if rows else outcome

    def _timeout_notices(self, outcome: Outcome, fields: dict[str, Any]) -> list[Notice]:
        """One `task.timeout` notice per limit this poll passed, saying what was done."""
        timeouts = outcome.timeouts
        notices: list[Notice] = []
        for overrun in timeouts.passed if timeouts is not None else ():
            if outcome.decides_cancel:
                action = "cancel requested"
            elif timeouts is not None and timeouts.action == TimeoutAction.CANCEL:
                action = "a cancel was already decided"
            else:
                action = "warned only (action = warn)"
            detail = {
                "timeout_kind": str(overrun.kind),
                "limit_s": overrun.limit_s,
                "observed_s": round(overrun.observed_s, 3),
                "action": action,
            }
            notice = self._notice(
                NotifyEvent.TASK_TIMEOUT, outcome.task, outcome.at, fields | detail
            )
            notices.append(notice)
        return notices

    def _finished_notice(self, outcome: Outcome, seen: Seen, fields: dict[str, Any]) -> Notice:
        """The `task.finished` notice: how long it took, and whether the monitor cancelled it."""
        task, now, info, timeouts = outcome.task, outcome.at, seen.info, outcome.timeouts
        start = info.submitted or task.registered_at
        end = info.finished or now
        by_monitor = (
            info.status == JiraStatus.CANCELLED
            and task.cancel_requested_by == CancelSource.MONITOR
            and task.cancel_sent_at is not None
        )
        timed_out = task.timed_out
        if timeouts is not None and timeouts.timed_out is not None:
            timed_out = timeouts.timed_out
        detail = {
            "duration_s": round(max((end - start).total_seconds(), 0.0), 3),
            "timed_out": timed_out,
            "cancelled_by_monitor": by_monitor,
            "action": (
                f"cancelled it (its {timed_out} limit passed)"
                if by_monitor
                else "recorded the outcome"
            ),
        }
        notice = self._notice(NotifyEvent.TASK_FINISHED, task, now, fields | detail)
        return dataclasses.replace(notice, status=info.status)

    # -- the canceller -----------------------------------------------------------------------

    def cancel_notices(
        self, event: NotifyEvent, task: Task, now: datetime, reason: str | None, action: str
    ) -> tuple[OutboxRow, ...]:
        """The rows of a cancel that was refused or stayed unconfirmed."""
        if not self.channels:
            return ()
        fields = self._task_fields(task, reason=reason, action=action)
        return self.rows([self._notice(event, task, now, fields)])

    # -- site-wide events --------------------------------------------------------------------

    def site_notices(
        self, event: NotifyEvent, now: datetime, fields: dict[str, Any]
    ) -> tuple[OutboxRow, ...]:
        return self.rows([Notice(event, now, fields)])

    @staticmethod
    def _notice(event: NotifyEvent, task: Task, now: datetime, fields: dict[str, Any]) -> Notice:
        return Notice(event, now, fields, task_id=task.task_id, kind=task.kind, label=task.label)
