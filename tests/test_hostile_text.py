"""Text from Jira, from a label or in an error that tries to act on a terminal.

One catalogue of control sequences goes into every place such text can come from (a label,
Jira's status, message and description, an error text, a path), and every human output
(`list`, `show`, `history`, `watch`, `status`, `check`, and error messages) must show it
escaped: no byte that a terminal acts on may leave, except the program's own colours. JSON
output keeps the text exact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import PollSettings, load_settings
from monitor.database import open_database
from monitor.errors import JiraServerError
from monitor.jira import TaskInfo
from monitor.observation import observe, observe_failure
from monitor.store import Registration, Store
from monitor.store.queries import Filters, Queries
from monitor.watch import Look, load_view, render

CATALOGUE = {
    "csi": "\x1b[2J\x1b[1;1H",
    "osc title": "\x1b]0;owned\x07",
    "osc 8 link": "\x1b]8;;https://evil.example/\x1b\\harmless\x1b]8;;\x1b\\",
    "dcs": "\x1bP1$r0m\x1b\\",
    "c1": "\x9b2J\x9d0;owned\x9c\x90x\x9c",
    "carriage return": "safe\rOVERWRITTEN",
    "bidi": "\u202etxt.exe\u202c \u2066\u2067x\u2069\u200f",
    "nul": "nul\x00byte",
    "bell and backspace": "\x07\x08\x08",
}
HOSTILE = "[" + "|".join(CATALOGUE.values()) + "]"
SHOWN = ("\\x1b]0;owned\\x07", "\\x9b2J", "safe\\rOVERWRITTEN", "\\u202etxt.exe", "nul\\x00byte")
"""Parts of the catalogue as they must appear: escaped, still readable."""

OWN_STYLING = re.compile(r"\x1b\[[0-9;]*m")
ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What a terminal acts on: C0 but the line feed, DEL, C1, and bidi controls."""


def assert_inert(text: str, what: str) -> None:
    found = ACTIVE.findall(OWN_STYLING.sub("", text))
    assert not found, f"{what}: unescaped {sorted(set(found))!r} in {text!r}"


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A database where every text field holds the catalogue: a task that Jira described
    with it and that then failed with it, registered with it as its label."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "monitor.db"}"\n')
    store = Store(open_database(f"sqlite:///{tmp_path / 'monitor.db'}"))
    now = datetime.now(UTC)
    # The command line refuses such a label; an older version, or SQL, may have stored one.
    store.register(["h1", "h2"], Registration(label=HOSTILE), now)
    info = TaskInfo(
        task_id="h1", status="RUNNING" + HOSTILE, progress=40, message=HOSTILE,
        description=HOSTILE, result={"x": HOSTILE}, elapsed_runtime_ms=1000, submitted=now,
        started=now, finished=None, last_update=now,
    )  # fmt: skip
    poll = PollSettings()
    for task_id in ("h1", "h2"):
        assert store.record_polls([observe(store.get(task_id), info, now, poll)])[0]
    error = JiraServerError(f"get task h1: HTTP 500 Internal Server Error: {HOSTILE}", status=500)
    assert store.record_polls([observe_failure(store.get("h1"), error, now, poll)])[0]
    store.engine.dispose()
    return config


def _run(config: Path, *args: str, color: bool) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(config), *args], color=color, env={"COLUMNS": "1000"}
    )


@pytest.mark.parametrize("color", [True, False], ids=["terminal", "pipe"])
@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--all", "--label", "*"),
        ("show", "h1"),
        ("history",),
        ("history", "h1", "--limit", "1"),
        ("watch", "--once"),
        ("status",),
    ],
    ids=lambda args: " ".join(args)[:20],
)
def test_human_output_shows_hostile_text_escaped(
    hostile: Path, args: tuple[str, ...], color: bool
) -> None:
    result = _run(hostile, *args, color=color)
    assert result.exit_code in (0, 1), result.output  # status: 1, no daemon
    assert_inert(result.stdout, f"jtm {args[0]} stdout")
    assert_inert(result.stderr, f"jtm {args[0]} stderr")
    if args[0] != "status":  # status shows no label, only the error
        assert all(part in result.stdout for part in SHOWN), result.stdout


def test_status_shows_the_error_escaped(hostile: Path) -> None:
    out = _run(hostile, "status", color=True).stdout
    assert "\\x1b]0;owned\\x07" in out and "server_error" in out


def test_the_live_view_on_a_terminal_shows_hostile_text_escaped(hostile: Path) -> None:
    settings = load_settings(hostile, {})
    engine = open_database(settings.database.url)
    try:
        view = load_view(
            Queries(engine), settings=settings, filters=Filters(), now=datetime.now(UTC),
            recent_s=300,
        )  # fmt: skip
    finally:
        engine.dispose()
    for look in (Look(colour=True, unicode=True), Look()):
        lines = render(view, 400, 40, look)
        assert_inert("\n".join(lines), "watch frame")
        assert any("\\x1b]0;owned\\x07" in line for line in lines)


@pytest.mark.parametrize("color", [True, False], ids=["terminal", "pipe"])
def test_check_and_error_messages_show_a_hostile_path_escaped(tmp_path: Path, color: bool) -> None:
    # A path carries everything but "/" and NUL; the catalogue goes in a folder's name.
    folder = tmp_path / HOSTILE.replace("/", "_").replace("\x00", "0")
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(
        '[jira]\nurl = "https://example.atlassian.net"\nemail = "ops@example.com"\n'
        f'[database]\nurl = "sqlite:///{folder / "monitor.db"}"\n'
    )
    check = _run(config, "check", color=color)
    assert check.exit_code == 78, check.output  # no token
    missing = _run(folder / "missing.toml", "list", color=color)
    assert missing.exit_code == 78
    for result, what in ((check, "check"), (missing, "error")):
        assert_inert(result.stdout, f"{what} stdout")
        assert_inert(result.stderr, f"{what} stderr")
        assert "\\x1b]0;owned\\x07" in result.output, result.output


def test_json_output_keeps_the_text_exact(hostile: Path) -> None:
    shown = json.loads(_run(hostile, "show", "h1", "--json", color=False).stdout)
    assert (shown["label"], shown["message"], shown["description"]) == (HOSTILE,) * 3
    assert shown["status"] == "RUNNING" + HOSTILE
    assert shown["result"] == {"x": HOSTILE}
    assert HOSTILE in shown["last_error"]
    listed = json.loads(_run(hostile, "list", "--json", color=False).stdout)
    assert {task["label"] for task in listed} == {HOSTILE}
    history = json.loads(_run(hostile, "history", "--json", color=False).stdout)
    assert {row["message"] for row in history} == {HOSTILE}
