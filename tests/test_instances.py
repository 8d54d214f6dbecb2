"""Several daemon instances on one database: real `jtm run` processes against the simulator.

On PostgreSQL (skipped without a server, see `tests.databases`) three instances share the
tasks through a SIGKILL of one and a SIGSTOP of another past its lease; the site's rate cap
and a Retry-After hold for the three together. On SQLite a second daemon is refused.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from monitor.config import DatabaseSettings, Settings
from monitor.database import SCHEMA_HEAD, migrate, migrations_path, open_database, transaction
from monitor.jira.pacing import SiteGate
from monitor.metrics.site import PauseReason
from monitor.schema import SNAPSHOTS
from monitor.sharing import Sharing
from monitor.simulator import Fault, Simulator, TaskScript
from monitor.states import TaskKind
from monitor.store import Registration, Store
from monitor.store.queries import Filters, Queries
from monitor.store.shared import Claims
from monitor.taskref import TaskRef
from tests.conftest import SIM_EMAIL, SIM_TOKEN, RunCli
from tests.helpers import Daemon, base_env, jtm, polled, wait_for, write_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL_S = 2.0
CONCURRENCY = 4
STATUS_ORDER = {
    "ENQUEUED": 0,
    "RUNNING": 1,
    "CANCEL_REQUESTED": 2,
    "COMPLETE": 3,
    "FAILED": 3,
    "DEAD": 3,
    "CANCELLED": 3,
}


def _instances(config: Path, env: dict[str, str]) -> int:
    status = jtm(config, "status", "--json", env=env)
    return len(json.loads(status.stdout)["instances"]) if status.stdout else 0


def _task_gets(sim: Simulator) -> dict[str, list[float]]:
    """Each task's GETs, as the simulator received them (monotonic seconds)."""
    gets: dict[str, list[float]] = defaultdict(list)
    for request in sim.requests_log():
        if request.task_id is not None and request.method == "GET":
            gets[request.task_id].append(request.monotonic)
    return gets


@pytest.mark.postgresql
def test_claims_hand_each_due_task_to_one_instance_until_its_lease_ends(pg_url: str) -> None:
    engine = open_database(pg_url)
    try:
        Store(engine).register([str(n) for n in range(10)], Registration(), T0)
        claims = Claims(lease_s=30.0, batch=4)
        first = claims.claim(engine, T0, 100)
        second = claims.claim(engine, T0, 100)
        assert len(first) == len(second) == 4  # no more than a batch at a time
        assert not {t.task_id for t in first} & {t.task_id for t in second}
        assert all(t.next_poll_at == T0 for t in first)  # as it was due, not as leased
        third = claims.claim(engine, T0, 100)
        assert len(third) == 2
        assert claims.claim(engine, T0 + timedelta(seconds=29), 100) == []
        # A lease that ran out (its instance died) leaves the task due for the others.
        again = claims.claim(engine, T0 + timedelta(seconds=30), 100)
        assert {t.task_id for t in again} == {t.task_id for t in first}
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_claims_take_a_task_and_a_bulk_operation_of_one_id_apart(pg_url: str) -> None:
    engine = open_database(pg_url)
    try:
        bulk = TaskRef(TaskKind.BULK, "7")
        Store(engine).register(["7", bulk], Registration(), T0)
        claims = Claims(lease_s=30.0, batch=1)
        [first] = claims.claim(engine, T0, 100)
        [second] = claims.claim(engine, T0, 100)  # the first claim leased its row alone
        assert {first.ref, second.ref} == {TaskRef(TaskKind.TASK, "7"), bulk}
        assert claims.leases.held(first.ref) and claims.leases.held(second.ref)
        assert claims.claim(engine, T0, 100) == []
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_status_gives_the_size_of_jtms_tables_on_postgresql(pg_url: str) -> None:
    engine = open_database(pg_url)
    try:
        queries = Queries(engine)
        empty = queries.database_size()
        assert empty is not None and empty > 0  # the tables and their indexes
        Store(engine).register([str(n) for n in range(2_000)], Registration(label="x" * 200), T0)
        grown = queries.database_size()
        assert grown is not None and grown > empty
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_the_migrations_go_down_past_the_task_kind_and_up_again_on_postgresql(
    pg_url: str,
) -> None:
    engine = open_database(pg_url)
    try:
        store = Store(engine)
        store.register(["1", TaskRef(TaskKind.BULK, "1")], Registration(), T0)
        [task] = [t for t in store.due_tasks(T0, 10) if t.ref.kind == TaskKind.TASK]
        assert store.record_polls([polled(task, T0, "COMPLETE", result={"ok": [1]})]) == [True]
        config = Config()
        config.set_main_option("script_location", str(migrations_path()))
        with transaction(engine, write=True) as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")  # shared state, the outbox, bulk operations go
        migrate(engine)
        with transaction(engine) as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == SCHEMA_HEAD
            assert conn.scalar(text("SELECT pg_typeof(result)::text FROM tasks")) == "jsonb"
        assert [(t.ref, t.status) for t in Queries(engine).tasks(Filters())] == [
            (TaskRef(TaskKind.TASK, "1"), "COMPLETE")
        ]
        assert json.loads(store.get("1").result or "") == {"ok": [1]}
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_retention_runs_on_one_instance_a_day(pg_url: str) -> None:
    engine = open_database(pg_url)
    try:
        day = 86_400.0
        settings = Settings(database=DatabaseSettings(pg_url))
        a, b = (Sharing(Store(engine), name, settings, structlog.get_logger()) for name in "ab")
        assert a.retention_turn(T0, day)
        assert not b.retention_turn(T0 + timedelta(hours=1), day)
        assert not a.retention_turn(T0 + timedelta(hours=2), day)  # not twice a day either
        assert b.retention_turn(T0 + timedelta(days=1), day)
    finally:
        engine.dispose()


