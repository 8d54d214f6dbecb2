"""The README's service guide as shell scripts, run as written by the system test.

    python3 tests/system/guest/guide.py install|upgrade README CHECKOUT [--chroot]

prints the README's install (or upgrade) commands of "Run as a systemd service" as a bash
script that runs them from CHECKOUT, as written, with stand-ins for what an operator types:
`editor` points the config at the simulator, `systemd-ask-password` types its token. With
`--chroot` (the image build runs a release's guide in the image's root filesystem, where no
systemd runs), `systemctl enable` enables the unit for the boot and the other systemctl
commands are left to the booted machine.

Standard library only, and no imports of its package: the host (tests/system/build-image)
runs it as a script, the machines import it (install_checks.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SIMULATOR = "http://127.0.0.1:8089"  # the bundled simulator in the booted machine
SIM_TOKEN = "sim-token"
SECTION = "Run as a systemd service"

PRELUDE = f"""\
set -euxo pipefail
PS4='+ [${{SECONDS}}s] '
editor() {{
    sed -i -e 's|^url = .*|url = "{SIMULATOR}"|' -e 's|^email = .*|email = "sim@example.com"|' "$1"
}}
systemd-ask-password() {{ printf '%s\\n' {SIM_TOKEN}; }}
"""

# In a chroot: `enable --now` enables the unit (the boot starts it); reloads, starts and
# status need a running systemd and wait for the boot.
CHROOT_PRELUDE = """\
systemctl() {
    if [[ $1 == enable ]]; then
        local args=()
        for arg in "$@"; do [[ $arg == --now ]] || args+=("$arg"); done
        command systemctl "${args[@]}"
    fi
}
"""


class GuideMissing(Exception):
    """The README has no such block in its service section."""


def blocks(readme: str) -> list[str]:
    """The ```sh blocks of the README's service section, in order."""
    parts = readme.split(f"\n## {SECTION}\n", 1)
    if len(parts) != 2:
        raise GuideMissing(f'the README has no "## {SECTION}" section')
    section = parts[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def block(readme: str, kind: str) -> str:
    """The install guide (the block that enables the unit) or the upgrade (the block that
    reinstalls over a running service)."""
    for text in blocks(readme):
        if kind == "install" and "systemctl enable --now" in text:
            return text
        if kind == "upgrade" and "pip install" in text and "systemctl restart" in text:
            return text
    raise GuideMissing(f'no {kind} block in the README\'s "{SECTION}"')


def commands(text: str) -> int:
    """How many commands a block runs (its lines that are neither blank nor comments)."""
    lines = [line.strip() for line in text.splitlines()]
    return sum(1 for line in lines if line and not line.startswith("#"))


def script(readme: str, kind: str, checkout: str, *, chroot: bool = False) -> str:
    """The block as a bash script run from `checkout`, with the stand-ins before it."""
    prelude = PRELUDE + (CHROOT_PRELUDE if chroot else "")
    return f"{prelude}cd {checkout}\n{block(readme, kind)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("kind", choices=["install", "upgrade"])
    parser.add_argument("readme", type=Path)
    parser.add_argument("checkout")
    parser.add_argument("--chroot", action="store_true")
    args = parser.parse_args(argv)
    try:
        text = script(args.readme.read_text(), args.kind, args.checkout, chroot=args.chroot)
    except GuideMissing as exc:
        print(f"guide.py: {args.readme}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
