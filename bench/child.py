"""The measured processes: `python -m bench.child cpu|ceiling ...` prints one JSON object.

Each runs in a process of its own, so its CPU time (`time.process_time`, every thread) counts
only itself; the simulator it talks to is another process. The daemon side runs the real
code path, `Poller.tick`, with the real `JiraClient`, `Store` and JSON logging (to /dev/null).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from bench.bare import BareClient, InsertWriter, SameSqlWriter, Writer, connect
from bench.harness import EMAIL, TOKEN, cpu_seconds, stalled_script

P = ParamSpec("P")
T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs each submitted call at once in the caller's thread: lets cProfile see it all."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def task_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def vary(sim_url: str, ids: list[str], round_no: int) -> None:
    """Move every task's progress on the simulator, so the next poll of each sees a change."""
    stall = 5 + (round_no * 7) % 90
    payload = json.dumps([stalled_script(t, stall) for t in ids]).encode()
    request = urllib.request.Request(f"{sim_url}/_sim/tasks", data=payload, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


@contextmanager
def measured(totals: dict[str, float]) -> Iterator[None]:
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    totals["cpu_s"] += time.process_time() - cpu
    totals["wall_s"] += time.perf_counter() - wall


# -- figure 1: CPU per poll -------------------------------------------------------------------


def daemon_poller(
    sim_url: str, db_path: str, ids: list[str], concurrency: int, inline: bool = False
) -> Any:
    """The daemon's objects, built as `Daemon.run` builds them, with the tasks registered."""
    from monitor.config import JiraSettings, PollSettings, Secret, TimeoutSettings
    from monitor.database import open_database
    from monitor.jira import JiraClient
    from monitor.logs import configure_logging, get_logger
    from monitor.poller import Poller
    from monitor.states import LogFormat, LogLevel
    from monitor.store import Registration, Store

    configure_logging(LogFormat.JSON, LogLevel.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    store = Store(open_database(f"sqlite:///{db_path}", "upgrade"))
    store.register(ids, Registration(), datetime.now(UTC))
    jira = JiraSettings(url=sim_url, email=EMAIL, timeout_s=10.0, max_rps=10_000.0)
    client = JiraClient(jira, Secret(TOKEN), pool_size=concurrency)
    executor: Executor = (
        InlineExecutor()
        if inline
        else ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jtm-poll")
    )
    poll = PollSettings(concurrency=concurrency)
    return Poller(
        store, client, poll, TimeoutSettings(), executor, log=get_logger(), rng=random.Random(7)
    )


def cpu_daemon(args: argparse.Namespace) -> dict[str, Any]:
    ids = task_ids(args.prefix, args.tasks)
    poller = daemon_poller(args.sim, args.db, ids, args.concurrency, inline=bool(args.profile))
    start = datetime.now(UTC)
    # Each tick is an hour later than the last, so every task is due again (the longest
    # interval is 5 minutes); the first two ticks (first sighting, then warm caches) are not
    # measured.
    totals = {"cpu_s": 0.0, "wall_s": 0.0}
    polls = changed = 0
    profiler = cProfile.Profile() if args.profile else None
    for round_no in range(args.rounds + 2):
        if args.vary:
            vary(args.sim, ids, round_no)
        now = start + timedelta(hours=round_no)
        if round_no < 2:
            poller.tick(now)
            continue
        if profiler is not None:
            profiler.enable()
        with measured(totals):
            report = poller.tick(now)
        if profiler is not None:
            profiler.disable()
        if report.polled != len(ids):
            raise RuntimeError(f"tick polled {report.polled} of {len(ids)}: {report}")
        polls += report.polled
        changed += report.changed
    if profiler is not None:
        profiler.dump_stats(args.profile)
    return {"polls": polls, "changed": changed, **totals}


def cpu_bare(args: argparse.Namespace) -> dict[str, Any]:
    ids = task_ids(args.prefix, args.tasks)
    same_sql: SameSqlWriter | None = None
    writer: Writer
    if args.mode == "same-sql":
        # The daemon's own database, after one real tick (so every task has its snapshot).
        poller = daemon_poller(args.sim, args.db, ids, args.concurrency)
        poller.tick(datetime.now(UTC))
        poller.executor.shutdown()
        poller.store.engine.dispose()
        same_sql = SameSqlWriter(connect(args.db))
        writer = same_sql
    else:
        writer = InsertWriter(connect(args.db))
    client = BareClient(args.sim, writer, args.concurrency, EMAIL, TOKEN)
    start = datetime.now(UTC)
    totals = {"cpu_s": 0.0, "wall_s": 0.0}
    polls = 0
    for round_no in range(args.rounds + 2):
        if args.vary:
            vary(args.sim, ids, round_no)
        now = start + timedelta(hours=round_no)
        with measured(totals) if round_no >= 2 else _nothing():
            due = same_sql.due(now) if same_sql is not None else ids
            done = client.poll_round(due, now)
        if round_no >= 2:
            polls += done
    client.close()
    return {"polls": polls, "changed": polls if args.vary else 0, **totals}


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# -- figure 2: the bare client's ceiling ------------------------------------------------------


def ceiling_bare(args: argparse.Namespace) -> dict[str, Any]:
    ids = task_ids(args.prefix, args.tasks)
    client = BareClient(args.sim, InsertWriter(connect(args.db)), args.concurrency, EMAIL, TOKEN)
    client.poll_round(ids)  # warm-up: connections open, code paths hot
    polls = 0
    sim0, cpu0, t0 = cpu_seconds(args.sim_pid), time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < args.duration:
        polls += client.poll_round(ids)
    wall = time.perf_counter() - t0
    result = {
        "polls": polls,
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu0,
        "sim_cpu_s": cpu_seconds(args.sim_pid) - sim0,
    }
    client.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    sub = parser.add_subparsers(dest="command", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--mode", choices=["daemon", "bare", "same-sql"], required=True)
    cpu.add_argument("--rounds", type=int, required=True)
    cpu.add_argument("--vary", action="store_true")
    cpu.add_argument("--profile", help="write a cProfile of the measured ticks here")
    ceiling = sub.add_parser("ceiling")
    ceiling.add_argument("--duration", type=float, required=True)
    ceiling.add_argument("--sim-pid", type=int, required=True)
    for command in (cpu, ceiling):
        command.add_argument("--sim", required=True)
        command.add_argument("--db", required=True)
        command.add_argument("--tasks", type=int, required=True)
        command.add_argument("--prefix", required=True)
        command.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "cpu":
        result = cpu_daemon(args) if args.mode == "daemon" else cpu_bare(args)
    else:
        result = ceiling_bare(args)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