class _Pauses:
    """A `SiteTelemetry` that keeps the pauses it is told of."""

    def __init__(self) -> None:
        self.pauses: list[tuple[PauseReason, bool]] = []

    def request(self, status: int | None, seconds: float) -> None:
        pass

    def paused(self, reason: PauseReason, seconds: float, *, new: bool) -> None:
        self.pauses.append((reason, new))


@pytest.mark.postgresql
def test_a_pause_adopted_from_another_instance_counts_in_its_metrics_once(pg_url: str) -> None:
    engine = open_database(pg_url)
    try:
        settings = Settings(database=DatabaseSettings(pg_url))
        a, b = (Sharing(Store(engine), name, settings, structlog.get_logger()) for name in "ab")
        seen_a, seen_b = _Pauses(), _Pauses()
        gate_a, gate_b = SiteGate(10.0, telemetry=seen_a), SiteGate(10.0, telemetry=seen_b)
        a.apply(gate_a)
        b.apply(gate_b)
        gate_a.rate_limited(30.0)  # a 429 that `a` got: counted there, published
        assert seen_a.pauses == [(PauseReason.RATE_LIMITED, True)]
        b.sync(gate_b, datetime.now(UTC), time.monotonic())
        assert seen_b.pauses == [(PauseReason.RATE_LIMITED, True)]  # `b` is paused too
        a.sync(gate_a, datetime.now(UTC), time.monotonic())
        assert seen_a.pauses == [(PauseReason.RATE_LIMITED, True)]  # its own: not again
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgresql
def test_three_instances_share_the_work_through_a_kill_and_a_pause(
    sim: Simulator, tmp_path: Path, pg_url: str
) -> None:
    outcomes = ["COMPLETE", "FAILED", "DEAD"]
    scripts = [
        TaskScript(str(n), queued_s=1.0, run_s=14.0 + n % 5, outcome=outcomes[n % 3])
        for n in range(30)
    ]
    # These overrun a 2 s run limit: each must time out, and be cancelled, exactly once.
    overrun = [TaskScript(f"c{n}", queued_s=0.5, run_s=60.0) for n in range(5)]
    for script in [*scripts, *overrun]:
        sim.add_task(script)
    config = write_config(
        tmp_path,
        sim,
        SIM_EMAIL,
        database={"url": pg_url},
        jira={"timeout": "1s", "max_rps": 60},
        poll={
            "interval": f"{INTERVAL_S}s",
            "max_interval": f"{INTERVAL_S}s",
            "concurrency": CONCURRENCY,
        },
    )
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    added = jtm(config, "add", *(s.task_id for s in scripts), env=env)
    assert added.returncode == 0, added.stderr
    limited = jtm(config, "add", *(s.task_id for s in overrun), "--run", "2s", env=env)
    assert limited.returncode == 0, limited.stderr
    daemons = [Daemon(config, env) for _ in range(3)]
    try:
        for daemon in daemons:
            daemon.wait_event("daemon.started")
        wait_for(lambda: _instances(config, env) == 3, what="three live instances")
        killed, paused, _ = daemons
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait(timeout=10)
        paused.proc.send_signal(signal.SIGSTOP)
        time.sleep(3 * INTERVAL_S)  # well past its leases (one interval)
        paused.proc.send_signal(signal.SIGCONT)
        store = Store(open_database(pg_url))
        try:
            wait_for(
                lambda: store.count_by_state().get("finished", 0) == len(scripts) + len(overrun),
                timeout=90,
                what="every task finished",
            )
            tasks = {s.task_id: store.get(s.task_id) for s in scripts}
            store_status = {s.task_id: store.get(s.task_id).status for s in overrun}
            written = sum(store.get(s.task_id).polls for s in [*scripts, *overrun])
            with store.engine.connect() as conn:
                history = conn.execute(
                    select(
                        SNAPSHOTS.c.task_id, SNAPSHOTS.c.status, SNAPSHOTS.c.observed_at
                    ).order_by(SNAPSHOTS.c.id)
                ).all()
        finally:
            store.engine.dispose()
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                os.kill(daemon.proc.pid, signal.SIGCONT)
                assert daemon.stop() == 0, daemon.stderr

    # task.finished exactly once across the instances (the killed one's lines included).
    everything = [*scripts, *overrun]
    finished = Counter(e["task_id"] for d in daemons for e in d.events("task.finished"))
    assert finished == dict.fromkeys((s.task_id for s in everything), 1)
    timeouts = Counter(e["task_id"] for d in daemons for e in d.events("task.timeout"))
    assert timeouts == dict.fromkeys((s.task_id for s in overrun), 1)
    assert {s.task_id: sim.cancel_count(s.task_id) for s in overrun} == dict.fromkeys(
        (s.task_id for s in overrun), 1
    )
    assert {s.task_id: store_status[s.task_id] for s in overrun} == dict.fromkeys(
        (s.task_id for s in overrun), "CANCELLED"
    )
    assert {t: tasks[t].status for t in tasks} == {s.task_id: s.outcome for s in scripts}

    # No task polled twice in an interval; none left more than two intervals past its due
    # time (the killed instance's leases ran out, and the others took its tasks over).
    gets = _task_gets(sim)
    # A double poll is one Jira answered whose write lost to another instance's poll of the
    # task: only the requests in flight when one instance was killed and another stopped
    # (at most `poll.concurrency` each) may be answered and never written.
    answered = sum(len(ts) for ts in gets.values())
    assert answered - written <= 2 * CONCURRENCY, (answered, written)
    gaps = {t: [b - a for a, b in pairwise(ts)] for t, ts in gets.items()}
    assert max(max(g) for g in gaps.values() if g) <= 3 * INTERVAL_S + 1.5

    # The paused instance wrote no stale answer over a newer one: each task's history goes
    # forward only, in time and in status.
    by_task: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for task_id, status, observed_at in history:
        by_task[task_id].append((status, observed_at))
    for task_id, seen in by_task.items():
        times = [at for _, at in seen]
        ranks = [STATUS_ORDER[status] for status, _ in seen]
        assert times == sorted(times), task_id
        assert ranks == sorted(ranks), task_id


