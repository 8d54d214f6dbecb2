#!/usr/bin/env python3
"""The system test's checks, run as root inside a booted Debian by system-test.service.

The test boots two machines side by side, each with systemd as PID 1; the kernel's command
line names the machine's role (`systemtest.role=`), which chooses its checks:

- install: nothing of the monitor installed; the README's guide runs as written, then the
  service it leaves, the operator's CLI, reload and polling (install_checks.py), and the exit
  codes that must not restart (service_checks.py);
- upgrade: the previous release installed by its own README's guide when the image was built;
  the upgrade to this commit by the README's commands (upgrade_check.py), then, on the
  upgraded service, the watchdog and a stop while a request hangs (service_checks.py).

The two take about as long as each other under emulation, which is what decides the split.

Each check prints one line on the console, with the number of the README's list:

    SYSTEST <n> ok: <what was seen>
    SYSTEST <n> FAIL: <why>

and `SYSTEST done` ends the run; tests/system/boot.py on the host reads them. Checks run in
the order listed: later ones rely on what earlier ones set up (the install, the registered
tasks, a 4 s poll interval: a tick each second), and one that cannot run because the install
failed says so.

Standard library only: this runs on Debian's own python3, beside the installed venv.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import install_checks, service_checks, upgrade_check
from .systest import WORK, CheckFailed

Check = tuple[int, Callable[[], str]]

ROLES: dict[str, list[Check]] = {
    "install": [
        (1, install_checks.check_install_guide),
        (2, install_checks.check_service),
        (9, install_checks.check_credential),
        (10, install_checks.check_security),
        (3, install_checks.check_operator),
        (5, install_checks.check_reload),
        (4, install_checks.check_polled_to_the_end),
        (8, service_checks.check_exit_codes),  # last: it leaves the service stopped
    ],
    "upgrade": [
        (11, upgrade_check.check_upgrade),
        (6, service_checks.check_watchdog),
        (7, service_checks.check_stop_while_request_hangs),
    ],
}


def role() -> str:
    """The machine's role, from the kernel's command line."""
    for word in Path("/proc/cmdline").read_text().split():
        if word.startswith("systemtest.role="):
            return word.split("=", 1)[1]
    return ""


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)
    name = role()
    if name not in ROLES:
        print(f"SYSTEST 0 FAIL: no checks for role {name!r} (systemtest.role=)", flush=True)
        print("SYSTEST done", flush=True)
        return 1
    failed = 0
    for number, check in ROLES[name]:
        started = time.monotonic()
        if number != 1 and not shutil.which("jtm"):
            outcome = "FAIL: not run: jtm is not installed"
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
