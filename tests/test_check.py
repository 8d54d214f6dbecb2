"""`jtm check` against the real simulator: every failure has its exit code and a fix."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from monitor.database import SCHEMA_HEAD
from monitor.simulator import Simulator
from tests.conftest import SIM_EMAIL, SIM_TOKEN
from tests.helpers import base_env, jtm, write_config


def check(config: Path, *args: str, token: str | None = SIM_TOKEN) -> tuple[int, str]:
    env = base_env(JTM_JIRA_TOKEN=token) if token is not None else base_env()
    result = jtm(config, "check", *args, env=env)
    assert "Traceback" not in result.stderr
    assert SIM_TOKEN not in result.stdout + result.stderr
    return result.returncode, result.stdout


def fixes(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("fix: ")]


def test_all_good(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    assert jtm(config, "db", "upgrade", env=base_env()).returncode == 0
    code, out = check(config)
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "config"], ["ok", "database"], ["ok", "token"], ["ok", "credentials"],
    ]  # fmt: skip
    assert f"schema {SCHEMA_HEAD} (current)" in lines[1]
    assert "from JTM_JIRA_TOKEN" in lines[2]
    assert "as Simulated Admin" in lines[3]
    assert fixes(out) == []


def test_a_missing_database_is_fine_and_is_not_created(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    code, out = check(config)
    assert code == 0, out
    assert "not created yet" in out
    assert not (tmp_path / "monitor.db").exists()


def test_rejected_credentials_exit_77(sim: Simulator, tmp_path: Path) -> None:
    code, out = check(write_config(tmp_path, sim, SIM_EMAIL), token="wrong-token")
    assert code == 77
    assert "FAIL  credentials" in out and "HTTP 401" in out
    assert len(fixes(out)) == 1 and "jira.email and the API token" in fixes(out)[0]


def test_an_unreachable_site_exits_69(tmp_path: Path) -> None:
    with Simulator() as gone:
        config = write_config(tmp_path, gone, SIM_EMAIL)
    code, out = check(config)  # the simulator has stopped: connection refused
    assert code == 69
    assert "cannot reach" in out and "check jira.url, DNS, proxy" in fixes(out)[0]


def test_a_server_in_trouble_exits_69(sim: Simulator, tmp_path: Path) -> None:
    from monitor.simulator import Fault

    sim.add_fault(Fault(kind="status", status=503, count=None))
    code, out = check(write_config(tmp_path, sim, SIM_EMAIL))
    assert code == 69 and "HTTP 503" in out and "status.atlassian.com" in out


@pytest.mark.parametrize(
    ("sections", "token", "expected"),
    [
        ({"poll": {"intervall": "5s"}}, SIM_TOKEN, ("poll.intervall", "correct the key")),
        ({"jira": {"url": ""}}, SIM_TOKEN, ("jira.url is required", "set jira.url")),
        ({}, None, ("no Jira token", "jira.token_file")),
    ],
)
def test_configuration_problems_exit_78(
    sim: Simulator,
    tmp_path: Path,
    sections: dict[str, dict[str, str]],
    token: str | None,
    expected: tuple[str, str],
) -> None:
    message, fix = expected
    code, out = check(write_config(tmp_path, sim, SIM_EMAIL, **sections), token=token)
    assert code == 78
    assert message in out and "FAIL" in out
    assert len(fixes(out)) == 1 and fix in fixes(out)[0]


def test_a_missing_config_file_exits_78(tmp_path: Path) -> None:
    code, out = check(tmp_path / "nowhere.toml")
    assert code == 78 and "config file not found" in out
    assert "config.example.toml" in fixes(out)[0]


@pytest.mark.parametrize(
    ("revision", "fix"),
    [("9999", "upgrade jira-task-monitor"), (None, "point database.url at jtm's")],
)
def test_a_database_this_jtm_cannot_use_exits_78(
    sim: Simulator, tmp_path: Path, revision: str | None, fix: str
) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL)
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        if revision is None:
            db.execute("CREATE TABLE something_else (x)")
        else:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    code, out = check(config)
    assert code == 78
    assert "FAIL  database" in out and fix in fixes(out)[0]
    assert "ok    credentials" in out  # the other checks still ran


def test_json_report(sim: Simulator, tmp_path: Path) -> None:
    code, out = check(write_config(tmp_path, sim, SIM_EMAIL), "--json", token="wrong-token")
    data = json.loads(out)
    assert code == 77 and data["ok"] is False and data["exit_code"] == 77
    assert [c["name"] for c in data["checks"]] == ["config", "database", "token", "credentials"]
    assert data["checks"][-1]["fix"] and data["checks"][0]["fix"] is None


def test_a_token_file_open_to_others_exits_78_with_the_chmod_to_run(
    sim: Simulator, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(SIM_TOKEN + "\n")
    token.chmod(0o644)
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"token_file": str(token)})
    code, out = check(config, token=None)
    assert code == 78
    assert "FAIL  token" in out and f"mode 0644): make it private with `chmod 600 {token}`" in out
    assert "chmod 600" in fixes(out)[0]
    run = jtm(config, "run", env=base_env())
    assert run.returncode == 78 and f"chmod 600 {token}" in run.stderr
    assert "Traceback" not in run.stderr
    token.chmod(0o600)
    assert check(config, token=None)[0] == 0


def test_a_bearer_token_beyond_latin_1_exits_78_in_one_line(sim: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, sim, SIM_EMAIL, jira={"auth": "bearer"})
    code, out = check(config, token="t\u20ac\u4e2d-token")
    assert code == 78
    assert "FAIL  token" in out and "outside Latin-1" in out
    run = jtm(config, "run", env=base_env(JTM_JIRA_TOKEN="t\u20ac\u4e2d-token"))
    assert run.returncode == 78, run.stderr
    assert run.stderr.count("\n") == 1 and "outside Latin-1" in run.stderr
