"""Deadline functions: explicit `now`, each kind, each clock source, gaps and skew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

import pytest

from monitor.config import TimeoutSettings
from monitor.deadlines import Facts, Limits, ages, next_deadline, overruns
from monitor.records import Task
from monitor.states import TaskState, TimeoutAction, TimeoutKind

J0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # Jira's clock when it answered
TOTAL, QUEUED, RUN, STALL = TimeoutKind


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


class Times(TypedDict, total=False):
    """Every field of `Facts` but `status` and `observed_at`: what Jira and our clock said."""

    submitted: datetime | None
    started: datetime | None
    last_update: datetime | None
    elapsed_runtime_ms: int | None
    server_time: datetime | None
    last_change_at: datetime | None
    watched_since: datetime | None


class FactFields(Times, total=False):
    """The fields of `Facts` a test sets by name; `observed_at` comes from the skew."""

    status: str


def facts(skew: float = 0.0, **fields: Unpack[FactFields]) -> Facts:
    """An observation made when Jira's clock read J0 and ours read J0 + skew."""
    base: FactFields = {"status": "RUNNING"}
    return Facts(observed_at=J0 + s(skew), **(base | fields))


RUNNING_2H: Times = {
    "submitted": J0 - s(7300),
    "started": J0 - s(7200),
    "elapsed_runtime_ms": 7_200_000,
    "last_update": J0 - s(30),
}

AGES = [
    # (case, facts, seconds after the observation, expected ages)
    (
        "running: every age on Jira's clock",
        facts(**RUNNING_2H),
        0,
        {TOTAL: 7300, RUN: 7200, STALL: 30},
    ),
    (
        "running, our clock 10 min ahead: same ages",
        facts(600, **RUNNING_2H),
        0,
        {TOTAL: 7300, RUN: 7200, STALL: 30},
    ),
    (
        "running, our clock 10 min behind: same ages",
        facts(-600, **RUNNING_2H),
        0,
        {TOTAL: 7300, RUN: 7200, STALL: 30},
    ),
    (
        "time since the observation is added on our clock",
        facts(600, **RUNNING_2H),
        45,
        {TOTAL: 7345, RUN: 7245, STALL: 75},
    ),
    (
        "enqueued with Jira's Date header: total and queued on Jira's clock",
        facts(900, status="ENQUEUED", submitted=J0 - s(100), server_time=J0),
        10,
        {TOTAL: 110, QUEUED: 110},
    ),
    (
        "enqueued without a Date: our clock, so a skew shows",
        facts(900, status="ENQUEUED", submitted=J0 - s(100)),
        10,
        {TOTAL: 1010, QUEUED: 1010},
    ),
    (
        "enqueued without a Date, our clock far behind: never negative",
        facts(-900, status="ENQUEUED", submitted=J0 - s(100)),
        0,
        {TOTAL: 0, QUEUED: 0},
    ),
    (
        "running without elapsedRuntime: run from started on the Date clock",
        facts(300, started=J0 - s(50), server_time=J0, submitted=J0 - s(60)),
        0,
        {TOTAL: 60, RUN: 50},
    ),
    (
        "running without lastUpdate: stall from the monitor's last change",
        facts(elapsed_runtime_ms=1000, started=J0, last_change_at=J0 - s(500)),
        20,
        {RUN: 21, STALL: 520},
    ),
    (
        "restart gap: the monitor's downtime does not count as a stall",
        facts(
            elapsed_runtime_ms=1000,
            started=J0,
            last_change_at=J0 - s(5000),
            watched_since=J0 - s(60),
        ),
        0,
        {RUN: 1, STALL: 60},
    ),
    (
        "no Jira clock at all: lastUpdate unused, monitor's record used",
        facts(last_update=J0 - s(9999), last_change_at=J0 - s(10)),
        0,
        {STALL: 10},
    ),
    (
        "cancel requested: only total",
        facts(status="CANCEL_REQUESTED", submitted=J0 - s(5), server_time=J0),
        0,
        {TOTAL: 5},
    ),
    (
        "an unknown status: only total",
        facts(status="PAUSED", submitted=J0 - s(5), server_time=J0),
        0,
        {TOTAL: 5},
    ),
    ("missing submitted: no total", facts(status="ENQUEUED", server_time=J0), 0, {}),
    ("terminal: nothing is measured", facts(status="COMPLETE", **RUNNING_2H), 0, {}),
]


@pytest.mark.parametrize(("case", "observed", "after", "expected"), AGES, ids=[a[0] for a in AGES])
def test_ages(case: str, observed: Facts, after: float, expected: dict[TimeoutKind, float]) -> None:
    assert ages(observed, observed.observed_at + s(after)) == pytest.approx(expected)


def test_a_task_started_two_hours_ago_is_over_a_one_hour_run_limit_at_first_sight() -> None:
    observed = facts(**RUNNING_2H)
    [overrun] = overruns(observed, Limits(run_s=3600), observed.observed_at)
    assert (overrun.kind, overrun.limit_s, overrun.observed_s) == (RUN, 3600, 7200)


def test_overruns_report_every_passed_kind_in_order() -> None:
    observed = facts(**RUNNING_2H)
    limits = Limits(total_s=7000, run_s=7100, stall_s=10, queued_s=1)
    passed = overruns(observed, limits, observed.observed_at)
    assert [o.kind for o in passed] == [TOTAL, RUN, STALL]  # queued does not apply while running


def test_a_limit_exactly_reached_is_not_passed() -> None:
    observed = facts(**RUNNING_2H)
    assert overruns(observed, Limits(run_s=7200), observed.observed_at) == []
    assert overruns(observed, Limits(run_s=7200), observed.observed_at + s(0.001)) != []


def test_next_deadline_is_the_nearest_limit_not_yet_passed() -> None:
    observed = facts(**RUNNING_2H)
    now = observed.observed_at
    limits = Limits(total_s=8000, run_s=7500, stall_s=10)  # stall already passed
    assert next_deadline(observed, limits, now) == now + s(300)
    assert next_deadline(observed, Limits(), now) is None
    assert next_deadline(facts(status="FAILED", **RUNNING_2H), limits, now) is None


def _task(**columns: Any) -> Task:
    return Task("10001", TaskState.WATCHING, J0, J0, **columns)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({}, Limits(total_s=7200, stall_s=600, action=TimeoutAction.CANCEL)),
        ({"limit_stall_s": 60.0}, Limits(total_s=7200, stall_s=60, action=TimeoutAction.CANCEL)),
        (
            {"limit_run_s": 5.0, "timeout_action": "warn"},
            Limits(total_s=7200, run_s=5, stall_s=600, action=TimeoutAction.WARN),
        ),
    ],
)
def test_per_task_limits_override_the_config(columns: dict[str, Any], expected: Limits) -> None:
    defaults = TimeoutSettings(total_s=7200, stall_s=600)
    assert Limits.for_task(_task(**columns), defaults) == expected
