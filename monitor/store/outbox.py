"""The notifications outbox (`notifications` table): written with the events, then delivered.

`enqueue` adds rows inside the caller's transaction (the poll's or the cancel's own, so an
event and its notifications commit together). `Outbox` is the delivery side: each channel's
sender takes its oldest due message, claims new rows into a batch before the first attempt
(a compare-and-set on `batch IS NULL`), and records each attempt. A batch once claimed is
always re-sent whole under the same key: after a crash between sending and recording, the
receiver gets the same message with the same idempotency key, never a different one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from monitor.database import transaction
from monitor.schema import NOTIFICATIONS
from monitor.store.queries import Queries

_N = NOTIFICATIONS.c
PENDING, SENT, FAILED = "pending", "sent", "failed"  # monitor.notify.events.DeliveryState


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox rows in the caller's transaction."""
    conn.execute(insert(NOTIFICATIONS), list(rows))


@dataclass(frozen=True, slots=True)
class Pending:
    """One row of the outbox, as a sender reads it."""

    id: int
    key: str
    event_id: str
    event: str
    task_id: str | None
    payload: str
    attempts: int
    batch: str | None
    created_at: datetime


_COLUMNS = (
    _N.id,
    _N.key,
    _N.event_id,
    _N.event,
    _N.task_id,
    _N.payload,
    _N.attempts,
    _N.batch,
    _N.created_at,
)


class _Taken(Exception):
    """Another sender claimed some of the rows first."""


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows in a transaction of their own (site-wide events)."""
        if rows:
            with transaction(self.engine, write=True) as conn:
                enqueue(conn, rows)

    def claimed_due(self, channel: str, now: datetime) -> list[Pending]:
        """The oldest claimed batch of `channel` that is still pending and due; [] if none."""
        oldest = (
            select(_N.batch)
            .where(_N.channel == channel, _N.state == PENDING, _N.batch.is_not(None))
            .order_by(_N.id)
            .limit(1)
        )
        with transaction(self.engine) as conn:
            batch = conn.scalar(oldest)
            if batch is None:
                return []
            rows = conn.execute(
                select(*_COLUMNS, _N.next_attempt_at)
                .where(_N.batch == batch, _N.state == PENDING)
                .order_by(_N.id)
            ).all()
        if not rows or rows[0].next_attempt_at > now:
            return []
        return [Pending(*row[:-1]) for row in rows]

    def has_claimed(self, channel: str) -> bool:
        stmt = select(_N.id).where(
            _N.channel == channel, _N.state == PENDING, _N.batch.is_not(None)
        )
        with transaction(self.engine) as conn:
            return conn.scalar(stmt.limit(1)) is not None

    def unclaimed_due(self, channel: str, now: datetime, limit: int) -> list[Pending]:
        stmt = (
            select(*_COLUMNS)
            .where(
                _N.channel == channel,
                _N.state == PENDING,
                _N.batch.is_(None),
                _N.next_attempt_at <= now,
            )
            .order_by(_N.id)
            .limit(limit)
        )
        with transaction(self.engine) as conn:
            return [Pending(*row) for row in conn.execute(stmt)]

    def claim(self, ids: Sequence[int], batch: str) -> bool:
        """Put the unclaimed rows `ids` in `batch`; False (nothing changed) if any was taken."""
        try:
            with transaction(self.engine, write=True) as conn:
                result = conn.execute(
                    update(NOTIFICATIONS)
                    .where(_N.id.in_(list(ids)), _N.batch.is_(None), _N.state == PENDING)
                    .values(batch=batch)
                )
                if result.rowcount != len(ids):
                    raise _Taken  # rolls the partial claim back
        except _Taken:
            return False
        return True

    def record_attempt(
        self,
        batch: str,
        now: datetime,
        *,
        error: str | None,
        next_at: datetime | None,
    ) -> None:
        """Record one attempt at `batch`: delivered (`error` None), to retry at `next_at`,
        or given up (`next_at` None)."""
        if error is None:
            values: dict[str, Any] = {"state": SENT, "delivered_at": now, "last_error": None}
        elif next_at is None:
            values = {"state": FAILED, "last_error": error}
        else:
            values = {"next_attempt_at": next_at, "last_error": error}
        with transaction(self.engine, write=True) as conn:
            conn.execute(
                update(NOTIFICATIONS)
                .where(_N.batch == batch, _N.state == PENDING)
                .values({**values, "attempts": _N.attempts + 1})
            )

    def next_due_at(self, channel: str) -> datetime | None:
        """When `channel`'s next pending row falls due (None: nothing pending)."""
        stmt = select(func.min(_N.next_attempt_at)).where(
            _N.channel == channel, _N.state == PENDING
        )
        with transaction(self.engine) as conn:
            at: datetime | None = conn.scalar(stmt)
        return at

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per channel and state: `{channel: {"pending": n, "sent": n, "failed": n}}`."""
        stmt = select(_N.channel, _N.state, func.count().label("n")).group_by(_N.channel, _N.state)
        counts: dict[str, dict[str, int]] = {}
        with transaction(self.engine) as conn:
            for row in conn.execute(stmt):
                counts.setdefault(row.channel, {})[row.state] = row.n
        return counts

    def totals(self) -> dict[str, int]:
        """Deliveries waiting (or retrying) and given up, over every channel."""
        return Queries(self.engine).notification_totals()

    def last_errors(self) -> dict[str, str]:
        """Each channel's most recent delivery error among rows not delivered."""
        stmt = (
            select(_N.channel, _N.last_error)
            .where(_N.state != SENT, _N.last_error.is_not(None))
            .order_by(_N.id)
        )
        with transaction(self.engine) as conn:
            return {row.channel: row.last_error for row in conn.execute(stmt)}
