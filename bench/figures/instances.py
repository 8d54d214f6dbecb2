"""Figure 8: several instances on PostgreSQL (needs a server: `TEST_POSTGRESQL_URL`, which
`make bench` sets with .ci/with-postgresql; without one the figure is skipped).

1. Three `jtm run` processes share `pg_tasks` tasks, all due every `pg_interval_s`: the polls
   the simulator receives in one interval, once the first (all due at once) is past, against
   the tasks (requested); double polls (polls Jira answered that the database did not take
   because another instance's poll of the task got there first; goal 0).
2. Failover: one instance is SIGKILLed; for each task it held, how long past its due time the
   others polled it (goal: within 2 intervals).
3. CPU per poll on PostgreSQL: the daemon's poll path (`bench.child cpu`, as figure 1) against
   the bare loop writing one row per poll with psycopg, each on a new database.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import (
    DaemonProcess,
    SimProcess,
    register_tasks,
    run_child,
    stalled_script,
    wait_until,
    write_config,
)
from bench.report import Result, ratio
from bench.scale import Scale

SERVER_ENV = "TEST_POSTGRESQL_URL"
PREFIX = "pg-"
CPU_GOAL = 1.2


@contextmanager
def new_database(server: str) -> Iterator[str]:
    """A URL of a new database on `server`, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"jtm_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def run(scale: Scale, sim: SimProcess, workdir: Path) -> list[Result]:
    server = os.environ.get(SERVER_ENV)
    if not server:
        print(f"  (instances: skipped, no PostgreSQL server: set {SERVER_ENV})", flush=True)
        return []
    return [*_shared(scale, sim, workdir, server), *_cpu(scale, sim, workdir, server)]


def _shared(scale: Scale, sim: SimProcess, workdir: Path, server: str) -> list[Result]:
    interval = scale.pg_interval_s
    ids = [f"{PREFIX}{i}" for i in range(scale.pg_tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(task_id) for task_id in ids)
    requested_rps = len(ids) / interval
    with new_database(server) as url:
        register_tasks(url, ids)
        config = write_config(
            workdir,
            sim.url,
            workdir / "instances.db",
            concurrency=scale.concurrency,
            interval=f"{interval:g}s",
            max_interval=f"{interval:g}s",
            max_rps=int(requested_rps * 3 * 1.5),  # 1.5x the need, with one instance lost
            db_url=url,
        )
        daemons = [DaemonProcess(config, workdir / f"instance-{n}.log") for n in range(3)]
        try:
            started = time.monotonic()
            # Past the first round (every task due at once), one measured interval.
            wait_until(
                lambda: len(_polled(sim)) == len(ids),
                60 + interval * 2,
                "every task polled once",
                every=interval / 4,
            )
            time.sleep(interval * 1.5)
            window = (time.monotonic(), time.monotonic() + interval)
            time.sleep(interval)
            for daemon in daemons:
                daemon.check_alive()
            killed_at = time.monotonic()
            daemons[0].proc.send_signal(signal.SIGKILL)
            daemons[0].proc.wait()
            time.sleep(interval * 2.5)
            for daemon in daemons[1:]:
                daemon.check_alive()
        finally:
            for daemon in daemons:
                daemon.stop()
        written = _polls_written(url)
    gets: dict[str, list[float]] = defaultdict(list)
    for request in sim.requests_log():
        if request.get("task_id") and request["method"] == "GET" and request["status"] == 200:
            gets[request["task_id"]].append(request["monotonic"])
    in_window = sum(1 for ts in gets.values() for t in ts if window[0] <= t < window[1])
    # A double poll is a poll whose write lost the compare-and-set to another instance's poll
    # of the same task: Jira answered, the database never took it. The polls Jira answered
    # less those written, less the requests the killed instance had in flight (at most its
    # concurrency), are the double polls. (Gaps between polls do not tell: a poll that came
    # late is followed by the next at its due time plus an interval, a few seconds later.)
    answered = sum(len(ts) for ts in gets.values())
    doubles = max(0, answered - written - scale.concurrency)
    # Failover: each task's first poll after the kill, past the time it fell due (its last
    # poll before the kill plus an interval), in intervals.
    late = []
    for ts in gets.values():
        before = [t for t in ts if t < killed_at]
        after = [t for t in ts if t >= killed_at]
        if before and after:
            late.append(max(0.0, after[0] - (before[-1] + interval)))
    worst = max(late, default=0.0)  # no task polled both sides of the kill: not measured
    details = {
        "tasks": len(ids),
        "interval_s": interval,
        "instances": 3,
        "run_s": round(time.monotonic() - started, 1),
    }
    return [
        Result(
            key="instances.polls",
            title=f"Polls per interval, 3 instances on PostgreSQL, {len(ids):,} tasks at "
            f"{interval:g} s",
            value=in_window,
            unit="polls",
            baseline=len(ids),
            baseline_label="tasks (requested)",
            goal=">= 95% of requested",
            holds=in_window >= 0.95 * len(ids),
            details=details,
        ),
        Result(
            key="instances.double_polls",
            title="Double polls, 3 instances on PostgreSQL",
            value=doubles,
            unit="polls",
            goal="0",
            holds=doubles == 0,
            details={
                **details,
                "polls_answered": answered,
                "polls_written": written,
                "in_flight_at_kill_allowed": scale.concurrency,
            },
        ),
        Result(
            key="instances.failover",
            title="Failover after a SIGKILL: latest poll past its due time",
            value=round(worst, 2),
            unit="s",
            baseline=interval,
            baseline_label="the poll interval",
            goal="<= 2 intervals",
            holds=worst <= 2 * interval if late else None,
            details={
                **details,
                "tasks_measured": len(late),
                "tasks_late_over_1s": sum(1 for x in late if x > 1.0),
            },
        ),
    ]


def _polls_written(url: str) -> int:
    """Polls the database took, over every task."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT coalesce(sum(polls), 0) FROM tasks")) or 0)
    finally:
        engine.dispose()


def _polled(sim: SimProcess) -> set[str]:
    return {r["task_id"] for r in sim.requests_log() if r.get("task_id")}


def _cpu(scale: Scale, sim: SimProcess, workdir: Path, server: str) -> list[Result]:
    ids = [f"{PREFIX}cpu-{i}" for i in range(scale.cpu_tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(task_id) for task_id in ids)
    per_poll: dict[str, list[float]] = {"daemon": [], "bare": []}
    for _repeat in range(scale.cpu_repeats):
        for mode in ("bare", "daemon"):
            with new_database(server) as url:
                args = ["cpu", "--mode", mode, "--sim", sim.url, "--db", url]
                args += ["--tasks", str(len(ids)), "--prefix", f"{PREFIX}cpu-"]
                args += ["--concurrency", str(scale.concurrency)]
                args += ["--rounds", str(scale.cpu_rounds)]
                out = run_child(args)
            per_poll[mode].append(out["cpu_s"] / out["polls"] * 1e6)
    daemon, bare = min(per_poll["daemon"]), min(per_poll["bare"])
    return [
        Result(
            key="instances.cpu",
            title="CPU per poll on PostgreSQL, unchanged task",
            value=daemon,
            unit="µs",
            baseline=bare,
            baseline_label="bare requests+json+psycopg",
            goal=f"<= {CPU_GOAL}x",
            holds=ratio(daemon, bare) <= CPU_GOAL,
            details={
                "tasks": len(ids),
                "daemon_us_runs": [round(v) for v in per_poll["daemon"]],
                "bare_us_runs": [round(v) for v in per_poll["bare"]],
            },
        )
    ]
