#!/usr/bin/env python3
"""The system test's checks, run as root inside the booted Debian by system-test.service.

The machine boots with systemd as PID 1 and nothing of the monitor installed. The checks install
it by running the README's guide as written, then prove the service's behaviour under the real
systemd, one numbered check at a time (the numbers are those of the README's list of what the
system test proves). Each prints one line on the console:

    SYSTEST <n> ok: <what was seen>
    SYSTEST <n> FAIL: <why>

and `SYSTEST done` ends the run; tests/system/boot.py on the host reads them. The order of
execution is the order of `CHECKS`: later checks rely on what earlier ones set up (the install,
the registered tasks, a 1 s poll interval), and a check that cannot run because one it needs
failed says so.

Standard library only: this runs on Debian's own python3, beside the installed venv.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

UNIT = "jira-task-monitor"
SERVICE_USER = "jira-task-monitor"
OPERATOR = "alice"  # in the service's group, as the guide's `usermod -aG` makes her
OUTSIDER = "bob"  # not in it
CHECKOUT = Path("/root/jira-task-monitor")
PREVIOUS = Path("/root/previous")  # the previous release: its wheel, lock file and unit
WORK = Path("/root/system-test")
VENV = Path("/opt/jira-task-monitor")
STATE = Path("/var/lib/jira-task-monitor")
DATABASE = STATE / "monitor.db"
CONFIG = Path("/etc/jira-task-monitor/config.toml")
TOKEN = Path("/etc/jira-task-monitor/jira-token")
SIMULATOR = "http://127.0.0.1:8089"
SIM_TOKEN = "sim-token"
DROP_INS = Path("/etc/systemd/system/jira-task-monitor.service.d")

# The stand-ins for the guide's two interactive commands: the operator's edit of the config
# (pointing it at the simulator; nothing else changes) and the typed token.
GUIDE_PRELUDE = f"""\
set -euxo pipefail
PS4='+ [${{SECONDS}}s] '
editor() {{
    sed -i -e 's|^url = .*|url = "{SIMULATOR}"|' -e 's|^email = .*|email = "sim@example.com"|' "$1"
}}
systemd-ask-password() {{ printf '%s\\n' {SIM_TOKEN}; }}
"""

# structlog's level names and the syslog priorities journald files them under.
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

T = TypeVar("T")


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen instead."""


# -- helpers ----------------------------------------------------------------------------------


