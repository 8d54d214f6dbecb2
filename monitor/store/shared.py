"""The statements of several daemon instances sharing one PostgreSQL database.

Leases. An instance does not read its due tasks, it claims them: one statement picks the due
rows no other transaction holds (`FOR UPDATE SKIP LOCKED`; a row is a task's key, its kind
and ID) and moves their `next_poll_at` a
lease ahead, so no other instance finds them due until the lease ends. The poll's own write
then sets the real next poll. An instance that dies (SIGKILL, host lost) leaves its claimed
tasks due again once their lease ends, and another instance polls them then. One that was
paused past its lease (SIGSTOP, a network stall) finds, back, that its writes lose the
compare-and-set on the poll count (`monitor.store.polls`) if another instance polled the task
meanwhile: a stale answer never overwrites a newer one, and `task.finished`, `task.timeout`
and cancels stay exactly once.

Shared state (`shared_state`, one row per name): a site-wide rate-limit pause, which only
ever grows, and the daily retention turn, which one instance takes at a time.

Instances: the live rows of `heartbeats` (not stopped, beaten within the stale window).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from monitor.database import transaction
from monitor.records import TASK_COLUMNS, Task
from monitor.schema import HEARTBEATS, SHARED_STATE, TASKS
from monitor.states import TaskState
from monitor.taskref import TaskRef

SITE_PAUSE = "site_pause"
RETENTION = "retention"


class Leases:
    """The leases this instance holds: a task (its `TaskRef`, kind and ID) to the end of its
    lease (monotonic clock).

    An instance stopped past its leases (SIGSTOP, a stalled network) must not then send the
    requests it had queued: another instance has claimed those tasks since. The monotonic
    clock runs on while a process is stopped, so `held` says so when it wakes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: dict[TaskRef, float] = {}

    def hold(self, refs: list[TaskRef], until: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._ends = {k: v for k, v in self._ends.items() if v > now}
            self._ends.update(dict.fromkeys(refs, until))

    def held(self, ref: TaskRef) -> bool:
        """True unless this instance claimed `ref` and its lease has run out."""
        with self._lock:
            end = self._ends.get(ref)
        return end is None or time.monotonic() < end


@dataclass(frozen=True, slots=True)
class Claims:
    """How an instance claims due tasks: for `lease_s`, at most `batch` at a time (no more
    than it can poll well within the lease), noting them in `leases`."""

    lease_s: float
    batch: int
    leases: Leases = field(default_factory=Leases)

    def claim(self, engine: Engine, now: datetime, limit: int) -> list[Task]:
        """Claim up to `limit` (at most `batch`) due tasks, most overdue first.

        Each comes back as it was before the claim (its `next_poll_at` the time it fell
        due), so that its next poll is planned from that time, as on a single instance.
        """
        due = (
            select(TASKS.c.kind, TASKS.c.task_id, TASKS.c.next_poll_at)
            .where(TASKS.c.state == TaskState.WATCHING, TASKS.c.next_poll_at <= now)
            .order_by(TASKS.c.next_poll_at)
            .limit(min(limit, self.batch))
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        lease_end = now + timedelta(seconds=self.lease_s)
        stmt = (
            update(TASKS)
            .where(TASKS.c.kind == due.c.kind, TASKS.c.task_id == due.c.task_id)
            .values(next_poll_at=lease_end)
            .returning(*TASK_COLUMNS, due.c.next_poll_at.label("due_at"))
        )
        started = time.monotonic()
        with transaction(engine, write=True) as conn:
            rows = conn.execute(stmt).all()
        tasks = [Task._make(row[:-1])._replace(next_poll_at=row[-1]) for row in rows]
        self.leases.hold([task.ref for task in tasks], started + self.lease_s)
        return sorted(tasks, key=lambda t: (t.next_poll_at, t.kind, t.task_id))


def shared_until(engine: Engine, name: str) -> datetime | None:
    """When the shared state `name` ends (None: never set)."""
    with transaction(engine) as conn:
        until: datetime | None = conn.scalar(
            select(SHARED_STATE.c.until_at).where(SHARED_STATE.c.name == name)
        )
    return until


def extend_shared(engine: Engine, name: str, holder: str, until: datetime, now: datetime) -> None:
    """Make `name` last at least until `until` (a pause only ever grows)."""
    row = {"name": name, "holder": holder, "until_at": until, "updated_at": now}
    stmt = pg_insert(SHARED_STATE).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[SHARED_STATE.c.name],
        set_={"holder": holder, "until_at": until, "updated_at": now},
        where=SHARED_STATE.c.until_at < until,
    )
    with transaction(engine, write=True) as conn:
        conn.execute(stmt)


def take_turn(engine: Engine, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take the turn `name` until `until` if no one holds it at `now`; True if taken.

    Compare-and-set on the row's end: of instances that try at once, one gets it.
    """
    row: dict[str, Any] = {"name": name, "holder": holder, "until_at": until, "updated_at": now}
    with transaction(engine, write=True) as conn:
        taken = conn.execute(
            update(SHARED_STATE)
            .where(SHARED_STATE.c.name == name, SHARED_STATE.c.until_at <= now)
            .values(holder=holder, until_at=until, updated_at=now)
        ).rowcount
        if taken == 1:
            return True
        if conn.scalar(select(SHARED_STATE.c.name).where(SHARED_STATE.c.name == name)):
            return False
        if conn.dialect.name == "postgresql":
            stmt = pg_insert(SHARED_STATE).values(row).on_conflict_do_nothing()
            return conn.execute(stmt.returning(SHARED_STATE.c.name)).first() is not None
        conn.execute(insert(SHARED_STATE).values(row))  # SQLite: one daemon, no race
        return True


def live_instances(engine: Engine, now: datetime, stale_after_s: float) -> int:
    """How many daemon instances beat on this database within `stale_after_s` of `now`."""
    since = now - timedelta(seconds=stale_after_s)
    with transaction(engine) as conn:
        count = conn.scalar(
            select(func.count()).where(
                HEARTBEATS.c.stopped_at.is_(None), HEARTBEATS.c.heartbeat_at >= since
            )
        )
    return int(count or 0)
