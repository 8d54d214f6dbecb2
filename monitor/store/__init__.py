"""All writes of the monitor's data, and the daemon's claims. Nothing else writes SQL.

`monitor.store.polls` holds the poll path's prebuilt statements; `monitor.store.queries` is the
read side, which everything that only reads (`health`, `watch`, `checks`, the CLI) uses. The few
reads on `Store` (`get`, `count_by_state`, `next_poll_at`, `heartbeats`) hand over to it, for
the daemon, which holds a `Store`; `due_tasks` and `cancels_due` stay here, as the claims that
the daemon's compare-and-set writes then check.

Every method runs in one short transaction of its own (`database.transaction`), so no caller
can hold a lock across a Jira call. State changes made by the daemon are compare-and-set on
`(state = 'watching', polls = <the value read>)` and check the row count: a task removed by the
CLI meanwhile, or polled by another instance, is left alone instead of overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from monitor.database import transaction
from monitor.errors import NotFoundError
from monitor.outcome import EventSpec, OutboxRow, Outcome
from monitor.records import TASK_COLUMNS, Heartbeat, Task
from monitor.schema import EVENTS, HEARTBEATS, SNAPSHOTS, TASKS
from monitor.states import CancelOutcome, EventKind, TaskState
from monitor.store.outbox import enqueue
from monitor.store.polls import event_row, write_poll
from monitor.store.queries import Queries, by_ref, prunable
from monitor.taskref import TaskRef, as_ref

__all__ = ["EventSpec", "RegisterResult", "Registration", "Store"]


@dataclass(frozen=True, slots=True)
class Registration:
    """What `jtm add` sets on a task. None means "leave as is" when re-adding."""

    label: str | None = None
    total_s: float | None = None
    queued_s: float | None = None
    run_s: float | None = None
    stall_s: float | None = None
    action: str | None = None

    def columns(self, *, only_set: bool) -> dict[str, Any]:
        """The task columns this registration sets (`only_set`: leave out the None ones)."""
        values = {
            "label": self.label,
            "limit_total_s": self.total_s,
            "limit_queued_s": self.queued_s,
            "limit_run_s": self.run_s,
            "limit_stall_s": self.stall_s,
            "timeout_action": self.action,
        }
        return {k: v for k, v in values.items() if v is not None} if only_set else values


@dataclass(frozen=True, slots=True)
class RegisterResult:
    ref: TaskRef
    outcome: str  # "added", "updated" or "rewatched" (was removed)


def _load_tasks(conn: Connection, stmt: Select[Any]) -> list[Task]:
    return [Task.from_row(row) for row in conn.execute(stmt)]


def _states(conn: Connection, refs: Sequence[TaskRef]) -> dict[TaskRef, str]:
    """The state of each of `refs` that is registered."""
    states: dict[TaskRef, str] = {}
    for kind in {ref.kind for ref in refs}:
        ids = {ref.task_id for ref in refs if ref.kind == kind}
        stmt = select(TASKS.c.task_id, TASKS.c.state).where(
            TASKS.c.kind == kind, TASKS.c.task_id.in_(ids)
        )
        states |= {TaskRef(kind, row.task_id): row.state for row in conn.execute(stmt)}
    return states


def _registrations(refs: Sequence[TaskRef], existing: dict[TaskRef, str]) -> list[RegisterResult]:
    """What registering `refs` does to each (once per task, in order), given the states of
    those already registered: "added", "rewatched" (was removed) or "updated"."""
    results = []
    for ref in dict.fromkeys(refs):
        state = existing.get(ref)
        outcome = "added" if state is None else "rewatched" if state == TaskState.REMOVED else None
        results.append(RegisterResult(ref, outcome or "updated"))
    return results


def _new_task_row(options: Registration, now: datetime) -> dict[str, Any]:
    """The columns of a newly registered task, its identity aside: watched, due for a poll now."""
    return {
        **options.columns(only_set=False),
        "state": TaskState.WATCHING,
        "registered_at": now,
        "updated_at": now,
        "next_poll_at": now,
        "polls": 0,
        "consecutive_errors": 0,
        "not_found_count": 0,
    }


def _register_event(result: RegisterResult, now: datetime, detail: str | None) -> dict[str, Any]:
    if result.outcome == "added":
        return event_row(result.ref, now, EventKind.REGISTERED, None)
    return event_row(result.ref, now, EventKind.UPDATED, detail)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- registration (the CLI) ---------------------------------------------------------

    def register(
        self, tasks: Sequence[TaskRef | str], options: Registration, now: datetime
    ) -> list[RegisterResult]:
        """Register new tasks or update existing ones; one transaction for the whole batch.

        A plain string names a task of kind `task` (`monitor.taskref.as_ref`), here and in
        every method that takes a task.

        Each kind of change is one statement executed for the whole batch (`executemany`),
        not one per ID: `jtm add -` with 10,000 IDs stays well under a second or two.
        """
        option_values = options.columns(only_set=True)
        detail = ", ".join(f"{k}={v}" for k, v in sorted(option_values.items())) or None
        refs = [as_ref(ref) for ref in tasks]
        with transaction(self.engine, write=True) as conn:
            results = _registrations(refs, _states(conn, refs))
            keys = {
                outcome: [
                    {"key_kind": r.ref.kind, "key": r.ref.task_id}
                    for r in results
                    if r.outcome == outcome
                ]
                for outcome in ("updated", "rewatched")
            }
            values: dict[str, Any] = {**option_values, "updated_at": now}
            by_key = (TASKS.c.kind == bindparam("key_kind")) & (TASKS.c.task_id == bindparam("key"))
            if keys["updated"]:
                conn.execute(update(TASKS).where(by_key).values(values), keys["updated"])
            if keys["rewatched"]:
                again = {"state": TaskState.WATCHING, "removed_at": None, "next_poll_at": now}
                conn.execute(update(TASKS).where(by_key).values(values | again), keys["rewatched"])
            if added := [r.ref for r in results if r.outcome == "added"]:
                row = _new_task_row(options, now)
                rows = [{**row, "kind": ref.kind, "task_id": ref.task_id} for ref in added]
                conn.execute(insert(TASKS), rows)
            if results:
                conn.execute(insert(EVENTS), [_register_event(r, now, detail) for r in results])
        return results

    def remove(self, tasks: Sequence[TaskRef | str], now: datetime) -> list[TaskRef]:
        """Stop watching; history is kept. Unknown IDs raise NotFoundError before any change."""
        refs = [as_ref(ref) for ref in tasks]
        with transaction(self.engine, write=True) as conn:
            known = _states(conn, refs)
            missing = [str(ref) for ref in refs if ref not in known]
            if missing:
                raise NotFoundError(f"not registered: {', '.join(missing)}")
            removed = []
            for ref in dict.fromkeys(refs):
                result = conn.execute(
                    update(TASKS)
                    .where(*by_ref(ref), TASKS.c.state != TaskState.REMOVED)
                    .values(
                        state=TaskState.REMOVED, removed_at=now, updated_at=now, next_poll_at=None
                    )
                )
                if result.rowcount == 1:
                    conn.execute(insert(EVENTS).values(event_row(ref, now, EventKind.REMOVED)))
                    removed.append(ref)
        return removed

    # -- reads ---------------------------------------------------------------------------

    def get(self, ref: TaskRef | str) -> Task:
        """One registered task (`Queries.task`); NotFoundError if it is not registered."""
        return Queries(self.engine).task(ref)

    def count_by_state(self) -> dict[str, int]:
        """`Queries.count_by_state`."""
        return Queries(self.engine).count_by_state()

    # -- the daemon ------------------------------------------------------------------------

    def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        """Watched tasks whose next poll is due, most overdue first."""
        stmt = (
            select(*TASK_COLUMNS)
            .where(TASKS.c.state == TaskState.WATCHING, TASKS.c.next_poll_at <= now)
            .order_by(TASKS.c.next_poll_at)
            .limit(limit)
        )
        with transaction(self.engine) as conn:
            return _load_tasks(conn, stmt)

    def next_poll_at(self) -> datetime | None:
        """When the next poll is due (`Queries.next_poll`); None when nothing is watched."""
        first = Queries(self.engine).next_poll()
        return None if first is None else first[1]

    def record_polls(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Write polls' outcomes in one write transaction; for each, False if it lost the race.

        Each write is compare-and-set on its own task: one that lost (its task was removed, or
        polled by another instance, meanwhile) is left out, and the others still go in. One
        transaction for polls that came back together: at hundreds of polls a second, a
        `BEGIN IMMEDIATE` and a `COMMIT` per poll cost about as much as the writes.
        """
        with transaction(self.engine, write=True) as conn:
            return [write_poll(conn, outcome) for outcome in outcomes]

    # -- cancels ---------------------------------------------------------------------------

    def request_cancel(self, task: TaskRef | str, now: datetime, by: str, reason: str) -> bool:
        """Record a new cancel decision; False if one is already in progress (or the task is
        no longer watched). A decision that ended refused or unconfirmed may be replaced."""
        ref = as_ref(task)
        open_again = TASKS.c.cancel_outcome.in_([CancelOutcome.REFUSED, CancelOutcome.UNCONFIRMED])
        with transaction(self.engine, write=True) as conn:
            result = conn.execute(
                update(TASKS)
                .where(
                    *by_ref(ref),
                    TASKS.c.state == TaskState.WATCHING,
                    or_(TASKS.c.cancel_requested_at.is_(None), open_again),
                )
                .values(
                    cancel_requested_at=now,
                    cancel_requested_by=by,
                    cancel_reason=reason,
                    cancel_attempts=0,
                    cancel_sent_at=None,
                    cancel_next_at=now,
                    cancel_outcome=None,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            conn.execute(
                insert(EVENTS).values(event_row(ref, now, EventKind.CANCEL_REQUESTED, reason))
            )
        return True

    def cancels_due(self, now: datetime, limit: int) -> list[Task]:
        """Watched tasks with a cancel decision in progress whose next step is due."""
        stmt = (
            select(*TASK_COLUMNS)
            .where(
                TASKS.c.state == TaskState.WATCHING,
                TASKS.c.cancel_outcome.is_(None),
                TASKS.c.cancel_next_at <= now,
            )
            .order_by(TASKS.c.cancel_next_at)
            .limit(limit)
        )
        with transaction(self.engine) as conn:
            return _load_tasks(conn, stmt)

    def claim_cancel_attempt(self, task: Task, now: datetime, next_at: datetime) -> bool:
        """Take the next attempt of `task`'s cancel for this process, before sending it.

        Compare-and-set on the attempt count: of two ticks, restarts or processes that read
        the same state, exactly one gets to send.
        """
        with transaction(self.engine, write=True) as conn:
            result = conn.execute(
                update(TASKS)
                .where(
                    *by_ref(task.ref),
                    TASKS.c.state == TaskState.WATCHING,
                    TASKS.c.cancel_outcome.is_(None),
                    TASKS.c.cancel_attempts == task.cancel_attempts,
                )
                .values(
                    cancel_attempts=task.cancel_attempts + 1,
                    cancel_sent_at=now,
                    cancel_next_at=next_at,
                    updated_at=now,
                )
            )
            return result.rowcount == 1

    def update_cancel(
        self,
        task: TaskRef | str,
        now: datetime,
        values: dict[str, Any],
        event: EventSpec,
        notices: Sequence[OutboxRow] = (),
    ) -> bool:
        """Record what became of a cancel attempt, while its decision is still open;
        `notices` are its outbox rows (`monitor.notify`), written in the same transaction."""
        ref = as_ref(task)
        with transaction(self.engine, write=True) as conn:
            result = conn.execute(
                update(TASKS)
                .where(*by_ref(ref), TASKS.c.cancel_outcome.is_(None))
                .values(**values, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            conn.execute(insert(EVENTS).values(event_row(ref, now, *event)))
            if notices:
                enqueue(conn, notices)
        return True

    # -- heartbeat -------------------------------------------------------------------------

    def beat(self, instance: str, values: dict[str, Any]) -> None:
        """Insert or update this daemon instance's heartbeat row."""
        with transaction(self.engine, write=True) as conn:
            result = conn.execute(
                update(HEARTBEATS).where(HEARTBEATS.c.instance == instance).values(values)
            )
            if result.rowcount == 0:
                conn.execute(insert(HEARTBEATS).values(instance=instance, **values))

    def heartbeats(self) -> list[Heartbeat]:
        """`Queries.heartbeats`."""
        return Queries(self.engine).heartbeats()

    # -- retention -------------------------------------------------------------------------

    def prune_snapshots(
        self,
        older_than: datetime,
        batch: int = 1000,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> int:
        """Delete snapshots observed before `older_than`; returns how many went.

        Each task's newest snapshot stays, however old, so its latest state is never lost.
        Deletes `batch` rows per write transaction, so the daemon's polls slip in between.
        Between batches, while more may remain, it asks `keep_going` and stops on a no (the
        daemon is stopping); it is asked only then, so a no means rows may be left.
        """
        doomed = select(SNAPSHOTS.c.id).where(prunable(older_than)).limit(batch).scalar_subquery()
        total = 0
        while True:
            with transaction(self.engine, write=True) as conn:
                deleted = conn.execute(delete(SNAPSHOTS).where(SNAPSHOTS.c.id.in_(doomed))).rowcount
            total += deleted
            if deleted < batch or not keep_going():
                return total
