"""Which limits a task has passed: pure functions of (task facts, limits, now).

Every deadline is derived on every evaluation from durable facts (what Jira last said, and
when), never from process memory, so a restart neither resets nor forgets one.

Clocks. Jira's timestamps are on Jira's clock, `now` and `observed_at` on ours; the two can
disagree by minutes. So ages are measured on Jira's clock wherever Jira gives us its "now":
the HTTP `Date` of its answer (`server_time`, whole seconds), or `started + elapsedRuntime`
while a task runs, whichever is later. `elapsedRuntime` alone is no clock: Atlassian's own
example has it at 156 ms with `finished - started` = 100 ms, and a Jira that refreshes it only
when progress moves would freeze it, and every age with it. Both are lower bounds of Jira's
"now", so the later is the better. Our clock only adds the time since the observation. With
neither (no Date header and not running), ages fall back to our clock and a skew can shift
them; they are never negative.

Stall. "No change in progress, message, lastUpdate or elapsedRuntime while running", as the
longest of three measures that can each only err short: from Jira's `lastUpdate` and from
`started + elapsedRuntime` (the last change, if Jira moves elapsedRuntime only with progress),
both on Jira's clock, and from the monitor's own record of the last change it saw
(`last_change_at`, stored). The last keeps a stall firing with no `lastUpdate` nor Date. Time
the monitor was down never counts: what was observed before the current run
(`last_seen_before`, stored) counts up to then, and the current run from `watched_since`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.states import JiraStatus, TaskKind, TaskState, TimeoutAction, TimeoutKind, is_terminal

if TYPE_CHECKING:
    from monitor.config import TimeoutSettings
    from monitor.records import Task


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one task, in seconds (None: no such limit)."""

    total_s: float | None = None
    queued_s: float | None = None
    run_s: float | None = None
    stall_s: float | None = None
    action: TimeoutAction = TimeoutAction.CANCEL

    @classmethod
    def for_task(cls, task: Task, defaults: TimeoutSettings) -> Limits:
        """Per-task values where set, else the config's `[timeouts]`. A bulk operation's
        action is always `warn` (`timeouts.bulk_action`): Jira cannot cancel one, and the
        CLI and the config refuse to ask for it."""

        def pick(own: float | None, default: float | None) -> float | None:
            return own if own is not None else default

        return cls(
            total_s=pick(task.limit_total_s, defaults.total_s),
            queued_s=pick(task.limit_queued_s, defaults.queued_s),
            run_s=pick(task.limit_run_s, defaults.run_s),
            stall_s=pick(task.limit_stall_s, defaults.stall_s),
            action=(
                defaults.bulk_action
                if task.kind == TaskKind.BULK
                else TimeoutAction(task.timeout_action or defaults.action)
            ),
        )

    def limit(self, kind: TimeoutKind) -> float | None:
        return {
            TimeoutKind.TOTAL: self.total_s,
            TimeoutKind.QUEUED: self.queued_s,
            TimeoutKind.RUN: self.run_s,
            TimeoutKind.STALL: self.stall_s,
        }[kind]


@dataclass(frozen=True, slots=True)
class Facts:
    """What is durably known about a task at one observation."""

    status: str
    observed_at: datetime  # our clock: when Jira said all this
    submitted: datetime | None = None  # Jira's clock, from here down
    started: datetime | None = None
    last_update: datetime | None = None
    elapsed_runtime_ms: int | None = None
    server_time: datetime | None = None  # the HTTP Date of Jira's answer
    last_change_at: datetime | None = None  # our clock: the last change we saw
    watched_since: datetime | None = None  # our clock: start of continuous observation
    last_seen_before: datetime | None = None  # our clock: the poll before this observation


@dataclass(frozen=True, slots=True)
class Overrun:
    kind: TimeoutKind
    limit_s: float
    observed_s: float


def _seconds(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0)


def jira_clock(facts: Facts) -> datetime | None:
    """Jira's clock at the moment of the observation, if Jira told us: the later of its
    `Date` and, while running, `started + elapsedRuntime`."""
    candidates = [facts.server_time] if facts.server_time is not None else []
    running = facts.status == JiraStatus.RUNNING
    if running and facts.started is not None and facts.elapsed_runtime_ms is not None:
        candidates.append(facts.started + timedelta(milliseconds=facts.elapsed_runtime_ms))
    return max(candidates) if candidates else None


