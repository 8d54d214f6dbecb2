"""Prototypes of changes to code the benchmark does not own, to measure before proposing them.

`python -m bench --experiment NAME` applies them, by monkeypatching, in every process that
runs the daemon's code: the children (`bench.child`), `jtm run` (started as
`python -m bench.experiments ARGS`) and the orchestrator itself (the storage figure). The CLI
figures run the plain `jtm`: no experiment touches the commands. Results then go to
bench-results/, never to the committed results. Each prototype follows the code of this
commit; the real change belongs in the module named, and docs/benchmarks.md says what each
one bought.

- `record`: `Store.record_poll` with statements built once (Core, bound parameters) instead of
  an ORM-enabled `update(Task)...values(**values)` built, coerced and cache-keyed per call.
- `anchor`: the next poll counted from when the task was due, not from the tick that ran it,
  so the tick's granularity no longer stretches every interval (`monitor.poller`).
- `batch`: a tick polls its due tasks 500 at a time instead of loading up to 5,000 ORM
  objects at once (`Poller.tick`); the peak of memory follows the batch, not the backlog.
- `tick`: the daemon looks for due tasks every 50 ms instead of every quarter interval
  (`monitor.daemon.tick_interval`): a tick that overran waits less for the next one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

ENV = "BENCH_EXPERIMENTS"
BATCH = 500
TICK_S = 0.05


def names_from_env() -> list[str]:
    return [n for n in os.environ.get(ENV, "").split(",") if n]


def apply(names: Iterable[str]) -> None:
    for name in names:
        EXPERIMENTS[name]()


def _record() -> None:
    from sqlalchemy import Table, bindparam, func, insert, select, update

    from monitor import store as store_module
    from monitor.database import transaction
    from monitor.models import Event, Snapshot, Task
    from monitor.states import TaskState

    tables = (Task.__table__, Snapshot.__table__, Event.__table__)
    tasks, snapshots, events = (cast(Table, table) for table in tables)
    cas: dict[tuple[str, ...], Any] = {}
    touch = (
        update(snapshots)
        .where(
            snapshots.c.id
            == select(func.max(snapshots.c.id))
            .where(snapshots.c.task_id == bindparam("w_task_id"))
            .scalar_subquery()
        )
        .values(last_seen_at=bindparam("w_now"))
    )
    insert_snapshot, insert_events = insert(snapshots), insert(events)

    def statement(keys: tuple[str, ...]) -> Any:
        if keys not in cas:
            cas[keys] = (
                update(tasks)
                .where(
                    tasks.c.task_id == bindparam("w_task_id"),
                    tasks.c.state == bindparam("w_state"),
                    tasks.c.polls == bindparam("w_polls"),
                )
                .values({key: bindparam(key) for key in keys})
            )
        return cas[keys]

    def record_poll(
        self: Any,
        task: Any,
        values: dict[str, Any],
        now: datetime,
        *,
        snapshot: dict[str, Any] | None = None,
        touch_snapshot: bool = False,
        events: Any = (),
    ) -> bool:
        params = {**values, "polls": task.polls + 1, "updated_at": now}
        stmt = statement(tuple(sorted(params)))
        params |= {"w_task_id": task.task_id, "w_state": TaskState.WATCHING, "w_polls": task.polls}
        with transaction(self.engine, write=True) as conn:
            if conn.execute(stmt, params).rowcount != 1:
                return False
            if snapshot is not None:
                conn.execute(insert_snapshot, {"task_id": task.task_id, **snapshot})
            elif touch_snapshot:
                conn.execute(touch, {"w_task_id": task.task_id, "w_now": now})
            if events:
                rows = [store_module._event(task.task_id, now, k, d) for k, d in events]
                conn.execute(insert_events, rows)
        return True

    store_module.Store.record_poll = record_poll  # type: ignore[method-assign]


def _anchor() -> None:
    from monitor import poller

    def anchored(plan: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(task: Any, outcome: Any, now: datetime, poll: Any, jitter: float = 1.0) -> Any:
            result = plan(task, outcome, now, poll, jitter)
            chosen, due = result.values.get("next_poll_at"), task.next_poll_at
            if chosen is not None and due is not None and due <= now < due + (chosen - now):
                result.values["next_poll_at"] = due + (chosen - now)
            return result

        return wrapper

    poller.plan_success = anchored(poller.plan_success)
    poller.plan_failure = anchored(poller.plan_failure)


def _batch() -> None:
    from monitor import poller

    original = poller.Poller.tick
    cap = poller.MAX_DUE_PER_TICK

    def tick(self: Any, now: datetime | None = None) -> Any:
        now = now or datetime.now(UTC)
        poller.MAX_DUE_PER_TICK = BATCH
        try:
            total = original(self, now)
            while total.due < cap and total.due % BATCH == 0 and total.due:
                report = original(self, now)
                for field in dataclasses.fields(total):
                    mine, more = getattr(total, field.name), getattr(report, field.name)
                    setattr(total, field.name, mine + more)
                if report.due < BATCH:
                    break
        finally:
            poller.MAX_DUE_PER_TICK = cap
        return total

    poller.Poller.tick = tick  # type: ignore[method-assign]


def _tick() -> None:
    from monitor import daemon

    daemon.tick_interval = lambda poll: TICK_S


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "record": _record,
    "anchor": _anchor,
    "batch": _batch,
    "tick": _tick,
}


def main() -> None:
    """`jtm` with the experiments of $BENCH_EXPERIMENTS applied: `python -m bench.experiments
    --config ... run`."""
    apply(names_from_env())
    from monitor.cli import cli

    cli.main(args=sys.argv[1:], prog_name="jtm")


if __name__ == "__main__":
    main()