def run(
    *args: str, user: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command (as `user` through runuser, with that user's groups), output captured."""
    command = ["runuser", "-u", user, "--", *args] if user else list(args)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise CheckFailed(f"`{' '.join(args)}` exited {result.returncode}: {tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 3) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


def prop(name: str, unit: str = UNIT) -> str:
    return run("systemctl", "show", "-P", name, unit).stdout.strip()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll `probe` until it returns something truthy; CheckFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"no {what} after {timeout:.0f} s")
        time.sleep(0.5)


def journal(since_us: int = 0, *extra: str) -> list[dict[str, Any]]:
    """The unit's journal entries (journalctl -o json) from `since_us` (microseconds)."""
    out = run("journalctl", "-u", UNIT, "-o", "json", "--no-pager", *extra).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in entries if int(e["__REALTIME_TIMESTAMP"]) >= since_us]


def events(entries: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(journald priority, decoded JSON line) for each of the daemon's JSON log lines."""
    for entry in entries:
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or not message.startswith("{"):
            continue
        try:
            event = json.loads(message)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            yield int(entry.get("PRIORITY", -1)), event


def logged(since_us: int, name: str, **fields: object) -> list[dict[str, Any]]:
    return [
        e
        for _, e in events(journal(since_us))
        if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
    ]


def now_us() -> int:
    return time.time_ns() // 1000


def jtm(*args: str, user: str = OPERATOR) -> subprocess.CompletedProcess[str]:
    """The CLI as the operator runs it: `jtm` on the PATH, no options but the command's."""
    return run("jtm", *args, user=user)


def tasks() -> dict[str, dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(jtm("list", "--all", "--json").stdout)
    return {t["task_id"]: t for t in found}


def history(task_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        jtm("history", task_id, "--limit", "0", "--json").stdout
    )
    return rows


def simulator(method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{SIMULATOR}/_sim/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return json.loads(text) if text.strip() else None


def ensure_active() -> None:
    """Leave the service running with the installed unit, whatever a check left behind."""
    if prop("ActiveState") != "active":
        run("systemctl", "reset-failed", UNIT, check=False)
        run("systemctl", "start", UNIT, timeout=300)


def guide_blocks() -> list[str]:
    """The ```sh blocks of the README's "Run as a systemd service" section, in order."""
    readme = (CHECKOUT / "README.md").read_text()
    section = readme.split("\n## Run as a systemd service\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def guide(kind: str) -> str:
    """The install guide (the block that enables the unit) or the upgrade (the one that
    reinstalls over a running service)."""
    for block in guide_blocks():
        if kind == "install" and "systemctl enable --now" in block:
            return block
        if kind == "upgrade" and "pip install" in block and "systemctl restart" in block:
            return block
    raise CheckFailed(f'no {kind} block in the README\'s "Run as a systemd service"')


def run_guide(kind: str) -> int:
    """Run a README block as written, as root in the checkout, as its own unit; the number of
    commands it ran."""
    block = guide(kind)
    script = WORK / f"{kind}-guide.sh"
    script.write_text(GUIDE_PRELUDE + f"cd {CHECKOUT}\n" + block)
    result = run(
        "systemd-run",
        f"--unit=readme-{kind}",
        "--wait",
        "--pipe",
        "--quiet",
        "--collect",
        "--setenv=HOME=/root",
        "bash",
        str(script),
        check=False,
        timeout=1200,
    )
    for line in (result.stdout + result.stderr).splitlines():
        print(f"{kind}-guide| {line}", flush=True)
    if result.returncode != 0:
        raise CheckFailed(
            f"the README's {kind} commands failed (exit {result.returncode}): {tail(result)}"
        )
    return sum(
        1 for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def set_config(text: str) -> None:
    CONFIG.write_text(text)


def with_poll_interval(text: str, interval: str) -> str:
    """The config text with `interval` set in its [poll] table."""
    lines = [line for line in text.splitlines() if not line.startswith("interval = ")]
    at = lines.index("[poll]") + 1
    return "\n".join([*lines[:at], f'interval = "{interval}"', *lines[at:]]) + "\n"


# -- the checks -------------------------------------------------------------------------------


def check_install_guide() -> str:
    for user in (OPERATOR, OUTSIDER):
        run("useradd", "--create-home", user)
    commands = run_guide("install")
    jtm_path = shutil.which("jtm")
    if jtm_path is None:
        raise CheckFailed("no jtm on the PATH after the guide")
    return (
        f"{commands} commands of the README's guide ran as written on Debian 12 "
        "(editor and systemd-ask-password stood in: site URL and token of the simulator)"
    )


def check_service() -> str:
    state, kind = prop("ActiveState"), prop("Type")
    if state != "active" or kind != "notify":
        raise CheckFailed(f"ActiveState={state}, Type={kind}")
    status = wait_for("STATUS= after a tick", lambda: _ticked(prop("StatusText")), 60)
    if not re.match(r"watching \d+, finished \d+, gone \d+; last tick ", status):
        raise CheckFailed(f"StatusText={status!r}")
    pid = prop("MainPID")
    uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:2]
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    if {int(u) for u in uids} != {service_uid}:
        raise CheckFailed(f"main process {pid} runs as uid {uids}, not {service_uid}")
    gid = grp.getgrnam(SERVICE_USER).gr_gid
    files = [DATABASE, Path(f"{DATABASE}-wal"), Path(f"{DATABASE}-shm")]
    wait_for("database with -wal and -shm", lambda: all(f.exists() for f in files), 30)
    modes = []
    for path in files:
        st = path.stat()
        if st.st_gid != gid or st.st_mode & 0o660 != 0o660:
            raise CheckFailed(f"{path}: mode {stat.filemode(st.st_mode)}, gid {st.st_gid}")
        modes.append(f"{path.name} {stat.filemode(st.st_mode)}")
    dir_mode = stat.S_IMODE(STATE.stat().st_mode)
    if dir_mode != 0o2770:
        raise CheckFailed(f"{STATE}: mode {dir_mode:o}, not 2770")
    return (
        f"active through READY=1 (Type=notify); StatusText {status!r}; main process "
        f"{pid} runs as {SERVICE_USER}; {', '.join(modes)} in group {SERVICE_USER}, "
        f"{STATE} 2770"
    )


def _ticked(status: str) -> str | None:
    return status if "last tick" in status else None


def check_operator() -> str:
    # 99999: a task the site does not know, which becomes gone.
    jtm("add", "10001", "10003", "10004", "99999", "--label", "system test")
    jtm("add", "10002", "--label", "long")
    jtm("add", "10005", "--stall", "3s", "--action", "warn", "--label", "stalls")
    listed = jtm("list").stdout  # 10005 stalls: it stays watched, whatever the VM's speed
    if "10005" not in listed or set(tasks()) != {
        "10001",
        "10002",
        "10003",
        "10004",
        "10005",
        "99999",
    }:
        raise CheckFailed(f"jtm list shows:\n{listed}")
    watched = jtm("watch", "--once").stdout
    if "10005" not in watched:
        raise CheckFailed(f"jtm watch --once shows:\n{watched}")
    refused = run("jtm", "list", user=OUTSIDER, check=False)
    message = (refused.stderr.strip() or refused.stdout.strip()).splitlines()
    if refused.returncode == 0 or "Traceback" in refused.stderr or len(message) != 1:
        raise CheckFailed(f"{OUTSIDER} (not in the group): exit {refused.returncode}: {message}")
    return (
        f"{OPERATOR} (in the group) ran jtm add, list and watch --once with no options; "
        f"{OUTSIDER} was refused: exit {refused.returncode}, {message[0]!r}"
    )


def check_reload() -> str:
    good = with_poll_interval(CONFIG.read_text(), "1s")
    pid = prop("MainPID")
    mark = now_us()
    set_config(good)
    run("systemctl", "reload", UNIT)
    reloaded = wait_for("daemon.reloaded", lambda: logged(mark, "daemon.reloaded"), 30)
    if "poll.interval" not in json.dumps(reloaded[0]):
        raise CheckFailed(f"daemon.reloaded does not name poll.interval: {reloaded[0]}")
    mark = now_us()
    set_config(good + "[poll\n")
    try:
        run("systemctl", "reload", UNIT)
        failed = wait_for("daemon.reload_failed", lambda: logged(mark, "daemon.reload_failed"), 30)
        time.sleep(1)
        if prop("ActiveState") != "active" or prop("MainPID") != pid:
            raise CheckFailed("the service did not stay active in the same process")
    finally:
        set_config(good)
    mark = now_us()
    run("systemctl", "reload", UNIT)
    wait_for("daemon.reloaded after the fix", lambda: logged(mark, "daemon.reloaded"), 30)
    return (
        f"reload applied poll.interval 1s (daemon.reloaded {reloaded[0].get('changed')}); "
        f"a broken config was refused ({failed[0].get('error')!r}), service active, "
        f"same pid {pid}"
    )


def check_polled_to_the_end() -> str:
    expected = {"10001": "COMPLETE", "10003": "FAILED", "10004": "DEAD"}

    def ended() -> dict[str, dict[str, Any]] | None:
        found = tasks()
        done = all(
            found.get(t, {}).get("state") == "finished" and found[t]["status"] == s
            for t, s in expected.items()
        )
        return found if done and found.get("99999", {}).get("state") == "gone" else None

    try:
        found = wait_for("tasks polled to their end", ended, 120)
    except CheckFailed as exc:
        seen = {t: (v["state"], v["status"]) for t, v in tasks().items()}
        raise CheckFailed(f"{exc}: {seen}") from None
    wait_for("a stall warning", lambda: logged(0, "task.timeout", task_id="10005"), 60)
    lines = list(events(journal()))
    finished = Counter(e["task_id"] for _, e in lines if e["event"] == "task.finished")
    if any(finished[t] != 1 for t in expected):
        raise CheckFailed(f"task.finished lines per task: {dict(finished)}")
    wrong = [(p, e) for p, e in lines if PRIORITIES.get(e.get("level", "")) != p]
    if wrong:
        raise CheckFailed(f"{len(wrong)} lines under the wrong priority, e.g. {wrong[0]}")
    warnings = run("journalctl", "-u", UNIT, "-p", "warning", "-o", "cat", "--no-pager").stdout
    levels = Counter(
        json.loads(line).get("level") for line in warnings.splitlines() if line.startswith("{")
    )
    infos = sum(1 for p, _ in lines if p == PRIORITIES["info"])
    if not levels or set(levels) - {"warning", "error", "critical"} or not infos:
        raise CheckFailed(f"journalctl -p warning shows levels {dict(levels)}")
    ends = ", ".join(f"{t} {found[t]['status']}" for t in expected)
    return (
        f"{ends}, 99999 gone; one "
        f"task.finished each; {len(lines)} JSON lines each under its level's priority; "
        f"journalctl -p warning: {dict(levels)} of them, none of the {infos} info lines"
    )


def check_watchdog() -> str:
    drop_in = DROP_INS / "watchdog.conf"
    drop_in.write_text("[Service]\nWatchdogSec=10s\n")
    try:
        run("systemctl", "daemon-reload")
        run("systemctl", "restart", UNIT, timeout=300)
        before = tasks()
        pid, restarts = prop("MainPID"), int(prop("NRestarts"))
        time.sleep(20)  # two watchdog periods
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
        time.sleep(5)  # a few ticks of the new process
        after = tasks()
        if set(after) != set(before):
            raise CheckFailed(f"tasks before {sorted(before)}, after {sorted(after)}")
        finished = Counter(
            e["task_id"] for _, e in events(journal()) if e["event"] == "task.finished"
        )
        if any(n != 1 for n in finished.values()):
            raise CheckFailed(f"task.finished lines per task: {dict(finished)}")
    finally:
        drop_in.unlink()
        run("systemctl", "daemon-reload")
        run("systemctl", "restart", UNIT, timeout=300)
    return (
        f"WatchdogSec=10s: healthy for 20 s with no restart; after kill -STOP, {fired[0]!r} "
        f"and one restart; {len(after)} tasks kept, one task.finished each"
    )


def check_stop_while_request_hangs() -> str:
    ensure_active()
    timeout = 15.0
    simulator("POST", "faults", {"kind": "slow", "delay_s": 180, "count": None, "method": "GET"})
    try:
        mark = now_us()
        jtm("add", "10006", "--label", "hangs")
        time.sleep(4)  # the daemon's next tick sends the GET, which hangs
        started = time.monotonic()
        run("systemctl", "stop", UNIT, timeout=300)
        took = time.monotonic() - started
    finally:
        simulator("DELETE", "faults")
    result, status = prop("Result"), prop("ExecMainStatus")
    hung = logged(mark, "jira.error", task_id="10006")
    run("systemctl", "start", UNIT, timeout=300)
    if not hung:
        raise CheckFailed(f"no request hung (no jira.error for 10006); stop took {took:.1f} s")
    if took > timeout or result != "success" or status != "0":
        raise CheckFailed(
            f"systemctl stop took {took:.1f} s (limit {timeout:.0f} s) while a GET hung for "
            f"180 s: Result={result}, exit status {status}"
        )
    return (
        f"systemctl stop took {took:.1f} s while a GET hung (answer due in 180 s): exit 0 "
        f"({hung[0].get('error')!r})"
    )


def check_exit_codes() -> str:
    ensure_active()
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
            time.sleep(8)  # past RestartSec=5s: a restart would have happened
            state, status = prop("ActiveState"), prop("ExecMainStatus")
            restarts = prop("NRestarts")
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
        ensure_active()
    return "; ".join(seen)


def check_credential() -> str:
    ensure_active()
    if "token_file" in "".join(
        line for line in CONFIG.read_text().splitlines() if not line.lstrip().startswith("#")
    ):
        raise CheckFailed("the config names a token_file")
    copy = Path(f"/run/credentials/{UNIT}.service/jira-token")
    if not copy.exists() or copy.read_text() != TOKEN.read_text():
        raise CheckFailed(f"no credential {copy} with the token")
    pid = prop("MainPID")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    if any(v.startswith(b"JTM_JIRA_TOKEN=") for v in environ) or not any(
        v.startswith(b"CREDENTIALS_DIRECTORY=") for v in environ
    ):
        raise CheckFailed("the daemon's environment has no credentials directory, or a token")
    answered = [
        r for r in simulator("GET", "requests") if r["status"] == 200 and r["method"] == "GET"
    ]
    if not answered:
        raise CheckFailed("the simulator accepted no request")
    mode = stat.S_IMODE(TOKEN.stat().st_mode)
    refused = run("cat", str(TOKEN), user=SERVICE_USER, check=False)
    if refused.returncode == 0 or mode & 0o077:
        raise CheckFailed(f"{SERVICE_USER} reads {TOKEN} (mode {mode:o})")
    return (
        f"LoadCredential: {copy} holds the token; the daemon (none in its config or "
        f"environment) made "
        f"{len(answered)} authenticated requests; {SERVICE_USER} cannot read {TOKEN} "
        f"(mode {mode:o}: {tail(refused, 1)})"
    )


def check_security() -> str:
    result = run("systemd-analyze", "security", "--threshold=12", "--no-pager", UNIT, check=False)
    overall = re.search(r"Overall exposure level for \S+: (\S+)", result.stdout)
    if result.returncode != 0 or overall is None:
        flagged = [line for line in result.stdout.splitlines() if line.startswith("✗")]
        raise CheckFailed(
            f"exposure {overall[1] if overall else '?'} > 1.2 on the running unit: {flagged}"
        )
    flagged = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("✗")]
    return (
        f"systemd-analyze security (online, running unit): exposure {overall[1]} <= 1.2; "
        f"still flagged: {' '.join(flagged)}"
    )


def check_upgrade() -> str:
    # The previous release, with its own unit and an empty database. It goes into the venv
    # the guide made (a fresh venv costs a minute under emulation), its dependencies as its
    # lock file pins them. The simulator moves to a copy of the venv, which stays as it is.
    run("systemctl", "stop", UNIT, timeout=300)
    shutil.rmtree("/opt/jira-simulator", ignore_errors=True)
    run("cp", "-a", str(VENV), "/opt/jira-simulator")
    Path("/run/jira-simulator.env").write_text("SIMULATOR=/opt/jira-simulator\n")
    run("systemctl", "restart", "jira-simulator")
    shutil.rmtree(STATE)
    wheel, lock = str(next(PREVIOUS.glob("*.whl"))), str(PREVIOUS / "runtime.lock")
    pip = f"{VENV}/bin/pip"
    run(pip, "install", "--force-reinstall", "--no-deps", wheel, timeout=900)
    if Path(lock).read_text() != (CHECKOUT / "requirements/runtime.lock").read_text():
        run(pip, "install", "-c", lock, wheel, timeout=900)
    run("install", "-m", "0644", str(PREVIOUS / f"{UNIT}.service"), "/etc/systemd/system/")
    run("systemctl", "daemon-reload")
    run("systemctl", "start", UNIT, timeout=300)
    simulator(
        "POST",
        "tasks",
        [
            {"task_id": "20001", "run_s": 300.0, "description": "Long"},
            {"task_id": "20002", "run_s": 2.0, "description": "Short"},
        ],
    )
    jtm("add", "20001", "20002", "--label", "upgrade")
    wait_for(
        "history from the previous release",
        lambda: len(history("20001")) >= 3 and tasks()["20002"]["state"] == "finished",
        120,
    )
    old_schema = json.loads(jtm("status", "--json").stdout)["database"]["schema"]
    before = {t: history(t) for t in ("20001", "20002")}
    # The upgrade, as the README says; the daemon migrates the database before READY=1.
    restarted = time.time()
    commands = run_guide("upgrade")
    if prop("ActiveState") != "active":
        raise CheckFailed(f"after the upgrade: {prop('ActiveState')}")
    head = run(
        f"{VENV}/bin/python", "-c", "from monitor.database import SCHEMA_HEAD; print(SCHEMA_HEAD)"
    ).stdout.strip()
    stale = run(
        "diff",
        "-r",
        "-x",
        "__pycache__",
        "-x",
        "_migrations",
        str(CHECKOUT / "monitor"),
        str(next(VENV.glob("lib/python3*/site-packages/monitor"))),
        check=False,
    )
    if stale.returncode != 0:
        raise CheckFailed(f"the installed package is not the checkout's: {tail(stale)}")
    schema = json.loads(jtm("status", "--json").stdout)["database"]["schema"]
    if schema != head:
        raise CheckFailed(f"schema {schema} after the upgrade, not {head}")
    after = {t: history(t) for t in before}
    for task_id, rows in before.items():
        kept = {r["observed_at"] for r in after[task_id]}
        lost = [r["observed_at"] for r in rows if r["observed_at"] not in kept]
        if lost:
            raise CheckFailed(f"task {task_id} lost {len(lost)} snapshots: {lost[:3]}")

    def new_snapshot() -> list[dict[str, Any]] | None:
        rows = history("20001")
        fresh = [r for r in rows if _epoch(r["observed_at"]) > restarted]
        return fresh or None

    wait_for("a new snapshot of 20001 after the upgrade", new_snapshot, 60)
    finished = Counter(e["task_id"] for _, e in events(journal()) if e["event"] == "task.finished")
    if finished["20002"] != 1:
        raise CheckFailed(f"task.finished for 20002: {finished['20002']} lines")
    return (
        f"previous release (schema {old_schema}) recorded {sum(map(len, before.values()))} "
        f"snapshots; the README's {commands} upgrade commands installed this checkout, "
        f"schema {schema} at start, no snapshot lost, 20001 polled on"
    )


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# (number, check), in order of execution; the numbers are those of the README's list.
CHECKS: list[tuple[int, Callable[[], str]]] = [
    (1, check_install_guide),
    (2, check_service),
    (9, check_credential),
    (10, check_security),
    (3, check_operator),
    (5, check_reload),
    (4, check_polled_to_the_end),
    (6, check_watchdog),
    (7, check_stop_while_request_hangs),
    (8, check_exit_codes),
    (11, check_upgrade),
]


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)
    failed = 0
    for number, check in CHECKS:
        started = time.monotonic()
        if number != 1 and not shutil.which("jtm"):
            outcome = "FAIL: not run: the install guide did not install jtm"
        else:
            try:
                outcome = f"ok: {check()}"
            except CheckFailed as exc:
                outcome = f"FAIL: {exc}"
            except Exception as exc:
                outcome = f"FAIL: {type(exc).__name__}: {exc}"
        failed += outcome.startswith("FAIL")
        took = time.monotonic() - started
        print(f"SYSTEST {number} {outcome} ({took:.0f} s)".replace("\n", " "), flush=True)
    print("SYSTEST done", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