def observed_stall(facts: Facts, now: datetime) -> float | None:
    """Seconds at `now` since the monitor last saw the task change, not counting time it was
    down: the part before this run (up to the last poll before it) plus this run so far."""
    since = facts.watched_since
    changed = facts.last_change_at
    if changed is None and since is None:
        return None
    if since is None or (changed is not None and changed >= since):
        return _seconds(now - max(t for t in (changed, since) if t is not None))
    before = 0.0
    if changed is not None and facts.last_seen_before is not None:
        before = _seconds(min(facts.last_seen_before, since) - changed)
    return before + _seconds(now - since)


def ages(facts: Facts, now: datetime) -> dict[TimeoutKind, float]:
    """How long the task has been in each measured condition at `now`, in seconds.

    Only the kinds that apply to the task's status are present: total while not terminal,
    queued while ENQUEUED, run and stall while RUNNING.
    """
    if is_terminal(facts.status):
        return {}
    since_observed = _seconds(now - facts.observed_at)
    jira_now = jira_clock(facts)

    def age_of(instant: datetime) -> float:
        if jira_now is not None:
            return _seconds(jira_now - instant) + since_observed
        return _seconds(now - instant)

    result: dict[TimeoutKind, float] = {}
    if facts.submitted is not None:
        result[TimeoutKind.TOTAL] = age_of(facts.submitted)
        if facts.status == JiraStatus.ENQUEUED:
            result[TimeoutKind.QUEUED] = result[TimeoutKind.TOTAL]
    if facts.status != JiraStatus.RUNNING:
        return result
    runs = [age_of(facts.started)] if facts.started is not None else []
    if facts.elapsed_runtime_ms is not None:
        runs.append(facts.elapsed_runtime_ms / 1000 + since_observed)
    if runs:
        result[TimeoutKind.RUN] = max(runs)
    stalls = []
    if facts.last_update is not None and jira_now is not None:
        stalls.append(age_of(facts.last_update))
    if facts.started is not None and facts.elapsed_runtime_ms is not None and jira_now:
        # When elapsedRuntime moves only with progress, this is the last change; when it is
        # refreshed on every read, it is Jira's now (an age of zero). Never too early.
        stalls.append(age_of(facts.started + timedelta(milliseconds=facts.elapsed_runtime_ms)))
    observed = observed_stall(facts, now)
    if observed is not None:
        stalls.append(observed)
    if stalls:
        result[TimeoutKind.STALL] = max(stalls)
    return result


def overruns(facts: Facts, limits: Limits, now: datetime) -> list[Overrun]:
    """The limits passed at `now`, in a stable order (total, queued, run, stall)."""
    measured = ages(facts, now)
    passed = []
    for kind in TimeoutKind:
        limit = limits.limit(kind)
        observed = measured.get(kind)
        if limit is not None and observed is not None and observed > limit:
            passed.append(Overrun(kind, limit, round(observed, 3)))
    return passed


def time_left(facts: Facts, limits: Limits, now: datetime) -> list[tuple[TimeoutKind, float]]:
    """Seconds left at `now` to each limit that applies (negative: passed)."""
    return [
        (kind, limit - observed)
        for kind, observed in ages(facts, now).items()
        if (limit := limits.limit(kind)) is not None
    ]


def next_deadline(facts: Facts, limits: Limits, now: datetime) -> datetime | None:
    """When the nearest limit not yet passed will be, assuming nothing changes; None if none."""
    remaining = [left for _kind, left in time_left(facts, limits, now) if left >= 0]
    return now + timedelta(seconds=min(remaining)) if remaining else None


def stored_facts(task: Task) -> Facts | None:
    """The facts recorded at `task`'s last successful poll; None if it was never seen.

    For reading the limits from the database (`jtm watch`); the daemon decides on the facts
    of a fresh poll instead, which also carry Jira's Date header.
    """
    if task.status is None or task.last_seen_at is None:
        return None
    return Facts(
        status=task.status,
        observed_at=task.last_seen_at,
        submitted=task.jira_submitted_at,
        started=task.jira_started_at,
        last_update=task.jira_last_update_at,
        elapsed_runtime_ms=task.elapsed_runtime_ms,
        last_change_at=task.last_change_at,
    )


def nearest_limit(task: Any, defaults: TimeoutSettings, now: datetime) -> tuple[str, float] | None:
    """The limit that runs out first, and the seconds left (negative: passed); None if none.

    The daemon's arithmetic, on the facts of the last poll (`jtm watch` and the metrics'
    census show it).
    """
    if task.state != TaskState.WATCHING:
        return None
    facts = stored_facts(task)
    if facts is None:
        return None
    left = time_left(facts, Limits.for_task(task, defaults), now)
    if not left:
        return None
    kind, seconds = min(left, key=lambda item: item[1])
    return str(kind), seconds
