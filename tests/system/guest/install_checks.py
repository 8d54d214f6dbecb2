"""The checks of the fresh machine: the README's install guide run as written, then the service
it leaves running, the operator's CLI, reload, and tasks polled to their end (checks 1, 2, 3,
4, 5, 9 and 10 of the README's list)."""

from __future__ import annotations

import grp
import json
import pwd
import re
import shutil
import stat
import time
from collections import Counter
from pathlib import Path

from . import guide
from .systest import (
    CHECKOUT,
    CONFIG,
    DATABASE,
    OPERATOR,
    OUTSIDER,
    PRIORITIES,
    SERVICE_USER,
    STATE,
    TOKEN,
    UNIT,
    WORK,
    CheckFailed,
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
    tail,
    task_states,
    ticked,
    wait_for,
    with_poll_interval,
)


def run_guide(kind: str) -> int:
    """Run a README block as written, as root in the checkout, as its own unit; the number of
    commands it ran."""
    readme = (CHECKOUT / "README.md").read_text()
    try:
        script = guide.script(readme, kind, str(CHECKOUT))
    except guide.GuideMissing as exc:
        raise CheckFailed(str(exc)) from None
    path = WORK / f"{kind}-guide.sh"
    path.write_text(script)
    result = run(
        "systemd-run",
        f"--unit=readme-{kind}",
        "--wait",
        "--pipe",
        "--quiet",
        "--collect",
        "--setenv=HOME=/root",
        "bash",
        str(path),
        check=False,
        timeout=1200,
    )
    for line in (result.stdout + result.stderr).splitlines():
        print(f"{kind}-guide| {line}", flush=True)
    if result.returncode != 0:
        raise CheckFailed(
            f"the README's {kind} commands failed (exit {result.returncode}): {tail(result)}"
        )
    return guide.commands(guide.block(readme, kind))


def check_install_guide() -> str:
    commands = run_guide("install")
    if shutil.which("jtm") is None:
        raise CheckFailed("no jtm on the PATH after the guide")
    return (
        f"{commands} commands of the README's guide ran as written on Debian 12 "
        "(editor and systemd-ask-password stood in: site URL and token of the simulator)"
    )


def check_service() -> str:
    state, kind = prop("ActiveState"), prop("Type")
    if state != "active" or kind != "notify":
        raise CheckFailed(f"ActiveState={state}, Type={kind}")
    status = wait_for("STATUS= after a tick", lambda: ticked(prop("StatusText")), 60)
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


def check_credential() -> str:
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


REGISTERED = {"10001", "10002", "10003", "10004", "10005", "99999"}


def check_operator() -> str:
    # 99999: a task the site does not know, which becomes gone. 10005 stalls: it stays
    # watched, whatever the machine's speed, and its stall limit warns.
    jtm("add", *sorted(REGISTERED), "--stall", "3s", "--action", "warn", "--label", "system test")
    listed = jtm("list").stdout
    registered = set(task_states())
    if "10005" not in listed or registered != REGISTERED:
        raise CheckFailed(f"registered {sorted(registered)}; jtm list shows:\n{listed}")
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
    good = with_poll_interval(CONFIG.read_text(), "4s")
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
        time.sleep(1)  # a crash after the refusal would show by now
        if prop("ActiveState") != "active" or prop("MainPID") != pid:
            raise CheckFailed("the service did not stay active in the same process")
    finally:
        set_config(good)
    mark = now_us()
    run("systemctl", "reload", UNIT)
    wait_for("daemon.reloaded after the fix", lambda: logged(mark, "daemon.reloaded"), 30)
    return (
        f"reload applied poll.interval 4s (daemon.reloaded {reloaded[0].get('changed')}); "
        f"a broken config was refused ({failed[0].get('error')!r}), service active, "
        f"same pid {pid}"
    )


def check_polled_to_the_end() -> str:
    expected = {"10001": "COMPLETE", "10003": "FAILED", "10004": "DEAD"}

    def ended() -> dict[str, tuple[str, str | None]] | None:
        found = task_states()
        done = all(found.get(t) == ("finished", s) for t, s in expected.items())
        return found if done and found.get("99999", ("",))[0] == "gone" else None

    try:
        found = wait_for("tasks polled to their end", ended, 120)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}: {task_states()}") from None
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
    snapshots = query("SELECT count(*) FROM snapshots")[0][0]
    ends = ", ".join(f"{t} {found[t][1]}" for t in expected)
    return (
        f"{ends}, 99999 gone ({snapshots} snapshots); one "
        f"task.finished each; {len(lines)} JSON lines each under its level's priority; "
        f"journalctl -p warning: {dict(levels)} of them, none of the {infos} info lines"
    )