@pytest.mark.slow
@pytest.mark.postgresql
def test_the_rate_cap_and_a_retry_after_hold_for_the_site_as_a_whole(
    sim: Simulator, tmp_path: Path, pg_url: str
) -> None:
    max_rps = 6
    for n in range(40):
        sim.add_task(TaskScript(str(n), queued_s=0.5, run_s=600.0))
    config = write_config(
        tmp_path,
        sim,
        SIM_EMAIL,
        database={"url": pg_url},
        jira={"timeout": "1s", "max_rps": max_rps},
        poll={"interval": "1s", "max_interval": "1s"},
    )
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", *(str(n) for n in range(40)), env=env).returncode == 0
    daemons = [Daemon(config, env) for _ in range(3)]
    try:
        wait_for(lambda: _instances(config, env) == 3, what="three live instances")
        time.sleep(2.0)  # every instance has recounted the others (once a second)
        begin = time.monotonic()
        time.sleep(4.0)
        end = time.monotonic()
        sim.add_fault(Fault("rate_limit", retry_after="4", count=1))
        wait_for(lambda: any(r.status == 429 for r in sim.requests_log()), what="a 429")
        time.sleep(4.0)
    finally:
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.stderr

    log = sim.requests_log()
    sent = sorted(r.monotonic for r in log if r.task_id is not None and begin <= r.monotonic < end)
    assert len(sent) >= 3 * max_rps  # the three kept busy
    # Counted on receipt: 50 ms less than a second allows for the way there.
    busiest = max(sum(1 for t in sent if s <= t < s + 0.95) for s in sent)
    assert busiest <= max_rps

    # The 429 one instance saw paused all three: nothing sent from a second after it (the
    # others' next sync) until its Retry-After ends.
    limited = next(r.monotonic for r in log if r.status == 429)
    during = [r for r in log if limited + 1.5 <= r.monotonic < limited + 3.5]
    assert during == []


