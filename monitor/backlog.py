"""Poll outcomes held in memory while the database cannot be written (disk full, read-only).

A write that fails because of the storage (`StoreUnavailable`) loses nothing and costs Jira
nothing: each task's outcome is held here, in the order it happened, and the task as that
outcome leaves it (`Backlog.task`) is what the poller plans from, so its next poll comes at
the configured interval and backoff, as if the write had gone in. Every later write first
tries to write what is held, in one transaction and in order: each held write was planned
from the task as the one before it left it, so the compare-and-set chain on the poll count
holds, and the database ends as if nothing had failed (snapshots with the times they were
observed). A task removed by the CLI meanwhile loses its chain, as any poll that lost its race.

Consecutive outcomes that changed nothing (no snapshot, event or cancel: `Outcome.plain`) are
merged into one held entry (the last, with the earlier ones in `Outcome.follows`), so a long
outage holds about one entry per task per change, not per poll.

The trouble is logged as `store.write_failed` (`error`, `tasks_waiting`) when it starts and
then at most once per `log_every_s` (the poller sets its poll interval), and `store.recovered`
once writes work again and nothing is held. Everything here runs in the tick's thread, except
`failed` and `state`, which the heartbeat may call from a worker: a lock guards the outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from structlog.typing import FilteringBoundLogger

from monitor.errors import StoreUnavailable
from monitor.metrics.hooks import NO_TELEMETRY, Telemetry
from monitor.outcome import Outcome
from monitor.records import Task
from monitor.statefile import StoreTrouble
from monitor.states import TaskState
from monitor.store import Store
from monitor.store.polls import columns


@dataclass(frozen=True, slots=True)
class Held:
    """One held outcome, and whether the poller counts and logs it once it is written (a
    back-off after a task's processing failed was counted then)."""

    outcome: Outcome
    report: bool = True


class Backlog:
    def __init__(
        self,
        log: FilteringBoundLogger,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry = NO_TELEMETRY,
    ):
        """`telemetry` is told of each write that failed for the storage (`monitor.metrics`)."""
        self.telemetry = telemetry
        self.log = log
        self.log_every_s = 30.0
        self._clock = clock
        self._held: dict[str, list[Held]] = {}
        self._lock = threading.Lock()  # guards the outage's fields below
        self._since: datetime | None = None
        self._error = ""
        self._logged_at: float | None = None

    def __len__(self) -> int:
        """The number of tasks with held writes."""
        return len(self._held)

    def writes(self) -> int:
        """The number of held writes (polls that changed nothing share one)."""
        return sum(len(chain) for chain in self._held.values())

    @property
    def failing(self) -> bool:
        """True while the last write tried failed for the storage (and until one succeeds)."""
        with self._lock:
            return self._since is not None

    def due(self, store: Store, now: datetime, limit: int) -> list[Task]:
        """Up to `limit` due tasks, each as its held writes leave it: a task whose poll is
        held is due when that poll says, not when the database (which missed it) says."""
        if not self._held:
            return store.due_tasks(now, limit)
        tasks = [self.task(t) for t in store.due_tasks(now, limit + len(self._held))]
        return [
            t
            for t in tasks
            if t.state == TaskState.WATCHING
            and t.next_poll_at is not None
            and t.next_poll_at <= now
        ][:limit]

    def task(self, task: Task) -> Task:
        """`task` as read from the database, with its held outcomes applied."""
        for held in self._held.get(task.task_id, ()):
            done = held.outcome
            task = task._replace(**columns(done), polls=task.polls + done.polls, updated_at=done.at)
        return task

    def hold(self, outcome: Outcome, report: bool = True) -> None:
        """Hold `outcome` (planned from `self.task(...)` of its task)."""
        chain = self._held.setdefault(outcome.task.task_id, [])
        if chain and chain[-1].outcome.plain and outcome.plain:
            before = chain[-1].outcome
            follows = (*before.follows, replace(before, follows=()))
            chain[-1] = Held(replace(outcome, follows=follows), report)
        else:
            chain.append(Held(outcome, report))

    def flush(self, store: Store) -> list[tuple[Held, bool]]:
        """Write everything held, in order, in one transaction; returns what went in, each
        with whether it won its race. What the storage still refuses is held again.

        Should one held write fail for its data, they go one by one: that task loses its
        held polls (the rest of its chain loses the race), and is polled again.
        """
        taken = [held for chain in self._held.values() for held in chain]
        self._held.clear()
        try:
            return list(zip(taken, store.record_polls([h.outcome for h in taken]), strict=True))
        except StoreUnavailable as exc:
            self._put_back(taken)
            self.failed(exc)
            return []
        except Exception:
            pass
        done: list[tuple[Held, bool]] = []
        for i, held in enumerate(taken):
            try:
                ok = store.record_polls([held.outcome])[0]
            except StoreUnavailable as exc:  # and now the storage: the rest waits again
                self._put_back(taken[i:])
                self.failed(exc)
                break
            except Exception:
                self.log.exception("poller.task_failed", task_id=held.outcome.task.task_id)
                ok = False
            done.append((held, ok))
        return done

    def _put_back(self, taken: list[Held]) -> None:
        """Hold again what `flush` took (its write failed), before anything held since."""
        newer, self._held = self._held, {}
        for held in taken:
            self._held.setdefault(held.outcome.task.task_id, []).append(held)
        for task_id, chain in newer.items():
            self._held.setdefault(task_id, []).extend(chain)

    # -- the outage -----------------------------------------------------------------------

    def failed(self, error: Exception) -> None:
        """A write failed for the storage: log it if none was logged for `log_every_s`."""
        self.telemetry.store_failed()
        now = self._clock()
        with self._lock:
            if self._since is None:
                self._since = datetime.now(UTC)
            self._error = str(error)
            due = self._logged_at is None or now - self._logged_at >= self.log_every_s
            if due:
                self._logged_at = now
        if due:
            self.log.error("store.write_failed", error=str(error), tasks_waiting=len(self))

    def written(self, tasks: int = 0) -> None:
        """A write went in (with `tasks` tasks' held writes): the outage ends if none is held."""
        if self._held:
            return
        with self._lock:
            since, self._since, self._logged_at = self._since, None, None
        if since is not None:
            outage_s = round((datetime.now(UTC) - since).total_seconds(), 3)
            self.log.info("store.recovered", outage_s=outage_s, tasks_written=tasks)

    def state(self) -> StoreTrouble | None:
        """The trouble, for STATUS= and the state file; None while writes work."""
        with self._lock:
            if self._since is None:
                return None
            return StoreTrouble(self._error, self._since, len(self._held))
