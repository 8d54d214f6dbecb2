"""Figure 4: rows and bytes a task adds per simulated day, stuck or moving.

A day is simulated without waiting: a simulator in this process runs on a hand-moved clock,
and `Poller.tick(now)` is called at each moment the daemon's own schedule makes a poll due
(`Store.next_poll_at`), with the default poll settings (30 s, backing off to 5 min while
nothing changes). The *stuck* task stays RUNNING at 37%; the *moving* task gains at least one
percent between any two polls (its script is restarted before it would finish, so it moves all
day). Bytes are SQLite's own accounting (`dbstat`): the payload added to every table and index,
and the pages the file grew by.
"""

from __future__ import annotations

import os
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.child import InlineExecutor
from bench.harness import EMAIL, TOKEN
from bench.report import Result
from bench.scale import Scale

DAY_S = 86_400.0
MOVING_RUN_S = 2_000.0  # 1% per 20 s: more than 1% between two polls >= 27 s apart


def _dbstat(db: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (page bytes, payload bytes, rows) of every table and index."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stats = {
            name: (pages, payload, 0)
            for name, pages, payload in conn.execute(
                "SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name"
            )
        }
        for table in ("tasks", "snapshots", "events"):
            pages, payload, _ = stats[table]
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            stats[table] = (pages, payload, count)
        return stats
    finally:
        conn.close()


def _simulate(workdir: Path, name: str, span_s: float, moving: bool) -> dict[str, Any]:
    from monitor.config import JiraSettings, PollSettings, Secret, TimeoutSettings
    from monitor.database import open_database
    from monitor.jira import JiraClient
    from monitor.logs import configure_logging, get_logger
    from monitor.poller import Poller
    from monitor.simulator import Simulator, TaskScript
    from monitor.states import LogFormat, LogLevel
    from monitor.store import Registration, Store
    from monitor.store.queries import Filters, Queries
    from monitor.taskref import as_ref

    start = datetime.now(UTC).replace(microsecond=0)
    clock = [start.timestamp()]
    if moving:
        script = TaskScript(name, queued_s=0.0, run_s=MOVING_RUN_S)
    else:
        script = TaskScript(name, started_ago_s=3600.0, run_s=7200.0, stall_at=37)
    db = workdir / f"storage-{name}.db"
    engine = open_database(f"sqlite:///{db}", "upgrade")
    store = Store(engine)
    store.register([name], Registration(), start)
    engine.dispose()
    before = _dbstat(db)
    configure_logging(LogFormat.JSON, LogLevel.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    polls = changed = 0
    last_poll = start
    with Simulator(auth="none", clock=lambda: clock[0]) as sim:
        sim.add_task(script)
        created = clock[0]
        jira = JiraSettings(url=sim.url, email=EMAIL, max_rps=1e6)
        with JiraClient(jira, Secret(TOKEN), pool_size=1) as client:
            poller = Poller(
                store,
                client,
                PollSettings(),
                TimeoutSettings(),
                InlineExecutor(),
                log=get_logger(),
                rng=random.Random(7),
            )
            end = start + timedelta(seconds=span_s)
            while (due := store.next_poll_at()) is not None and due < end:
                clock[0] = due.timestamp()
                if moving and clock[0] - created >= 0.9 * MOVING_RUN_S:
                    sim.add_task(script)  # back to 0%: it keeps moving all day
                    created = clock[0]
                report = poller.tick(due)
                polls += report.polled
                changed += report.changed
                last_poll = due
    with Queries(engine).snapshots(Filters(refs=(as_ref(name),), limit=1)) as newest:
        [snapshot] = newest
    engine.dispose()
    after = _dbstat(db)
    names = set(before) | set(after)
    delta = {
        n: tuple(
            a - b for a, b in zip(after.get(n, (0, 0, 0)), before.get(n, (0, 0, 0)), strict=True)
        )
        for n in names
    }
    return {
        "polls": polls,
        "changed": changed,
        "snapshot_rows": after["snapshots"][2] - before["snapshots"][2],
        "event_rows": after["events"][2] - before["events"][2],
        "payload_bytes": sum(d[1] for d in delta.values()),
        "snapshot_payload_bytes": sum(d[1] for n, d in delta.items() if "snapshots" in n),
        "page_bytes": sum(d[0] for d in delta.values()),
        "file_bytes": db.stat().st_size,
        "last_seen_is_last_poll": snapshot.last_seen_at == last_poll,
        "newest_snapshot_observed_at": snapshot.observed_at.isoformat(),
        "newest_snapshot_last_seen_at": snapshot.last_seen_at.isoformat(),
    }


def run(scale: Scale, sim: object, workdir: Path) -> list[Result]:
    span = scale.storage_span_s
    per = "task-day" if span == DAY_S else f"task per {span / 3600:g} h"
    stuck = _simulate(workdir, "stuck", span, moving=False)
    moving = _simulate(workdir, "moving", span, moving=True)
    results = []
    for name, data, goal, holds in (
        (
            "stuck",
            stuck,
            "1 row, last-seen moves",
            stuck["snapshot_rows"] == 1 and stuck["last_seen_is_last_poll"],
        ),
        ("moving", moving, "1 row per change", moving["snapshot_rows"] == moving["changed"]),
    ):
        results.append(
            Result(
                key=f"storage.{name}.rows",
                title=f"Snapshot rows per {per}, {name} task",
                value=data["snapshot_rows"],
                unit="rows",
                baseline=data["polls"],
                baseline_label="polls",
                goal=goal,
                holds=holds,
                details={k: v for k, v in data.items() if not k.endswith("bytes")},
            )
        )
        results.append(
            Result(
                key=f"storage.{name}.bytes",
                title=f"Bytes per {per}, {name} task",
                value=data["payload_bytes"],
                unit="bytes",
                details={k: v for k, v in data.items() if k.endswith("bytes")}
                | {
                    "bytes_per_snapshot_row": round(
                        data["snapshot_payload_bytes"] / max(data["snapshot_rows"], 1)
                    )
                },
            )
        )
    return results
