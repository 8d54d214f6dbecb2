"""Retention: snapshots older than `retention.snapshots` are pruned, in batches.

The daemon calls `apply_retention` once a day (and at start); `jtm prune` calls it on demand.
Each task keeps its newest snapshot, however old, so its latest state stays in the history.
A stopping daemon cuts a long prune short between batches; the next start carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from structlog.typing import FilteringBoundLogger

from monitor.store import Store

PRUNE_BATCH = 1000
"""Rows deleted per write transaction: short enough that the daemon's polls slip in between."""

RETENTION_EVERY_S = 86400.0


def cutoff(now: datetime, keep_s: float) -> datetime:
    """Snapshots observed before this are pruned."""
    return now - timedelta(seconds=keep_s)


def apply_retention(
    store: Store,
    keep_s: float,
    now: datetime,
    *,
    batch: int = PRUNE_BATCH,
    log: FilteringBoundLogger | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Prune the snapshots observed more than `keep_s` before `now`; returns how many.

    Stops between batches once `keep_going` says no: `complete` is then false in the log line
    and the count is what went so far.
    """
    older_than = cutoff(now, keep_s)
    stopped = False

    def go_on() -> bool:
        nonlocal stopped
        stopped = not keep_going()
        return not stopped

    pruned = store.prune_snapshots(older_than, batch, keep_going=go_on)
    if log is not None:
        log.info(
            "retention.pruned",
            snapshots=pruned,
            older_than=older_than.isoformat(),
            complete=not stopped,
        )
    return pruned