def test_a_second_daemon_on_one_sqlite_database_is_refused_pointing_to_postgresql(
    sim: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    first = Daemon(config, env)
    try:
        first.wait_event("daemon.started")
        second = jtm(config, "run", env=env)
        assert second.returncode == 78
        assert f"pid {first.proc.pid}" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0, first.stderr
    # The lock goes with its daemon: a new one starts at once.
    again = Daemon(config, env)
    try:
        again.wait_event("daemon.started")
    finally:
        assert again.stop() == 0, again.stderr


def test_a_postgresql_url_naming_another_driver_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg2://jtm:hunter2@127.0.0.1:1/jtm"\n')
    result = jtm(config, "list", env=base_env())
    assert result.returncode == 78
    assert "write the URL as postgresql+psycopg://" in result.stderr
    assert "hunter2" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_daemon_waits_for_an_unreachable_postgresql_instead_of_exiting(
    sim: Simulator, tmp_path: Path
) -> None:
    # Nothing listens on port 9 of loopback: the server is down (restarting, not up at boot).
    url = "postgresql+psycopg://jtm:hunter2@127.0.0.1:9/jtm"
    config = write_config(tmp_path, sim, SIM_EMAIL, database={"url": url})
    daemon = Daemon(config, base_env(JTM_JIRA_TOKEN=SIM_TOKEN))
    try:
        daemon.wait_event("database.unavailable", count=2)
        assert daemon.proc.poll() is None
    finally:
        returncode = daemon.stop()
    assert returncode == 78  # stopped while waiting: the database never came
    assert "hunter2" not in "\n".join(daemon.lines) + daemon.stderr
    assert "Traceback" not in daemon.stderr


def test_status_lists_the_live_instances(run: RunCli, config: Path) -> None:
    store = Store(open_database(f"sqlite:///{config.parent / 'monitor.db'}"))
    now = datetime.now(UTC)
    beat = {"version": "9.9", "started_at": now - timedelta(hours=1), "last_tick_polls": 0}
    store.beat("host-a:101", {**beat, "pid": 101, "heartbeat_at": now, "polls_last_minute": 120})
    store.beat("host-b:202", {**beat, "pid": 202, "heartbeat_at": now - timedelta(seconds=5)})
    store.beat("host-c:303", {**beat, "pid": 303, "heartbeat_at": now - timedelta(hours=1)})
    store.engine.dispose()
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    instances = json.loads(result.output)["instances"]
    assert [(i["host"], i["pid"], i["polls_last_minute"]) for i in instances] == [
        ("host-a", 101, 120),
        ("host-b", 202, None),
    ]  # host-c's heartbeat is an hour old: not live
    assert {"instance", "version", "heartbeat_at", "heartbeat_age_s"} <= set(instances[0])
    text = run("status").output
    assert "instances  host-a pid 101, version 9.9: heartbeat" in text
    assert "120 polls/min" in text
