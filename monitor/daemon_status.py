"""The daemon's status in one line: systemd's STATUS= text (`systemctl status`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.errors import MonitorError
from monitor.pollreport import TickReport
from monitor.statefile import StoreTrouble, trouble_text
from monitor.states import TaskState
from monitor.store import Store


def live_counts(store: Store) -> dict[str, int] | None:
    """Tasks per state for STATUS=, which is advice: a busy database must not break a tick."""
    try:
        return store.count_by_state()
    except MonitorError:
        return None


def counts_text(counts: Mapping[str, int] | None) -> str:
    if counts is None:
        return "task counts unavailable (database busy)"
    return (
        f"watching {counts.get(TaskState.WATCHING, 0)}, "
        f"finished {counts.get(TaskState.FINISHED, 0)}, gone {counts.get(TaskState.GONE, 0)}"
    )


def status_line(
    counts: Mapping[str, int] | None,
    report: TickReport | None,
    at: datetime | None,
    trouble: StoreTrouble | None = None,
) -> str:
    """Live counts and the last tick; first of all, the database's trouble if it cannot be
    written."""
    text = counts_text(counts)
    if trouble is not None:
        text = f"{trouble_text(trouble)}; {text}"
    if at is None or report is None:
        return f"{text}; no tick yet"
    return f"{text}; last tick {at:%Y-%m-%d %H:%M:%S} UTC, polled {report.polled}/{report.due}"
