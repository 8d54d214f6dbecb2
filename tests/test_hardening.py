"""The unit's sandbox directives, reproduced without systemd, against the real daemon.

systemd cannot run here (it is not PID 1), so each directive that could break the daemon is
re-created by other means and the daemon is run under it through start, polls, a reload and a
stop, which exercises every thread it starts (scheduler, poll workers, SQLite, HTTP):
- `MemoryDenyWriteExecute=yes`: the same seccomp rules, loaded by `tests/mdwe.py`.
- `SystemCallFilter=@system-service ~@privileged @resources` and
  `RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`: every system call and socket family
  the daemon makes, traced with strace, must be in what the unit allows (as expanded by
  `systemd-analyze syscall-filter`). A call outside it would fail with EPERM under systemd.
Both runs serve the metrics endpoint and are scraped, so its listening socket and its
threads are held to the same rules.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.simulator import Simulator, TaskScript
from tests import mdwe
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import base_env, jtm, wait_for, write_config
from tests.notify import JournalDaemon, NotifyListener
from tests.scrape import free_port, scrape

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "jira-task-monitor.service"
MDWE = [sys.executable, str(Path(mdwe.__file__).resolve())]


def _mdwe_works() -> bool:
    if not mdwe.supported():
        return False
    probe = subprocess.run([*MDWE, sys.executable, "-c", "pass"], capture_output=True, check=False)
    return probe.returncode == 0


needs_mdwe = pytest.mark.skipif(not _mdwe_works(), reason="seccomp filters unavailable here")


def _unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


@needs_mdwe
def test_the_mdwe_filter_refuses_writable_executable_memory() -> None:
    # Without this, the test below would prove nothing.
    code = (
        "import mmap\n"
        "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)  # allowed\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except PermissionError:\n"
        "    raise SystemExit(42)\n"
    )
    assert subprocess.run([*MDWE, sys.executable, "-c", code], check=False).returncode == 42


@needs_mdwe
@pytest.mark.slow
def test_the_daemon_and_its_threads_run_under_memory_deny_write_execute(
    sim: Simulator, tmp_path: Path
) -> None:
    assert _unit_values("MemoryDenyWriteExecute") == ["yes"]
    for n in range(6):  # more tasks than workers: every pool thread gets started
        sim.add_task(TaskScript(f"m{n}", queued_s=0.1, run_s=0.5, outcome="COMPLETE"))
    port = free_port()
    config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": f"127.0.0.1:{port}"})
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN)
    assert jtm(config, "add", *(f"m{n}" for n in range(6)), env=env).returncode == 0
    daemon = JournalDaemon(config, env, journal_stream=None, wrapper=MDWE)
    try:
        wait_for(lambda: _count(daemon, "task.finished") == 6, what="6 tasks finished")
        assert "jtm_tasks_finished_total" in scrape(port)[0]  # the endpoint's threads too
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_event("daemon.reloaded")
    finally:
        assert daemon.stop() == 0, daemon.stderr
    assert "can't start new thread" not in daemon.stderr
    assert _count(daemon, "daemon.tick_failed") == 0
    assert _count(daemon, "poller.task_failed") == 0


def _count(daemon: JournalDaemon, event: str) -> int:
    return sum(1 for _, e in daemon.entries() if e["event"] == event)


def _syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        entry = line.strip()
        if line.startswith("@"):
            current = groups.setdefault(entry, [])
        elif not line.startswith("    "):
            current = None  # a blank line ends a group
        elif current is not None and not entry.startswith("#"):
            current.append(entry)
    return groups


def _expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found |= _expand(groups[name], groups) if name.startswith("@") else {name}
    return found


def _allowed_syscalls() -> set[str]:
    groups = _syscall_groups()
    allowed: set[str] = set()
    for value in _unit_values("SystemCallFilter"):
        if value.startswith("~"):
            allowed -= _expand(value[1:].split(), groups)
        else:
            allowed |= _expand(value.split(), groups)
    # systemd.exec(5): always permitted, so that the service can start and end.
    return allowed | {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}


@pytest.mark.skipif(
    not (shutil.which("strace") and shutil.which("systemd-analyze")),
    reason="needs strace and systemd-analyze",
)
@pytest.mark.slow
def test_every_system_call_and_socket_family_the_daemon_uses_is_allowed_by_the_unit(
    sim: Simulator, tmp_path: Path
) -> None:
    probe = subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode().strip()}")
    sim.add_task(TaskScript("s1", queued_s=0.1, run_s=0.5, outcome="COMPLETE"))
    sim.add_task(TaskScript("s2", queued_s=0.1, run_s=0.5, outcome="FAILED"))
    port = free_port()  # the metrics endpoint listens and is scraped, under the same rules
    config = write_config(tmp_path, sim, SIM_EMAIL, metrics={"listen": f"127.0.0.1:{port}"})
    trace = tmp_path / "trace"
    listener = NotifyListener()
    env = base_env(JTM_JIRA_TOKEN=SIM_TOKEN, NOTIFY_SOCKET=listener.address)
    assert jtm(config, "add", "s1", "s2", env=env).returncode == 0
    wrapper = ["strace", "-f", "-qq", "-o", str(trace)]
    daemon = JournalDaemon(config, {**env, "WATCHDOG_USEC": "2000000"}, wrapper=wrapper)
    try:
        listener.wait("READY", "1")
        pid = int(listener.with_key("READY")[0].fields["MAINPID"])
        wait_for(lambda: _count(daemon, "task.finished") == 2, what="2 tasks finished")
        assert "jtm_tasks_finished_total" in scrape(port)[0]
        listener.wait("WATCHDOG", "1")
        os.kill(pid, signal.SIGHUP)
        daemon.wait_event("daemon.reloaded")
        os.kill(pid, signal.SIGTERM)  # the daemon, not strace (which would detach)
        assert daemon.proc.wait(timeout=30) == 0, daemon.stderr
    finally:
        daemon.stop()
        listener.close()

    text = trace.read_text()
    used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)", text, re.M))
    assert {"socket", "sendto", "connect", "mmap", "mprotect"} <= used, sorted(used)
    assert {"bind", "listen"} <= used and used & {"accept", "accept4"}  # the endpoint
    assert used & {"clone", "clone3"}  # threads were started
    # Only as root (as tests may run), SQLite gives its -wal and -shm files the database's
    # owner with fchown(); the service runs as its own user (User=) and never does.
    root_only = {"fchown"} if os.geteuid() == 0 else set()
    assert sorted(used - _allowed_syscalls() - root_only) == []
    families = set(re.findall(r"\bsocket\((AF_[A-Z0-9]+)", text))
    allowed_families = set(" ".join(_unit_values("RestrictAddressFamilies")).split())
    assert families and families <= allowed_families, families
