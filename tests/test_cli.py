"""The task commands through click's runner: shapes, formats and exit codes."""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from monitor.cli import COMMAND_MODULES, cli
from monitor.database import SCHEMA_HEAD, open_database
from monitor.store import Store
from tests.conftest import RunCli
from tests.databases import (
    config_on_db_url,  # noqa: F401 (the `config` fixture, on both databases)
    db_url_on_both,  # noqa: F401 (the `db_url` fixture, on both databases)
)
from tests.helpers import JTM, base_env, polled, record

SHOW_KEYS = {
    "task_id", "state", "status", "progress", "label", "registered_at", "finished_at",
    "cancel_requested_at", "timed_out", "events",
}  # fmt: skip
HISTORY_KEYS = ["task_id", "observed_at", "status", "progress", "message", "elapsed_runtime_ms"]


def _store(config: Path) -> Store:
    return Store(open_database(tomllib.loads(config.read_text())["database"]["url"]))


def test_add_list_show_remove(run: RunCli, config: Path) -> None:
    result = run("add", "10042", "https://x.atlassian.net/rest/api/3/task/10043/", "--run", "2h",
                 "--action", "warn", "--label", "reindex")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == "added: 10042 10043\n"
    assert run("add", "10042", "--stall", "15m").output == "updated: 10042\n"

    listed = json.loads(run("list", "--json").output)
    assert [t["task_id"] for t in listed] == ["10042", "10043"] or len(listed) == 2
    by_id = {t["task_id"]: t for t in listed}
    assert by_id["10042"]["limits"] == {
        "total_s": None, "queued_s": None, "run_s": 7200.0, "stall_s": 900.0, "action": "warn",
    }  # fmt: skip
    assert by_id["10042"]["label"] == "reindex"
    assert "events" not in by_id["10042"]

    shown = json.loads(run("show", "10042", "--json").output)
    assert set(shown) >= SHOW_KEYS
    assert (shown["state"], shown["status"], shown["timed_out"]) == ("watching", None, None)
    assert [e["kind"] for e in shown["events"]] == ["registered", "updated"]
    assert shown["registered_at"].endswith("Z")

    table = run("list").output.splitlines()
    assert table[0].split() == ["TASK", "STATE", "STATUS", "PROGRESS", "AGE", "SEEN", "TIMEOUT",
                                "LABEL"]  # fmt: skip
    assert len(table) == 3

    assert run("remove", "10043").output == "removed: 10043\n"
    assert [t["task_id"] for t in json.loads(run("list", "--json").output)] == ["10042"]
    assert len(json.loads(run("list", "--all", "--json").output)) == 2
    removed = json.loads(run("list", "--state", "removed", "--json").output)
    assert [t["task_id"] for t in removed] == ["10043"]
    assert "timeline" in run("show", "10043").output


