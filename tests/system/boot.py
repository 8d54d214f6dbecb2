"""Boot the system test's image under QEMU and report the checks it prints on its console.

    python3 tests/system/boot.py WORKDIR [--timeout SECONDS]

WORKDIR holds what tests/system/build-image made (disk.img, vmlinuz, initrd.img). The machine
runs under software emulation (`-accel tcg`: nested virtualisation is not reliable enough to
depend on), with no network, its serial console written to WORKDIR/console.log. Inside,
system-test.service runs the checks (guest/checks.py), which print `SYSTEST <n> ok: ...` or
`SYSTEST <n> FAIL: ...` per check and `SYSTEST done`, then power the machine off.

This prints each check's line as it arrives, then a summary; it exits 1 if any check failed,
if one of EXPECTED never reported, or if the machine did not finish within the timeout (then
it is killed). On failure the end of the console log is printed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

EXPECTED = range(1, 12)  # the checks 1 to 11 of guest/checks.py
RESULT = re.compile(r"SYSTEST (\d+) (ok|FAIL): (.*)$")
DONE = "SYSTEST done"
MEMORY_MB = 2048
CPUS = 2


def qemu_command(work: Path) -> list[str]:
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
        "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=no",
        "-drive",
        f"file={work / 'disk.img'},format=raw,if=virtio",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{work / 'console.log'}",
        "-no-reboot",
    ]


def boot(work: Path, timeout: float) -> tuple[dict[int, tuple[str, str]], bool, bool]:
    """Run the machine; (results by check number, whether it said done, whether it timed
    out). Lines are echoed as they appear on the console."""
    console = work / "console.log"
    console.write_bytes(b"")
    results: dict[int, tuple[str, str]] = {}
    done = False
    started = time.monotonic()
    with subprocess.Popen(qemu_command(work), stdin=subprocess.DEVNULL) as machine:
        seen = 0
        timed_out = False
        while True:
            finished = machine.poll() is not None
            text = console.read_bytes().decode("utf-8", "replace")
            lines = text.splitlines()
            complete = lines if finished else lines[:-1]  # the last may be half written
            for line in complete[seen:]:
                if DONE in line:
                    done = True
                if match := RESULT.search(line):
                    number, outcome, detail = int(match[1]), match[2], match[3]
                    results[number] = (outcome, detail)
                    print(f"system test {number:>2}: {outcome}: {detail}", flush=True)
            seen = max(seen, len(complete))
            if finished:
                break
            if time.monotonic() - started > timeout:
                timed_out = True
                machine.kill()
                machine.wait()
                break
            time.sleep(1)
    return results, done, timed_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    results, done, timed_out = boot(args.work, args.timeout)
    took = time.monotonic() - started
    missing = [n for n in EXPECTED if n not in results]
    failed = sorted(n for n, (outcome, _) in results.items() if outcome != "ok")
    problems = []
    if timed_out:
        problems.append(f"the machine did not finish within {args.timeout:.0f} s")
    elif not done:
        problems.append("the checks did not run to their end")
    if missing:
        problems.append(f"checks {missing} did not report")
    if failed:
        problems.append(f"checks {failed} failed")
    if problems:
        console = (args.work / "console.log").read_text("utf-8", "replace").splitlines()
        print("\n".join(["--- end of the console log ---", *console[-80:], "---"]))
        print(f"system test: FAILED after {took:.0f} s: {'; '.join(problems)}")
        return 1
    print(f"system test: {len(results)} passed, 0 failed (booted and checked in {took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
