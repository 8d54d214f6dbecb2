"""A poll's outcome: one frozen, typed value, decided by `monitor.observation`, written by the
store (`monitor.store.polls`, the only place that knows the columns it maps to) and reported
by `monitor.pollreport`.

What happened is said once, in `Outcome.happened`; everything else is the detail that goes
with it. Also here: the stored forms of Jira's free text (a cut text must compare as stored,
so the pure decision and the store share them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.deadlines import Overrun
from monitor.jira import TaskInfo
from monitor.records import Task
from monitor.states import CancelOutcome, ErrorKind, EventKind, GoneReason, TimeoutAction

EventSpec = tuple[EventKind, str | None]
"""A timeline event of a task: its kind and its detail."""

OutboxRow = dict[str, Any]
"""A row of the notifications outbox (`monitor.notify.router` builds them; the store inserts
them as they are, with the events they announce)."""

MAX_STORED_RESULT_CHARS = 65_536
MAX_STORED_TEXT_CHARS = 4_000
"""Jira's `message` and `description` are kept up to this many characters (with a marker
that they were cut): a message is stored with every snapshot, and a site that sends 300 KB
ones would otherwise fill a small disk in seconds."""


def stored_text(text: str | None, limit: int = MAX_STORED_TEXT_CHARS) -> str | None:
    """`text` as stored: at most `limit` characters, then a marker saying how much was cut."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}...(truncated: {len(text) - limit} more chars)"


def json_result(result: object) -> str | None:
    """Jira's `result` as stored: JSON text, cut (with the marker) past its limit; a cut one
    is no longer JSON, and is read back as text."""
    if result is None:
        return None
    return stored_text(json.dumps(result, ensure_ascii=False, default=str), MAX_STORED_RESULT_CHARS)


class Happened(StrEnum):
    """What one poll found, the one fact its counting and logging go by."""

    UNCHANGED = "unchanged"  # Jira answered; nothing changed
    CHANGED = "changed"  # Jira answered with something new, not terminal
    FINISHED = "finished"  # Jira answered with a terminal status
    FAILED = "failed"  # an error (the task is polled again, backed off)
    GONE = "gone"  # the last 404 of a task Jira no longer knows

    @property
    def answered(self) -> bool:
        return self not in (Happened.FAILED, Happened.GONE)


@dataclass(frozen=True, slots=True)
class Seen:
    """Jira's answer, with what the monitor makes of it."""

    info: TaskInfo
    message: str | None  # as stored (`stored_text`): compared in that form
    changed: bool  # a new snapshot; else the newest one's `last_seen_at` moves
    first: bool  # the first answer ever about this task
    status_changed: bool  # a status other than the stored one (the first one, too)
    interval_s: float  # the poll interval from here on (backed off while nothing changes)
    last_change_at: datetime | None  # a new mark of the last change, or None to keep it


@dataclass(frozen=True, slots=True)
class Failure:
    """A poll that got no usable answer."""

    error: Exception  # a JiraError, or what else broke while processing the task
    text: str
    transient: bool
    kind: ErrorKind
    errors: int  # consecutive failed polls, this one included
    not_found: int | None  # consecutive 404s, this one included; None for another error
    gone: GoneReason | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Limits this poll found newly passed (each kind is reported once per task)."""

    passed: tuple[Overrun, ...]
    fired: tuple[str, ...]  # every kind fired so far, in `TimeoutKind` order
    timed_out: str | None  # the first kind ever fired, if this poll is the first to fire one
    action: TimeoutAction


@dataclass(frozen=True, slots=True)
class CancelStep:
    """A cancel decision made by this poll (`decided`), or one it closes (`closed`)."""

    decided: str | None = None  # the reason of a decision taken now
    closed: CancelOutcome | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything one poll of `task` (as read) changes, polled at `at`.

    `follows` are earlier outcomes of the same task that changed nothing, held in memory
    while the database could not be written (`monitor.backlog`); they are written with this
    one, as one compare-and-set that counts them all.

    `notices` are the outbox rows of its events, one per channel that takes one (decided
    with it by `monitor.notify.router`, ids and keys included, so a write held and retried
    carries the same keys): written in the same transaction as the events.
    """

    task: Task
    at: datetime
    happened: Happened
    next_poll_at: datetime | None
    events: tuple[EventSpec, ...] = ()
    seen: Seen | None = None
    failure: Failure | None = None
    timeouts: Timeouts | None = None
    cancel: CancelStep | None = None
    follows: tuple[Outcome, ...] = ()
    notices: tuple[OutboxRow, ...] = ()

    @property
    def decides_cancel(self) -> bool:
        """True when this poll takes a cancel decision (written only if none was taken)."""
        return self.cancel is not None and self.cancel.decided is not None

    @property
    def plain(self) -> bool:
        """Moves only the task's schedule and counters: no snapshot, event or cancel."""
        changed = self.seen is not None and self.seen.changed
        return not changed and not self.events and self.cancel is None and not self.notices

    @property
    def base(self) -> Task:
        """The task as the database holds it: what the compare-and-set checks."""
        return self.follows[0].task if self.follows else self.task

    @property
    def polls(self) -> int:
        """The number of polls this outcome stands for."""
        return len(self.follows) + 1
