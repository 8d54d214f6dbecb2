"""Failing storage: a read-only file system is named as such, an empty file is refused."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result

from monitor.checks import check_database
from monitor.database import open_database, read_only_filesystem
from monitor.errors import StoreError
from tests.conftest import RunCli
from tests.helpers import JTM, base_env

# -- a read-only file system ------------------------------------------------------------------


def test_erofs_means_a_read_only_file_system(tmp_path: Path) -> None:
    assert read_only_filesystem(tmp_path / "x.db", OSError(errno.EROFS, "Read-only file system"))
    assert not read_only_filesystem(tmp_path / "x.db", OSError(errno.EACCES, "Permission denied"))
    assert not read_only_filesystem(tmp_path / "missing" / "x.db")  # a writable parent decides


def _in_a_mount_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) as root of a user and mount namespace of its own: no real root needed,
    and its mounts vanish with it."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only file system without root")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here: {probe.stderr.decode().strip()}")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-ec", script],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )


def test_a_read_only_file_system_is_named_as_such(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{mount / "monitor.db"}"\n')
    other = tmp_path / "other.toml"
    other.write_text(f'[database]\nurl = "sqlite:///{mount / "new" / "monitor.db"}"\n')
    jtm = " ".join([*JTM, "--config"])
    python = f"{sys.executable} -c"
    probe = "from pathlib import Path; from monitor.database import read_only_filesystem as ro"
    check = "from monitor.checks import check_database as c"
    fix = f'assert "remount" in (c("sqlite:///{mount}/monitor.db").fix or "")'
    script = f"""
        mount -t tmpfs -o size=1m tmpfs {mount}
        {jtm} {config} list >/dev/null
        mount -o remount,ro {mount}
        {python} '{probe}; assert ro(Path("{mount}/monitor.db")) and not ro(Path("{tmp_path}"))'
        {python} '{check}; {fix}'
        {jtm} {config} list || echo "exit $?"
        {jtm} {other} list || echo "exit $?"
    """
    done = _in_a_mount_namespace(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["exit 78", "exit 78"]
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("jtm: error: database sqlite:///")
    assert f"the file system holding {mount} is mounted read-only" in lines[0]
    assert (
        f"cannot create sqlite:///{mount}/new/monitor.db: the file system holding {mount}"
        in (lines[1])
    )
    assert "Traceback" not in done.stderr


# -- an empty file where the database should be --------------------------------------------


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.db"
    path.touch()
    return path


def _refused(result: Result) -> str:
    assert result.exit_code == 78, result.output
    [line] = result.output.splitlines()
    assert "is an empty file (0 bytes), not a jtm database" in line
    assert "jtm db upgrade" in line
    return line


@pytest.mark.parametrize(
    "args",
    [("list",), ("add", "10042"), ("status",), ("history",), ("prune",), ("show", "1")],
)
def test_an_empty_database_file_is_refused_and_left_untouched(
    run: RunCli, empty_db: Path, args: tuple[str, ...]
) -> None:
    _refused(run(*args))
    assert empty_db.stat().st_size == 0
    assert sorted(p.name for p in empty_db.parent.iterdir()) == ["config.toml", "monitor.db"]


def test_the_daemon_refuses_an_empty_database_file(empty_db: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f'[jira]\nurl = "http://127.0.0.1:9"\nemail = "a@example.com"\n'
        f'[database]\nurl = "sqlite:///{empty_db}"\n'
    )
    done = subprocess.run(
        [*JTM, "--config", str(config), "run"],
        capture_output=True,
        text=True,
        env=base_env(JTM_JIRA_TOKEN="t"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    [line] = done.stderr.splitlines()
    assert "is an empty file (0 bytes)" in line
    assert empty_db.stat().st_size == 0


def test_check_reports_an_empty_database_file(empty_db: Path) -> None:
    check = check_database(f"sqlite:///{empty_db}")
    assert (check.ok, check.exit_code) == (False, 78)
    assert "is an empty file (0 bytes)" in check.detail
    assert check.fix is not None and check.fix.startswith("restore the database from a backup")
    assert empty_db.stat().st_size == 0


def test_db_upgrade_makes_a_database_of_an_empty_file(run: RunCli, empty_db: Path) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "schema none ->" in result.output
    assert run("list").exit_code == 0


def test_a_new_database_is_never_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    open_database(f"sqlite:///{path}").dispose()
    assert path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("monitor.db")) == []


def test_open_database_refuses_an_empty_file(empty_db: Path) -> None:
    with pytest.raises(StoreError, match="empty file"):
        open_database(f"sqlite:///{empty_db}")
    assert os.stat(empty_db).st_size == 0
