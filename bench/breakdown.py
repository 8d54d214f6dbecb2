"""`python -m bench.breakdown`: where the CPU time of one poll goes, step by step, beside the
bare equivalent of each step. One thread, CPU time per call (`time.process_time`), against the
simulator in a process of its own; the database steps run on the daemon's schema.

Not a figure: a diagnosis that tells which layer an optimisation should go after.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.bare import connect
from bench.harness import EMAIL, TOKEN, SimProcess, stalled_script


def per_call_us(step: Callable[[int], object], calls: int) -> float:
    for i in range(min(50, calls)):  # warm-up: caches, connections, compiled statements
        step(i)
    start = time.process_time()
    for i in range(calls):
        step(i)
    return (time.process_time() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    calls = n = args.calls

    import requests

    from monitor.config import JiraSettings, PollSettings, Secret
    from monitor.database import open_database, transaction
    from monitor.jira import JiraClient
    from monitor.jira.payload import parse_task
    from monitor.observation import observe
    from monitor.store import Registration, Store

    rows: list[tuple[str, float, str, float]] = []
    with SimProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        ids = [f"b{i}" for i in range(calls + 50)]
        sim.add_tasks(stalled_script(t) for t in ids)
        # HTTP: GET and parse.
        session = requests.Session()
        session.auth = (EMAIL, TOKEN)
        api = f"{sim.url}/rest/api/3/task/"
        client = JiraClient(JiraSettings(url=sim.url, email=EMAIL, max_rps=1e6), Secret(TOKEN))
        body = session.get(api + "b0").content
        bare_get = per_call_us(lambda i: session.get(api + ids[i]).json(), calls)
        jtm_get = per_call_us(lambda i: client.get_task(ids[i]), calls)
        rows.append(("GET + parse", jtm_get, "session.get().json()", bare_get))
        trusting = session.trust_env
        session.trust_env = False
        bare_no_env = per_call_us(lambda i: session.get(api + ids[i]).json(), calls)
        session.trust_env = trusting
        rows.append(("  (bare, trust_env=False)", bare_no_env, "", 0.0))
        import json

        rows.append(
            (
                "  parse_task",
                per_call_us(lambda i: parse_task(body, expected_id="b0"), calls),
                "json.loads",
                per_call_us(lambda i: json.loads(body), calls),
            )
        )

        # Database: the daemon's store vs sqlite3 by hand.
        db = Path(tmp) / "breakdown.db"
        engine = open_database(f"sqlite:///{db}", "upgrade")
        store = Store(engine)
        now = datetime.now(UTC)
        store.register(ids, Registration(), now)
        poll = PollSettings()
        tasks = store.due_tasks(now, len(ids))
        info = client.get_task("b0")
        store.record_polls([observe(t, info, now, poll) for t in tasks])
        later = now + timedelta(hours=1)
        tasks = store.due_tasks(later, len(ids))
        outcomes = [observe(t, info, later, poll) for t in tasks]
        rng = random.Random(7)
        rows.append(
            (
                "observe",
                per_call_us(lambda i: observe(tasks[i], info, later, poll, jitter=rng.random()), n),
                "",
                0.0,
            )
        )
        due_us = per_call_us(lambda i: store.due_tasks(later, 500), 20) / 500
        raw = connect(str(db))
        raw_due = (
            per_call_us(
                lambda i: raw.execute(
                    "SELECT * FROM tasks WHERE state = 'watching' AND next_poll_at <= ?"
                    " ORDER BY next_poll_at LIMIT 500",
                    (later.replace(tzinfo=None).isoformat(" "),),
                ).fetchall(),
                20,
            )
            / 500
        )
        rows.append(("due_tasks, per task", due_us, "SELECT * by hand", raw_due))

        def record(i: int) -> None:
            store.record_polls([outcomes[i]])

        # A poll's write is compare-and-set on `polls`: each task can be recorded once per read.
        jtm_record = per_call_us(record, calls)
        raw.execute(
            "CREATE TABLE polls (task_id TEXT, observed_at TEXT, status TEXT, progress INT,"
            " message TEXT, elapsed_ms INT)"
        )

        def insert(i: int) -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(
                "INSERT INTO polls VALUES (?, ?, ?, ?, ?, ?)",
                (ids[i], later.isoformat(), "RUNNING", 37, "Processed 30 of 100 items", 1000),
            )
            raw.execute("COMMIT")

        rows.append(
            (
                "record_polls, one (unchanged)",
                jtm_record,
                "INSERT, own txn",
                per_call_us(insert, calls),
            )
        )

        def empty_transaction(i: int) -> None:
            with transaction(engine, write=True):
                pass

        def raw_transaction(i: int) -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("COMMIT")

        rows.append(
            (
                "  transaction(write=True), empty",
                per_call_us(empty_transaction, calls),
                "BEGIN IMMEDIATE; COMMIT",
                per_call_us(raw_transaction, calls),
            )
        )
        raw.close()
        client.close()
        engine.dispose()
    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  {'jtm µs':>8}  {'bare µs':>8}  bare step")
    for name, jtm_us, bare_name, bare_us in rows:
        shown = f"{bare_us:8.0f}" if bare_name else " " * 8
        print(f"{name.ljust(width)}  {jtm_us:8.0f}  {shown}  {bare_name}")
    print(f"(CPU time per call, {calls} calls; pid {os.getpid()}; sqlite {sqlite3.sqlite_version})")


if __name__ == "__main__":
    main()
