"""Figure 7: what the metrics endpoint costs the daemon: CPU per poll of the real `jtm run`,
300 tasks at a 1 s interval, with `[metrics] listen` set and the endpoint scraped every second,
against the same daemon with the endpoint off.

Each side runs `metrics_repeats` times, alternating, each in a daemon of its own on a fresh
database; after every task was polled once and a warm-up, the daemon's CPU time (all its
threads, from /proc: the scrapes' threads included) over a window is divided by the polls it
recorded in that window (the sum of the tasks' `polls` column, read beside it). The lowest of
each side counts, as for figure 1: other load on the machine can only add to it.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import (
    DaemonProcess,
    SimProcess,
    cpu_seconds,
    db_scalar,
    register_tasks,
    stalled_script,
    wait_until,
    write_config,
)
from bench.report import Result, ratio
from bench.scale import Scale

GOAL = 1.05
SCRAPE_EVERY_S = 1.0
PREFIX = "metrics-"
POLLS = "SELECT coalesce(sum(polls), 0) FROM tasks"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Scraper:
    """GET /metrics every `SCRAPE_EVERY_S`, as Prometheus would, in a thread of this process."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.scrapes = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_EVERY_S):
            with urllib.request.urlopen(self.url, timeout=5) as answer:
                self.bytes = len(answer.read())
            self.scrapes += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _side(
    scale: Scale, sim: SimProcess, workdir: Path, ids: list[str], name: str
) -> dict[str, Any]:
    db = workdir / f"{name}.db"
    register_tasks(db, ids)
    config = write_config(
        workdir, sim.url, db, concurrency=scale.concurrency, interval="1s", max_interval="1s"
    )
    port = _free_port()
    if name.startswith("on"):
        config.write_text(config.read_text() + f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    daemon = DaemonProcess(config, workdir / f"{name}.log")
    scraper = None
    try:
        wait_until(
            lambda: db_scalar(db, "SELECT count(*) FROM tasks WHERE polls > 0") >= len(ids),
            timeout=max(60.0, len(ids) / 20),
            what="every task polled once",
        )
        if name.startswith("on"):
            scraper = Scraper(port)
        time.sleep(scale.rate_warmup_s)
        daemon.check_alive()
        t0, cpu0, polls0 = time.monotonic(), cpu_seconds(daemon.pid), db_scalar(db, POLLS)
        time.sleep(scale.metrics_window_s)
        t1, cpu1, polls1 = time.monotonic(), cpu_seconds(daemon.pid), db_scalar(db, POLLS)
        daemon.check_alive()
    finally:
        if scraper is not None:
            scraper.stop()
        daemon.stop()
    polls = polls1 - polls0
    return {
        "us_per_poll": (cpu1 - cpu0) / max(polls, 1) * 1e6,
        "polls_per_s": polls / (t1 - t0),
        "scrapes": scraper.scrapes if scraper else 0,
        "scrape_bytes": scraper.bytes if scraper else 0,
    }


def run(scale: Scale, sim: SimProcess, workdir: Path) -> list[Result]:
    ids = [f"{PREFIX}{i}" for i in range(scale.rate_tasks)]
    sim.reset()
    sim.add_tasks(stalled_script(task_id) for task_id in ids)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for repeat in range(scale.metrics_repeats):
        for side in ("off", "on"):
            runs[side].append(_side(scale, sim, workdir, ids, f"{side}-{repeat}"))
    on = min(r["us_per_poll"] for r in runs["on"])
    off = min(r["us_per_poll"] for r in runs["off"])
    details: dict[str, Any] = {
        "tasks": len(ids),
        "interval_s": 1.0,
        "concurrency": scale.concurrency,
        "window_s": scale.metrics_window_s,
        "repeats": scale.metrics_repeats,
        "scrape_every_s": SCRAPE_EVERY_S,
        "on_us_runs": [round(r["us_per_poll"]) for r in runs["on"]],
        "off_us_runs": [round(r["us_per_poll"]) for r in runs["off"]],
        "polls_per_s_on": [round(r["polls_per_s"], 1) for r in runs["on"]],
        "polls_per_s_off": [round(r["polls_per_s"], 1) for r in runs["off"]],
        "scrapes_per_window": [r["scrapes"] for r in runs["on"]],
        "scrape_bytes": max(r["scrape_bytes"] for r in runs["on"]),
    }
    return [
        Result(
            key="metrics.cpu",
            title=f"CPU per poll, {len(ids)} tasks at 1 s, endpoint scraped every 1 s",
            value=on,
            unit="µs",
            baseline=off,
            baseline_label="metrics endpoint off",
            goal=f"<= {GOAL}x",
            holds=ratio(on, off) <= GOAL,
            details=details,
        )
    ]