def test_add_reads_ids_from_stdin(run: RunCli) -> None:
    result = run("add", "-", stdin="1 2\n# a comment\n3  # another\n\n")
    assert result.exit_code == 0, result.output
    assert len(json.loads(run("list", "--json").output)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "../etc/passwd"], "invalid task ID"),
        (["add", "a" * 65], "longer than 64"),
        (["add", "has space"], "invalid task ID"),
        (["add", ""], "empty"),
        (["add", "http://evil.example.com/rest/api/3/task/1"], "loopback"),
        (["add", "https://x.atlassian.net/rest/api/3/issue/1"], "must end in"),
        (["add", "1", "--run", "soon"], "not a duration"),
        (["add", "1", "--action", "explode"], "explode"),
        (["add", "1", "--run", "99999999999d"], "must be at most 36500d"),
        (["add", "1", "--label", "a\x1b]0;owned\x07b"], "control characters"),
        (["add", "1", "--label", "line\roverwritten"], "control characters"),
        (["add", "1", "--label", "\u202egnp.exe"], "control characters"),
        (["add", "1", "--label", "c1 \x9b2J"], "control characters"),
        (["history", "--since", "99999999999d"], "must be at most 36500d"),
        (["history", "--json", "--csv"], "one of"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(run: RunCli, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert json.loads(run("list", "--all", "--json").output) == []  # nothing was written


@pytest.mark.parametrize("args", [["show", "9"], ["remove", "9"], ["history", "9"]])
def test_unknown_id_is_exit_3(run: RunCli, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 3
    assert "not registered: 9" in result.output


def test_bad_config_is_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[poll]\ninterval = 'often'\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "list"], env={})
    assert result.exit_code == 78
    assert "poll.interval" in result.output and "often" in result.output


def test_history_newest_first_as_json_and_csv(run: RunCli, config: Path) -> None:
    run("add", "1", "2")
    store = _store(config)
    start = datetime.now(UTC) - timedelta(hours=3)
    for i in range(4):
        task = store.get(str(i % 2 + 1))
        at = start + timedelta(hours=i)
        assert store.record_polls([polled(task, at, "RUNNING", i * 10)])[0]
    store.engine.dispose()

    rows = json.loads(run("history", "--json").output)
    assert [r["progress"] for r in rows] == [30, 20, 10, 0]
    assert all(set(HISTORY_KEYS) <= set(r) for r in rows)
    assert [r["progress"] for r in json.loads(run("history", "1", "--json").output)] == [20, 0]
    recent = json.loads(run("history", "--since", "90m", "--json").output)
    assert [r["progress"] for r in recent] == [30, 20]
    assert len(json.loads(run("history", "--limit", "1", "--json").output)) == 1

    parsed = list(csv.DictReader(io.StringIO(run("history", "--csv").output)))
    assert list(parsed[0])[: len(HISTORY_KEYS)] == HISTORY_KEYS
    assert [r["progress"] for r in parsed] == ["30", "20", "10", "0"]


def test_list_all_keeps_the_state_filter(run: RunCli) -> None:
    assert run("add", "1", "2", "3").exit_code == 0
    assert run("remove", "2").exit_code == 0

    def listed(*args: str) -> list[str]:
        result = run("list", *args, "--json")
        assert result.exit_code == 0, result.output
        return sorted(t["task_id"] for t in json.loads(result.output))

    assert listed("--all") == ["1", "2", "3"]
    assert listed("--all", "--state", "removed") == ["2"]  # filters combine; --all widens only
    assert listed("--all", "--state", "finished") == []
    assert listed("--state", "watching", "--state", "removed", "--all") == ["1", "2", "3"]
    assert listed() == ["1", "3"]


def test_a_task_url_of_another_site_is_refused_naming_both(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[jira]\nurl = "https://example.atlassian.net"\nemail = "ops@example.com"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n'
    )

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), *args], input=stdin)

    other = "https://other-site.example/rest/api/3/task/3"
    for args, stdin in (
        (["add", other], None), (["add", "-"], other), (["show", other], None),
        (["remove", other], None), (["cancel", other], None), (["watch", other], None),
    ):  # fmt: skip
        result = run(*args, stdin=stdin)
        assert result.exit_code == 2, (args, result.output)
        assert "other-site.example" in result.output and "example.atlassian.net" in result.output
    assert run("add", "https://example.atlassian.net:443/rest/api/2/task/4/").exit_code == 0
    assert run("add", "https://EXAMPLE.atlassian.net/rest/api/3/task/5").exit_code == 0
    listed = json.loads(run("list", "--json").output)
    assert sorted(t["task_id"] for t in listed) == ["4", "5"]  # task 3 was never registered


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(run: RunCli, config: Path) -> None:
    assert run("add", "1", "--label", '=HYPERLINK("http://evil.example","x")').exit_code == 0
    assert run("add", "2", "--label", "@SUM(1+1)").exit_code == 0
    assert run("add", "3", "--label", 'plain, with "quotes"').exit_code == 0
    store = _store(config)
    at = datetime.now(UTC)
    for task_id, message in (("1", "+1+cmd|' /C calc'!A0"), ("2", "-2+3"), ("3", "\t=1")):
        assert record(store, task_id, at, "RUNNING", 5, message=message)
    store.engine.dispose()
    dangerous = ("=", "+", "-", "@", "\t", "\r")

    tasks = {r["task_id"]: r for r in csv.DictReader(io.StringIO(run("list", "--csv").output))}
    assert tasks["1"]["label"] == '\'=HYPERLINK("http://evil.example","x")'
    assert tasks["2"]["label"] == "'@SUM(1+1)"
    assert tasks["3"]["label"] == 'plain, with "quotes"'
    assert tasks["1"]["message"] == "'+1+cmd|' /C calc'!A0"
    assert tasks["1"]["progress"] == "5"
    history = list(csv.DictReader(io.StringIO(run("history", "--csv").output)))
    assert {r["message"] for r in history} == {"'+1+cmd|' /C calc'!A0", "'-2+3", "'\t=1"}
    for row in [*tasks.values(), *history]:
        assert not any(str(v).startswith(dangerous) for v in row.values()), row
    # JSON stays exact.
    assert {t["label"] for t in json.loads(run("list", "--json").output)} >= {"@SUM(1+1)"}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    paths = _commands(cli)
    expected = {"add", "remove", "list", "show", "history", "watch", "status", "check", "prune",
                "run", "db", "simulate", "demo"}  # fmt: skip
    assert expected <= {path[0] for path in paths}
    assert ("db", "upgrade") in paths
    for path in [(), *paths]:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert re.search(r"Example:\n +(\w+=\S+ )?jtm ", result.output), path
        assert "Usage: " in result.output


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")],
)
def test_shell_completion_scripts_are_produced(shell: str, marker: str) -> None:
    result = subprocess.run(
        [*JTM],
        env=base_env(_JTM_COMPLETE=f"{shell}_source"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout and "_JTM_COMPLETE" in result.stdout


def test_completion_offers_commands_options_and_registered_ids(run: RunCli, config: Path) -> None:
    run("add", "10042", "10043", "20001")

    def complete(words: str) -> list[str]:
        result = subprocess.run(
            [*JTM],
            env=base_env(
                _JTM_COMPLETE="bash_complete",
                COMP_WORDS=words,
                COMP_CWORD=str(len(words.split()) - 1),
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]

    assert "history" in complete("jtm hi")
    assert {"--since", "--status", "--csv", "--label"} <= set(complete("jtm history --"))
    assert sorted(complete("jtm history --s")) == ["--since", "--state", "--status"]
    assert complete(f"jtm --config {config} show 1004") == ["10042", "10043"]
    assert complete("jtm list --status RU") == ["RUNNING"]
    assert complete(f"jtm --config {config.parent / 'none.toml'} show 1") == []


def test_db_upgrade_creates_then_reports_current(run: RunCli) -> None:
    first = run("db", "upgrade")
    assert first.exit_code == 0
    assert f"none -> {SCHEMA_HEAD}" in first.output
    assert f"already at schema {SCHEMA_HEAD}" in run("db", "upgrade").output


def test_simulate_serves_the_task_api_until_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text('[{"task_id": "s1", "run_s": 60}]')
    proc = subprocess.Popen(
        [*JTM, "simulate", "--port", "0", "--token", "t0ken-abc", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        url = re.search(r"simulator at (http://\S+) ", ready)
        assert url and "tasks: s1" in ready, ready
        config = tmp_path / "config.toml"
        config.write_text(
            f'[jira]\nurl = "{url.group(1)}"\nemail = "sim@example.com"\n'
            f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n'
        )
        checked = subprocess.run(
            [*JTM, "--config", str(config), "check"],
            env=base_env(JTM_JIRA_TOKEN="t0ken-abc"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_simulate_binds_loopback_only(run: RunCli) -> None:
    result = run("simulate", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "loopback" in result.output


def test_every_command_is_loaded_from_the_module_named_for_it() -> None:
    ctx = click.Context(cli)
    for name, module in COMMAND_MODULES.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.callback is not None
        assert command.callback.__module__ == f"monitor.cli.{module}" or isinstance(
            command, click.Group
        )
    defined = {
        c.name
        for m in set(COMMAND_MODULES.values())
        for c in importlib.import_module(f"monitor.cli.{m}").COMMANDS
    }
    assert defined == set(COMMAND_MODULES)  # a command missing from the map would be invisible


def test_a_command_imports_only_its_own_module() -> None:
    probe = (
        "import sys\n"
        "from monitor.cli import main\n"
        "sys.argv = ['jtm', 'history', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('monitor.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = out.strip().splitlines()[-1]
    assert "monitor.cli.tasks" in loaded
    for other in ("inspect", "service", "cancel"):
        assert f"monitor.cli.{other}'" not in loaded


@pytest.mark.parametrize(
    ("argv", "talks_to_jira"),
    [
        (["list"], False),
        (["history", "--json"], False),
        (["show", "10001"], False),
        (["status", "--json"], False),
        (["check"], True),
    ],
)
def test_only_the_commands_that_talk_to_jira_load_the_http_client(
    run: RunCli, config: Path, argv: list[str], talks_to_jira: bool
) -> None:
    """`requests` costs a command's start about as much as the rest of the package: the
    commands that only read the database do without it (monitor.jira loads its client on
    first use)."""
    run("add", "10001")
    probe = (
        "import sys\n"
        "from monitor.cli import main\n"
        f"sys.argv = ['jtm', '--config', {str(config)!r}, *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('requests' in sys.modules, 'monitor.jira.client' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        # A site that refuses connections at once: `check` tries it and fails.
        env=base_env(
            JTM_JIRA_URL="http://127.0.0.1:9", JTM_JIRA_EMAIL="a@b.example", JTM_JIRA_TOKEN="t"
        ),
        check=False,
        timeout=60,
    )
    loaded = result.stdout.strip().splitlines()[-1]
    assert loaded == f"{talks_to_jira} {talks_to_jira}", result.stderr[-2000:]


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["show", "--help"]])
def test_help_loads_no_database_library(argv: list[str]) -> None:
    """Help (and shell completion of commands) stays quick: SQLAlchemy is loaded by the
    commands that open a database, when they run, not by their modules."""
    probe = (
        "import sys\n"
        "from monitor.cli import main\n"
        f"sys.argv = ['jtm', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip().splitlines()[-1] == "False"
