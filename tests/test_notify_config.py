"""[[notify]] in the config: validated whole, one line per mistake (exit 78), secrets never
echoed; Apprise needed only by the channels that use it, and imported by nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.notify.channels import Channel
from monitor.notify.events import NotifyEvent
from tests.conftest import RunCli
from tests.helpers import JTM, base_env

SECRET = "T000/B000/XXXXsecretXXXX"


def _config(config: Path, notify: str) -> Path:
    config.write_text(config.read_text() + notify)
    return config


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "a"\nurl = "json://h/"\ncolour = "red"', "unknown key notify.colour"),
        ('url = "json://h/"', "notify.name"),
        ('name = "a b"\nurl = "json://h/"', "notify.name"),
        ('name = "a"', "notify.url in channel 'a'"),
        (f'name = "a"\nurl = "{SECRET}"', "not an Apprise URL"),
        ('name = "a"\nurl = "exec:"', "exec: names no command"),
        ('name = "a"\nurl = "json://h/"\nevents = ["task.finish"]', "matches no event"),
        ('name = "a"\nurl = "json://h/"\nstatuses = ["BROKEN"]', "not a Jira status"),
        ('name = "a"\nurl = "json://h/"\nmax_per_minute = 0', "max_per_minute = 0"),
        ('name = "a"\nurl = "json://h/"\nretry_backoff = "soon"', "retry_backoff"),
        ('name = "a"\nurl = "json://h/"\nlabels = [1]', "list of strings"),
    ],
)
def test_a_bad_channel_is_one_line_naming_it_and_exit_78(
    config: Path, run: RunCli, table: str, message: str
) -> None:
    _config(config, f"\n[[notify]]\n{table}\n")
    result = run("list")
    assert result.exit_code == 78
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert SECRET not in result.output


def test_two_channels_of_one_name_are_refused(config: Path) -> None:
    one = '[[notify]]\nname = "a"\nurl = "json://h/"\n'
    _config(config, "\n" + one + one)
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(config, {})


def test_channels_are_read_with_their_filters(config: Path) -> None:
    _config(
        config,
        '\n[[notify]]\nname = "pager"\nurl = "exec:/usr/bin/logger -t jtm"\n'
        'events = ["task.*"]\nstatuses = ["failed", "DEAD"]\nlabels = "migration*"\n'
        "max_per_minute = 5\n",
    )
    (channel,) = load_settings(config, {}).notify
    assert channel.command == ["/usr/bin/logger", "-t", "jtm"]
    assert channel.statuses == ("FAILED", "DEAD")
    assert channel.shown_url == "exec:/usr/bin/logger"
    assert channel.wants(NotifyEvent.TASK_FINISHED, "FAILED", "Migration 7", True)
    assert not channel.wants(NotifyEvent.TASK_FINISHED, "COMPLETE", "Migration 7", True)
    assert not channel.wants(NotifyEvent.TASK_FINISHED, "FAILED", "other", True)
    assert channel.wants(NotifyEvent.TASK_TIMEOUT, None, "MIGRATION", True)
    assert not channel.wants(NotifyEvent.SITE_PAUSED, None, None, False)  # not task.*


def test_a_channel_url_is_never_shown_whole() -> None:
    channel = Channel("chat", f"slack://{SECRET}")
    assert SECRET not in repr(channel)
    assert channel.shown_url == "slack://..."


def test_an_apprise_url_without_apprise_is_a_config_error(tmp_path: Path, config: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['apprise'] = None\n")
    _config(config, '\n[jira]\nurl = "http://127.0.0.1:9"\nemail = "a@b.c"\n')
    _config(config, f'\n[[notify]]\nname = "chat"\nurl = "slack://{SECRET}"\n')
    env = base_env(JTM_JIRA_TOKEN="t0ken-t0ken", PYTHONPATH=str(hide))
    done = subprocess.run(
        [*JTM, "--config", str(config), "run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert "jira-task-monitor[apprise]" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    listed = subprocess.run(
        [*JTM, "--config", str(config), "notify", "test"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 78
    checked = subprocess.run(
        [*JTM, "--config", str(config), "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert checked.returncode == 78
    assert "FAIL  notify" in checked.stdout
    assert SECRET not in checked.stdout + checked.stderr


def test_an_url_apprise_does_not_know_is_refused(config: Path, run: RunCli) -> None:
    _config(config, f'\n[[notify]]\nname = "x"\nurl = "nosuchservice://{SECRET}"\n')
    result = run("notify", "test")
    assert result.exit_code == 78
    assert "not a URL that Apprise understands" in result.output
    assert SECRET not in result.output


def test_other_commands_never_import_apprise(config: Path) -> None:
    _config(config, '\n[[notify]]\nname = "chat"\nurl = "json://127.0.0.1:9/"\n')
    for args in (["list"], ["status"], ["notify", "list"]):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "monitor", "--config", str(config), *args],
            capture_output=True,
            check=False,
            text=True,
            env=base_env(),
            timeout=60,
        )
        assert " apprise" not in done.stderr, args


def test_notify_list_shows_channels_and_their_outbox(config: Path, run: RunCli) -> None:
    _config(config, '\n[[notify]]\nname = "chat"\nurl = "json://127.0.0.1:9/"\n')
    assert run("db", "upgrade").exit_code == 0
    result = run("notify", "list")
    assert result.exit_code == 0
    assert "chat  json://...  events *; at most 20/min" in result.output
    assert "outbox: 0 pending, 0 failed, 0 sent" in result.output
