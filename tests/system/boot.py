"""Boot the system test's machines under QEMU and report the checks they print on their consoles.

    python3 tests/system/boot.py WORKDIR [--timeout SECONDS]

WORKDIR holds what tests/system/build-image made: vmlinuz, initrd.img and one disk per
machine (disk-<role>.img). The machines boot side by side under software emulation (`-accel
tcg`: nested virtualisation is not reliable enough to depend on), with no network, each with
its serial console written to WORKDIR/console-<role>.log. Inside, system-test.service runs the
checks of the machine's role (guest/checks.py, told by `systemtest.role=` on the kernel's
command line), which print `SYSTEST <n> ok: ...` or `SYSTEST <n> FAIL: ...` per check and
`SYSTEST done`, then power the machine off.

This prints each check's line as it arrives, then a summary; it exits 1 if any check failed,
if one of a machine's checks never reported, or if a machine did not finish within the timeout
(then it is killed). On failure the end of that machine's console log is printed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Each machine's checks (the numbers of the README's list), as guest/checks.py runs them.
ROLES = {"install": [1, 2, 9, 10, 3, 5, 4, 8], "upgrade": [11, 6, 7]}
RESULT = re.compile(r"SYSTEST (\d+) (ok|FAIL): (.*)$")
DONE = "SYSTEST done"
MEMORY_MB = 1536
# One processor each: this host's two cores run the two machines side by side, and a guest
# kernel with more virtual processors than it gets real ones loses its time in spinlocks.
CPUS = 1


def qemu_command(work: Path, role: str) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        str(MEMORY_MB),
        "-smp",
        str(CPUS),
        "-kernel",
        str(work / "vmlinuz"),
        "-initrd",
        str(work / "initrd.img"),
        "-append",
        f"root=/dev/vda rw console=ttyS0 quiet systemd.show_status=no systemtest.role={role}",
        "-drive",
        f"file={work / f'disk-{role}.img'},format=raw,if=virtio",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{work / f'console-{role}.log'}",
        "-no-reboot",
    ]


@dataclass
class Machine:
    role: str
    console: Path
    process: subprocess.Popen[bytes]
    results: dict[int, tuple[str, str]] = field(default_factory=dict)
    done: bool = False
    timed_out: bool = False
    seen: int = 0

    def read(self) -> bool:
        """Report the console's new lines; whether the machine has finished."""
        finished = self.process.poll() is not None
        lines = self.console.read_bytes().decode("utf-8", "replace").splitlines()
        complete = lines if finished else lines[:-1]  # the last may be half written
        for line in complete[self.seen :]:
            if DONE in line:
                self.done = True
            if match := RESULT.search(line):
                number, outcome, detail = int(match[1]), match[2], match[3]
                self.results[number] = (outcome, detail)
                print(f"system test {number:>2}: {outcome}: {detail}", flush=True)
        self.seen = max(self.seen, len(complete))
        return finished

    def kill(self) -> None:
        self.timed_out = True
        self.process.kill()
        self.process.wait()

    def problems(self, timeout: float) -> list[str]:
        expected = ROLES[self.role]
        missing = [n for n in expected if n not in self.results]
        failed = sorted(n for n, (outcome, _) in self.results.items() if outcome != "ok")
        found = []
        if self.timed_out:
            found.append(f"did not finish within {timeout:.0f} s")
        elif not self.done:
            found.append("its checks did not run to their end")
        if missing:
            found.append(f"checks {missing} did not report")
        if failed:
            found.append(f"checks {failed} failed")
        return [f"{self.role} machine: {problem}" for problem in found]


def boot(work: Path, timeout: float) -> list[Machine]:
    """Run the machines side by side until each has powered off (or the timeout)."""
    machines = []
    for role in ROLES:
        console = work / f"console-{role}.log"
        console.write_bytes(b"")
        process = subprocess.Popen(qemu_command(work, role), stdin=subprocess.DEVNULL)
        machines.append(Machine(role, console, process))
    deadline = time.monotonic() + timeout
    running = list(machines)
    try:
        while running:
            running = [m for m in running if not m.read()]
            if running and time.monotonic() > deadline:
                for machine in running:
                    machine.kill()
                break
            time.sleep(1)
    finally:
        for machine in machines:
            if machine.process.poll() is None:
                machine.kill()
    return machines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    machines = boot(args.work, args.timeout)
    took = time.monotonic() - started
    problems = [p for m in machines for p in m.problems(args.timeout)]
    if problems:
        for machine in machines:
            if machine.problems(args.timeout):
                console = machine.console.read_text("utf-8", "replace").splitlines()
                print(f"--- end of the {machine.role} machine's console log ---")
                print("\n".join([*console[-80:], "---"]))
        print(f"system test: FAILED after {took:.0f} s: {'; '.join(problems)}")
        return 1
    passed = sum(len(m.results) for m in machines)
    print(
        f"system test: {passed} passed, 0 failed ({len(machines)} machines booted and "
        f"checked in {took:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
