"""The system test's reading of the README's service guide (tests/system/guest/guide.py): what
the booted machines and the image build run must be the README's blocks, found in `make test`
already rather than minutes into a boot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.system.guest import guide

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_has_the_install_and_upgrade_blocks() -> None:
    install, upgrade = guide.block(README, "install"), guide.block(README, "upgrade")
    assert "python3 -m venv /opt/jira-task-monitor" in install
    assert "systemctl enable --now jira-task-monitor" in install
    assert "/opt/jira-task-monitor/bin/pip install" in upgrade
    assert "systemctl restart jira-task-monitor" in upgrade
    assert guide.commands(install) == 14
    assert guide.commands(upgrade) == 4


def test_the_script_runs_the_block_as_written_after_the_stand_ins() -> None:
    text = guide.script(README, "install", "/root/checkout")
    stand_ins, _, rest = text.partition("cd /root/checkout\n")
    assert rest == guide.block(README, "install")
    assert "editor()" in stand_ins and "systemd-ask-password()" in stand_ins
    assert "systemctl()" not in stand_ins  # only in a chroot


def test_in_a_chroot_systemctl_only_enables(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    block = (
        "systemctl daemon-reload\n"
        "systemctl enable --now jira-task-monitor\n"
        "systemctl status jira-task-monitor\n"
    )
    script = guide.PRELUDE + guide.CHROOT_PRELUDE + block
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True)
    assert calls.read_text() == "enable jira-task-monitor\n"


def test_a_readme_without_the_guide_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# A project\n\n## Run as a systemd service\n\nNo commands.\n")
    assert guide.main(["upgrade", str(readme), "/root/checkout"]) == 1
    assert capsys.readouterr().err.strip() == (
        f'guide.py: {readme}: no upgrade block in the README\'s "Run as a systemd service"'
    )
    readme.write_text("# A project\n")
    with pytest.raises(guide.GuideMissing, match='no "## Run as a systemd service" section'):
        guide.block(readme.read_text(), "install")
