"""The checks of the service's life under systemd: the watchdog, a stop while a request hangs,
and the exit codes that must not restart (checks 6, 7 and 8 of the README's list). The first
two run on the machine that upgraded to this commit, after the upgrade; the last ends the
install machine's run (guest/checks.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from .systest import (
    CONFIG,
    DROP_INS,
    TOKEN,
    UNIT,
    CheckFailed,
    ensure_active,
    events,
    journal,
    jtm,
    logged,
    now_us,
    prop,
    query,
    run,
    set_config,
    simulator,
    task_states,
    wait_for,
    with_poll_interval,
)


def ticks(pid: str) -> set[str]:
    """When the daemon of process `pid` last completed a tick, as its heartbeat row says."""
    rows = query("SELECT last_tick_at FROM heartbeats WHERE pid = ?", int(pid))
    return {at for (at,) in rows if at}


def check_watchdog() -> str:
    # The upgrade's tasks: 20001 is watched, 20002 finished (a task.finished that must not
    # come twice); the daemon ticks every second (poll.interval 4s).
    drop_in = DROP_INS / "watchdog.conf"
    drop_in.write_text("[Service]\nWatchdogSec=10s\n")
    try:
        run("systemctl", "daemon-reload")
        run("systemctl", "restart", UNIT, timeout=300)
        before = set(task_states())
        pid, restarts = prop("MainPID"), int(prop("NRestarts"))
        time.sleep(15)  # one and a half watchdog periods
        if prop("MainPID") != pid or int(prop("NRestarts")) != restarts:
            raise CheckFailed("a healthy daemon was restarted by the watchdog")
        mark = now_us()
        run("kill", "-STOP", pid)
        wait_for(
            "restart after the watchdog fired",
            lambda: prop("MainPID") not in ("0", pid) and prop("ActiveState") == "active",
            60,
        )
        fired = [
            e.get("MESSAGE", "")
            for e in journal(mark)
            if "atchdog timeout" in str(e.get("MESSAGE", ""))
        ]
        if not fired or int(prop("NRestarts")) != restarts + 1:
            raise CheckFailed(f"no watchdog restart: {fired}, NRestarts {prop('NRestarts')}")
        new_pid = prop("MainPID")
        first = wait_for("a tick of the new process", lambda: ticks(new_pid), 30)
        wait_for("a second tick of the new process", lambda: ticks(new_pid) - first, 30)
        after = set(task_states())
        if after != before:
            raise CheckFailed(f"tasks before {sorted(before)}, after {sorted(after)}")
        finished = Counter(
            e["task_id"] for _, e in events(journal()) if e["event"] == "task.finished"
        )
        if finished["20002"] != 1 or any(n != 1 for n in finished.values()):
            raise CheckFailed(f"task.finished lines per task: {dict(finished)}")
    finally:
        drop_in.unlink()
        run("systemctl", "daemon-reload")
    return (
        f"WatchdogSec=10s: healthy for 15 s with no restart; after kill -STOP, {fired[0]!r} "
        f"and one restart; {len(after)} tasks kept, one task.finished each"
    )


def check_stop_while_request_hangs() -> str:
    ensure_active()
    timeout = 15.0
    simulator("POST", "faults", {"kind": "slow", "delay_s": 180, "count": None, "method": "GET"})
    try:
        mark = now_us()
        jtm("add", "10006", "--label", "hangs")  # polled at the next tick
        wait_for("a request in flight", lambda: simulator("GET", "in-flight")["count"], 30)
        started = time.monotonic()
        run("systemctl", "stop", UNIT, timeout=300)
        took = time.monotonic() - started
    finally:
        simulator("DELETE", "faults")
    result, status = prop("Result"), prop("ExecMainStatus")
    hung = logged(mark, "jira.error")
    if not hung:
        raise CheckFailed(f"no request hung (no jira.error); stop took {took:.1f} s")
    if took > timeout or result != "success" or status != "0":
        raise CheckFailed(
            f"systemctl stop took {took:.1f} s (limit {timeout:.0f} s) while a GET hung for "
            f"180 s: Result={result}, exit status {status}"
        )
    return (
        f"systemctl stop took {took:.1f} s while a GET hung (answer due in 180 s): exit 0 "
        f"({hung[0].get('error')!r})"
    )


def ended() -> str | None:
    """The unit's state once its process has exited: `failed`, or `auto-restart` when systemd
    is about to start it again."""
    if prop("ActiveState") == "failed":
        return "failed"
    return "auto-restart" if prop("SubState") == "auto-restart" else None


def check_exit_codes() -> str:
    """Last of its machine: it leaves the service stopped."""
    good_config, good_token = CONFIG.read_text(), TOKEN.read_text()
    seen = []
    cases: list[tuple[str, int, Callable[[], object]]] = [
        ("a bad config", 78, lambda: set_config(with_poll_interval(good_config, "soon"))),
        ("a refused token", 77, lambda: TOKEN.write_text("not-the-token\n")),
    ]
    try:
        for what, code, spoil in cases:
            spoil()
            run("systemctl", "restart", UNIT, check=False, timeout=300)
            # A restart would be scheduled the moment the process exited (auto-restart for
            # RestartSec): `failed` at that point means none is coming.
            state = wait_for(f"end of the start with {what}", ended, 60)
            status, restarts = prop("ExecMainStatus"), prop("NRestarts")
            # (A start by hand resets NRestarts; each automatic restart counts.)
            if state != "failed" or status != str(code) or restarts != "0":
                raise CheckFailed(
                    f"{what}: ActiveState={state}, exit status {status}, NRestarts={restarts}"
                )
            seen.append(f"{what}: failed with {code}, no restart")
            set_config(good_config)
            TOKEN.write_text(good_token)
            run("systemctl", "reset-failed", UNIT)
    finally:
        set_config(good_config)
        TOKEN.write_text(good_token)
    return "; ".join(seen)
