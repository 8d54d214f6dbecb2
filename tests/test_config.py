"""Configuration: search order, defaults, env overrides, validation messages, and the token."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from monitor.config import (
    SYSTEM_CONFIG_PATH,
    SYSTEM_STATE_DIR,
    Secret,
    Settings,
    default_database_url,
    find_config_path,
    load_settings,
    load_token,
)
from monitor.errors import ConfigError
from monitor.states import TimeoutAction

REPO = Path(__file__).resolve().parent.parent
CANARY = "canary-SECRET-123"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A hermetic environment: HOME inside tmp_path, nothing else."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_token(path: Path, content: str | bytes) -> Path:
    """A token file as it should be: readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o600)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str]) -> Settings:
    return load_settings(write(tmp_path / "conf" / "config.toml", text), env)


def attr(settings: Settings, dotted: str) -> object:
    return functools.reduce(getattr, dotted.split("."), settings)


def config_error(tmp_path: Path, text: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 78
    return message


# --- search order ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ({"explicit", "named", "xdg", "home", "system"}, "explicit"),
        ({"named", "xdg", "home", "system"}, "named"),
        ({"xdg", "home", "system"}, "xdg"),
        ({"home", "system"}, "system"),  # XDG_CONFIG_HOME set: ~/.config is not looked at
        ({"system"}, "system"),
        (set(), None),
    ],
)
def test_search_order(
    tmp_path: Path, env: dict[str, str], present: set[str], expected: str | None
) -> None:
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "named": tmp_path / "named.toml",
        "xdg": tmp_path / "xdg" / "jira-task-monitor" / "config.toml",
        "home": Path(env["HOME"]) / ".config" / "jira-task-monitor" / "config.toml",
        "system": tmp_path / "etc" / "config.toml",
    }
    for name in present:
        write(paths[name], "")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    if "named" in present:
        env["JTM_CONFIG"] = str(paths["named"])
    explicit = paths["explicit"] if "explicit" in present else None
    found = find_config_path(explicit, env, system_path=paths["system"])
    assert found == (paths[expected] if expected else None)


def test_search_defaults_to_home_config(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(Path(env["HOME"]) / ".config" / "jira-task-monitor" / "config.toml", "")
    assert find_config_path(None, env, system_path=tmp_path / "nope") == path
    env["XDG_CONFIG_HOME"] = "relative/dir"  # invalid per the XDG spec: ignored
    assert find_config_path(None, env, system_path=tmp_path / "nope") == path


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_named_config_must_exist(tmp_path: Path, env: dict[str, str], how: str) -> None:
    missing = tmp_path / "missing.toml"
    if how == "env":
        env["JTM_CONFIG"] = str(missing)
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        load_settings(missing if how == "explicit" else None, env)


def test_tilde_in_jtm_config_uses_env_home(env: dict[str, str]) -> None:
    path = write(Path(env["HOME"]) / "jtm.toml", "")
    env["JTM_CONFIG"] = "~/jtm.toml"
    assert load_settings(None, env).source == path


# --- defaults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("jira.url", None),
        ("jira.api_version", 3),
        ("jira.auth", "basic"),
        ("jira.email", None),
        ("jira.token_file", None),
        ("jira.timeout_s", 10.0),
        ("jira.verify_tls", True),
        ("jira.max_rps", 10.0),
        ("poll.interval_s", 30.0),
        ("poll.max_interval_s", 300.0),
        ("poll.concurrency", 4),
        ("timeouts.total_s", None),
        ("timeouts.queued_s", None),
        ("timeouts.run_s", None),
        ("timeouts.stall_s", None),
        ("timeouts.action", TimeoutAction.CANCEL),
        ("timeouts.cancel_grace_s", 300.0),
        ("retention.snapshots_s", 90 * 86400.0),
        ("log.format", "auto"),
        ("log.level", "info"),
    ],
)
def test_defaults(tmp_path: Path, env: dict[str, str], key: str, expected: object) -> None:
    assert attr(load(tmp_path, "", env), key) == expected


def test_default_database_and_source(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load(tmp_path, "", env)
    assert settings.source == tmp_path / "conf" / "config.toml"
    state = Path(env["HOME"]) / ".local" / "state" / "jira-task-monitor"
    assert settings.database.url == f"sqlite:///{state}/monitor.db"


@pytest.mark.parametrize(
    ("extra_env", "source", "expected_dir"),
    [
        ({"STATE_DIRECTORY": "/run/a:/run/b"}, SYSTEM_CONFIG_PATH, "/run/a"),
        ({"STATE_DIRECTORY": "/srv/jtm"}, None, "/srv/jtm"),
        ({}, SYSTEM_CONFIG_PATH, str(SYSTEM_STATE_DIR)),
        ({"XDG_STATE_HOME": "/xdg/state"}, None, "/xdg/state/jira-task-monitor"),
        ({"XDG_STATE_HOME": "/xdg/state"}, Path("/home/u/x.toml"), "/xdg/state/jira-task-monitor"),
        ({"XDG_STATE_HOME": "rel"}, None, "HOME/.local/state/jira-task-monitor"),
        ({}, None, "HOME/.local/state/jira-task-monitor"),
    ],
)
def test_default_database_url(
    env: dict[str, str], extra_env: dict[str, str], source: Path | None, expected_dir: str
) -> None:
    expected_dir = expected_dir.replace("HOME", env["HOME"])
    url = default_database_url(source, {**env, **extra_env})
    assert url == f"sqlite:///{expected_dir}/monitor.db"


# --- values from the file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (
            '[jira]\nurl = "https://x.atlassian.net/"\nemail = "a@b.c"',
            "jira.url",
            "https://x.atlassian.net",
        ),
        (
            '[jira]\nurl = "https://api.atlassian.com/ex/jira/abc-123"\nauth = "bearer"',
            "jira.url",
            "https://api.atlassian.com/ex/jira/abc-123",
        ),
        ("[jira]\napi_version = 2", "jira.api_version", 2),
        ('[jira]\nauth = "Bearer"', "jira.auth", "bearer"),
        ('[jira]\ntimeout = "1m30s"', "jira.timeout_s", 90.0),
        ("[jira]\ntimeout = 5", "jira.timeout_s", 5.0),
        ("[jira]\nverify_tls = false", "jira.verify_tls", False),
        ("[jira]\nmax_rps = 2.5", "jira.max_rps", 2.5),
        ('[jira]\ntoken_file = "secret/token"', "jira.token_file", "CONF/secret/token"),
        ('[jira]\ntoken_file = "~/token"', "jira.token_file", "HOME/token"),
        ('[jira]\ntoken_file = "/abs/token"', "jira.token_file", "/abs/token"),
        ('[database]\nurl = "sqlite:///state/m.db"', "database.url", "sqlite:///CONF/state/m.db"),
        ('[database]\nurl = "sqlite:////abs/m.db"', "database.url", "sqlite:////abs/m.db"),
        ('[database]\nurl = "sqlite://"', "database.url", "sqlite://"),
        ('[database]\nurl = "sqlite:///:memory:"', "database.url", "sqlite:///:memory:"),
        ('[database]\nurl = "postgresql://db/jtm"', "database.url", "postgresql://db/jtm"),
        (
            '[database]\nurl = ""',
            "database.url",
            "sqlite:///HOME/.local/state/jira-task-monitor/monitor.db",
        ),
        ('[poll]\ninterval = "1s"', "poll.interval_s", 1.0),
        ('[poll]\ninterval = "10m"', "poll.max_interval_s", 600.0),  # the cap follows
        ('[poll]\ninterval = "10s"\nmax_interval = "10s"', "poll.max_interval_s", 10.0),
        ("[poll]\nconcurrency = 64", "poll.concurrency", 64),
        ('[timeouts]\ntotal = "2h"', "timeouts.total_s", 7200.0),
        ('[timeouts]\nqueued = "15m"', "timeouts.queued_s", 900.0),
        ("[timeouts]\nrun = 3600", "timeouts.run_s", 3600.0),
        ('[timeouts]\nstall = "750ms"', "timeouts.stall_s", 0.75),
        ('[timeouts]\ntotal = ""', "timeouts.total_s", None),
        ('[timeouts]\naction = "warn"', "timeouts.action", TimeoutAction.WARN),
        ('[timeouts]\ncancel_grace = "1m"', "timeouts.cancel_grace_s", 60.0),
        ('[retention]\nsnapshots = "7d"', "retention.snapshots_s", 604800.0),
        ('[log]\nformat = "json"', "log.format", "json"),
        ('[log]\nlevel = "WARNING"', "log.level", "warning"),
    ],
)
def test_file_values(
    tmp_path: Path, env: dict[str, str], text: str, key: str, expected: object
) -> None:
    if isinstance(expected, str):
        expected = expected.replace("CONF", str(tmp_path / "conf")).replace("HOME", env["HOME"])
        if key == "jira.token_file":
            expected = Path(expected)
    assert attr(load(tmp_path, text, env), key) == expected


# --- environment overrides ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value", "key", "expected"),
    [
        ("JTM_JIRA_URL", "http://127.0.0.1:8080/", "jira.url", "http://127.0.0.1:8080"),
        ("JTM_JIRA_URL", "", "jira.url", None),
        ("JTM_JIRA_API_VERSION", "2", "jira.api_version", 2),
        ("JTM_JIRA_AUTH", "bearer", "jira.auth", "bearer"),
        ("JTM_JIRA_EMAIL", "me@example.com", "jira.email", "me@example.com"),
        ("JTM_JIRA_TOKEN_FILE", "tok", "jira.token_file", Path("tok")),  # relative to the cwd
        ("JTM_JIRA_TIMEOUT", "30s", "jira.timeout_s", 30.0),
        ("JTM_JIRA_TIMEOUT", "2.5", "jira.timeout_s", 2.5),
        ("JTM_JIRA_VERIFY_TLS", "false", "jira.verify_tls", False),
        ("JTM_JIRA_VERIFY_TLS", "0", "jira.verify_tls", False),
        ("JTM_JIRA_VERIFY_TLS", "No", "jira.verify_tls", False),
        ("JTM_JIRA_VERIFY_TLS", "yes", "jira.verify_tls", True),
        ("JTM_JIRA_VERIFY_TLS", "1", "jira.verify_tls", True),
        ("JTM_JIRA_MAX_RPS", "5", "jira.max_rps", 5.0),
        ("JTM_JIRA_MAX_RPS", "0.5", "jira.max_rps", 0.5),
        ("JTM_DATABASE_URL", "sqlite:////tmp/x.db", "database.url", "sqlite:////tmp/x.db"),
        ("JTM_DATABASE_URL", "sqlite:///rel.db", "database.url", "sqlite:///rel.db"),
        ("JTM_POLL_INTERVAL", "10s", "poll.interval_s", 10.0),
        ("JTM_POLL_MAX_INTERVAL", "1h", "poll.max_interval_s", 3600.0),
        ("JTM_POLL_CONCURRENCY", " 8 ", "poll.concurrency", 8),
        ("JTM_TIMEOUTS_TOTAL", "2h", "timeouts.total_s", 7200.0),
        ("JTM_TIMEOUTS_QUEUED", "1m", "timeouts.queued_s", 60.0),
        ("JTM_TIMEOUTS_RUN", "1h30m", "timeouts.run_s", 5400.0),
        ("JTM_TIMEOUTS_STALL", "20m", "timeouts.stall_s", 1200.0),
        ("JTM_TIMEOUTS_STALL", "", "timeouts.stall_s", None),  # clears the file's value
        ("JTM_TIMEOUTS_ACTION", "warn", "timeouts.action", TimeoutAction.WARN),
        ("JTM_TIMEOUTS_CANCEL_GRACE", "90s", "timeouts.cancel_grace_s", 90.0),
        ("JTM_RETENTION_SNAPSHOTS", "30d", "retention.snapshots_s", 30 * 86400.0),
        ("JTM_LOG_FORMAT", "console", "log.format", "console"),
        ("JTM_LOG_LEVEL", "debug", "log.level", "debug"),
    ],
)
def test_env_overrides(
    tmp_path: Path, env: dict[str, str], *, var: str, value: str, key: str, expected: object
) -> None:
    text = '[jira]\nurl = "https://x.atlassian.net"\nemail = "a@b.c"\n[timeouts]\nstall = "1h"\n'
    env[var] = value
    assert attr(load(tmp_path, text, env), key) == expected


@pytest.mark.skipif(SYSTEM_CONFIG_PATH.exists(), reason="this machine has a system config")
def test_env_works_without_a_file(tmp_path: Path, env: dict[str, str]) -> None:
    env.update({"JTM_POLL_INTERVAL": "10s", "XDG_CONFIG_HOME": str(tmp_path / "none")})
    settings = load_settings(None, env)
    assert settings.source is None
    assert settings.poll.interval_s == 10.0


# --- unknown names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[poll]\nintervall = "5s"',
            "unknown key poll.intervall in FILE (did you mean poll.interval?)",
        ),
        ('[polll]\ninterval = "5s"', "unknown section [polll] in FILE (did you mean [poll]?)"),
        ('[timeout]\ntotal = "5s"', "unknown section [timeout] in FILE (did you mean [timeouts]?)"),
        ('[poll]\ntotal = "1h"', "unknown key poll.total in FILE (did you mean timeouts.total?)"),
        ('interval = "5s"', "unknown key interval in FILE (did you mean poll.interval?)"),
        ("[zzz]\na = 1", "unknown section [zzz] in FILE"),
        ("[jira.extra]\na = 1", "unknown key jira.extra in FILE"),
        ("[jira]\ntoken = 'x'", "unknown key jira.token in FILE: the token is never read from"),
        ("poll = 5", "poll in FILE: expected a table [poll]"),
    ],
)
def test_unknown_names_in_file(
    tmp_path: Path, env: dict[str, str], text: str, expected: str
) -> None:
    message = config_error(tmp_path, text, env)
    assert message.startswith(expected.replace("FILE", str(tmp_path / "conf" / "config.toml")))


@pytest.mark.parametrize(
    ("var", "expected"),
    [
        (
            "JTM_POLL_INTERVL",
            "unknown environment variable JTM_POLL_INTERVL (did you mean JTM_POLL_INTERVAL?)",
        ),
        (
            "JTM_JIRA_TOKN",
            "unknown environment variable JTM_JIRA_TOKN (did you mean JTM_JIRA_TOKEN?)",
        ),
        ("JTM_CONFG", "unknown environment variable JTM_CONFG (did you mean JTM_CONFIG?)"),
        ("JTM_LOGLEVEL", "unknown environment variable JTM_LOGLEVEL (did you mean JTM_LOG_LEVEL?)"),
        ("JTM_XYZZY_QUUX", "unknown environment variable JTM_XYZZY_QUUX"),
    ],
)
def test_unknown_env_var(tmp_path: Path, env: dict[str, str], var: str, expected: str) -> None:
    env[var] = CANARY
    message = config_error(tmp_path, "", env)
    assert message == expected or (expected.endswith("QUUX") and message.startswith(expected))
    assert CANARY not in message


def test_reserved_env_vars_are_not_keys(tmp_path: Path, env: dict[str, str]) -> None:
    env["JTM_JIRA_TOKEN"] = CANARY
    env["JTM_CONFIG"] = str(write(tmp_path / "c.toml", ""))
    assert load_settings(None, env).source == tmp_path / "c.toml"


# --- bad values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[poll]\ninterval = "5 minutes"', "poll.interval = '5 minutes' in FILE: not a duration"),
        ('[poll]\ninterval = "500ms"', "poll.interval = '500ms' in FILE: must be at least 1s"),
        (
            '[poll]\ninterval = "10s"\nmax_interval = "5s"',
            "poll.max_interval = '5s' in FILE: must be at least poll.interval (10s)",
        ),
        ('[poll]\nconcurrency = "four"', "poll.concurrency = 'four' in FILE: expected an integer"),
        ("[poll]\nconcurrency = 0", "poll.concurrency = 0 in FILE: must be between 1 and 64"),
        ("[poll]\nconcurrency = 65", "poll.concurrency = 65 in FILE: must be between 1 and 64"),
        ("[poll]\nconcurrency = 4.0", "poll.concurrency = 4.0 in FILE: expected an integer"),
        ('[jira]\nverify_tls = "yes"', "jira.verify_tls = 'yes' in FILE: expected true or false"),
        ("[jira]\napi_version = 4", "jira.api_version = 4 in FILE: expected 2 or 3"),
        ('[jira]\napi_version = "3"', "jira.api_version = '3' in FILE: expected 2 or 3"),
        ("[jira]\napi_version = 3.0", "jira.api_version = 3.0 in FILE: expected 2 or 3"),
        ('[jira]\nauth = "oauth"', "jira.auth = 'oauth' in FILE: expected one of: basic, bearer"),
        ('[jira]\nemail = "nobody"', "jira.email = 'nobody' in FILE: not an email address"),
        ('[jira]\ntimeout = "0s"', "jira.timeout = '0s' in FILE: must be greater than 0"),
        ("[jira]\ntimeout = true", "jira.timeout = true in FILE: expected a duration"),
        ("[jira]\nmax_rps = 0", "jira.max_rps = 0 in FILE: must be a number greater than 0"),
        ("[jira]\nmax_rps = -1", "jira.max_rps = -1 in FILE: must be a number greater than 0"),
        ("[jira]\nmax_rps = nan", "jira.max_rps = nan in FILE: must be a number greater than 0"),
        ('[jira]\nmax_rps = "5"', "jira.max_rps = '5' in FILE: expected a number"),
        ("[jira]\ntoken_file = 5", "jira.token_file = 5 in FILE: expected a string"),
        ("[database]\nurl = []", "database.url = [] in FILE: expected a string"),
        (
            '[timeouts]\ntotal = "-1h"',
            "timeouts.total = '-1h' in FILE: not a duration (must not be negative)",
        ),
        (
            '[timeouts]\nrun = "1h1h"',
            "timeouts.run = '1h1h' in FILE: not a duration (unit 'h' repeated)",
        ),
        (
            '[timeouts]\naction = "kill"',
            "timeouts.action = 'kill' in FILE: expected one of: cancel, warn",
        ),
        (
            '[timeouts]\ncancel_grace = ""',
            "timeouts.cancel_grace = '' in FILE: not a duration (empty",
        ),
        (
            "[retention]\nsnapshots = 1979-05-27",
            "retention.snapshots = datetime.date(1979, 5, 27) in FILE: expected a duration",
        ),
        (
            '[log]\nformat = "text"',
            "log.format = 'text' in FILE: expected one of: json, console, auto",
        ),
        ('[log]\nlevel = "trace"', "log.level = 'trace' in FILE: expected one of: debug, info"),
        (
            '[timeouts]\nbulk_action = "cancel"',
            "timeouts.bulk_action = 'cancel' in FILE: bulk operations cannot be cancelled",
        ),
    ],
)
def test_bad_values_name_key_value_and_file(
    tmp_path: Path, env: dict[str, str], text: str, expected: str
) -> None:
    message = config_error(tmp_path, text, env)
    assert message.startswith(expected.replace("FILE", str(tmp_path / "conf" / "config.toml")))


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "JTM_POLL_INTERVAL",
            "5 minutes",
            "poll.interval = '5 minutes' from JTM_POLL_INTERVAL: not a duration",
        ),
        (
            "JTM_POLL_CONCURRENCY",
            "four",
            "poll.concurrency = 'four' from JTM_POLL_CONCURRENCY: not an integer",
        ),
        (
            "JTM_POLL_CONCURRENCY",
            "4.5",
            "poll.concurrency = '4.5' from JTM_POLL_CONCURRENCY: not an integer",
        ),
        (
            "JTM_JIRA_VERIFY_TLS",
            "maybe",
            "jira.verify_tls = 'maybe' from JTM_JIRA_VERIFY_TLS: expected true or false",
        ),
        ("JTM_JIRA_MAX_RPS", "fast", "jira.max_rps = 'fast' from JTM_JIRA_MAX_RPS: not a number"),
        (
            "JTM_JIRA_MAX_RPS",
            "inf",
            "jira.max_rps = 'inf' from JTM_JIRA_MAX_RPS: must be a number greater than 0",
        ),
        (
            "JTM_JIRA_API_VERSION",
            "v3",
            "jira.api_version = 'v3' from JTM_JIRA_API_VERSION: not an integer",
        ),
        ("JTM_LOG_LEVEL", "loud", "log.level = 'loud' from JTM_LOG_LEVEL: expected one of"),
        ("JTM_POLL_INTERVAL", "", "poll.interval = '' from JTM_POLL_INTERVAL: not a duration"),
    ],
)
def test_bad_env_values_name_key_value_and_variable(
    tmp_path: Path, env: dict[str, str], var: str, value: str, expected: str
) -> None:
    env[var] = value
    assert config_error(tmp_path, "", env).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[poll]\ninterval = "5s"\ninterval = "6s"\n',
            "invalid TOML in FILE: Cannot overwrite a value (at line 3",
        ),
        ("[poll]\ninterval = \n", "invalid TOML in FILE: Invalid value (at line 2, column 12)"),
    ],
)
def test_toml_syntax_error_names_file_and_line(
    tmp_path: Path, env: dict[str, str], text: str, expected: str
) -> None:
    message = config_error(tmp_path, text, env)
    assert message.startswith(expected.replace("FILE", str(tmp_path / "conf" / "config.toml")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[jira]\nmax_rps = 1" + "0" * 400, "jira.max_rps = 1000"),
        ("[poll]\ninterval = 1" + "0" * 400, "poll.interval = 1000"),
        ("[poll]\nconcurrency = 1" + "0" * 5000, "invalid TOML in"),
    ],
)
def test_huge_numbers_are_config_errors(
    tmp_path: Path, env: dict[str, str], text: str, expected: str
) -> None:
    message = config_error(tmp_path, text, env)
    assert message.startswith(expected)
    assert len(message) < 300


@pytest.mark.parametrize(
    "text",
    [
        '[poll]\ninterval = "99999999999d"',
        '[poll]\nmax_interval = "36501d"',
        "[poll]\ninterval = 1e300",
        '[jira]\ntimeout = "9999999999999999s"',
        '[timeouts]\nrun = "99999999999d"',
        '[timeouts]\ncancel_grace = "999999h"',
        '[retention]\nsnapshots = "99999999d"',
    ],
)
def test_durations_beyond_a_hundred_years_are_refused_at_load(
    tmp_path: Path, env: dict[str, str], text: str
) -> None:
    # Accepted, they failed later at every use (OverflowError in every tick).
    assert "must be at most 36500d" in config_error(tmp_path, text, env)


def test_the_longest_duration_is_accepted(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load(tmp_path, '[retention]\nsnapshots = "36500d"', env)
    assert settings.retention.snapshots_s == 36500 * 86400


def test_unreadable_config_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path, env)  # a directory
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[poll]\n")
    with pytest.raises(ConfigError, match=r"invalid TOML in .*bin.toml: the file is not UTF-8"):
        load_settings(binary, env)


def test_email_required_for_basic_auth_with_url(tmp_path: Path, env: dict[str, str]) -> None:
    message = config_error(tmp_path, '[jira]\nurl = "https://x.atlassian.net"', env)
    assert message.startswith("jira.email is required when jira.auth is 'basic'")
    assert "JTM_JIRA_EMAIL" in message
    bearer = load(tmp_path, '[jira]\nurl = "https://x.atlassian.net"\nauth = "bearer"', env)
    assert bearer.jira.email is None
    assert load(tmp_path, "", env).jira.url is None  # no url: email not needed yet


# --- jira.url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.atlassian.net", "https://x.atlassian.net"),
        ("https://x.atlassian.net:8443//", "https://x.atlassian.net:8443"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://LOCALHOST", "http://LOCALHOST"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.200.3.4", "http://127.200.3.4"),
        ("http://[::1]:8080/jira", "http://[::1]:8080/jira"),
    ],
)
def test_good_urls(tmp_path: Path, env: dict[str, str], url: str, expected: str) -> None:
    settings = load(tmp_path, f'[jira]\nurl = "{url}"\nauth = "bearer"', env)
    assert settings.jira.url == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://x.atlassian.net", "http:// is allowed only for loopback hosts"),
        ("http://10.0.0.1", "http:// is allowed only for loopback hosts"),
        ("http://128.0.0.1", "http://"),
        ("http://localhost.evil.com", "http://"),
        ("ftp://x.atlassian.net", "must start with https://"),
        ("x.atlassian.net", "must start with https://"),
        ("https://", "has no host"),
        ("https:///path", "has no host"),
        ("https://x.atlassian.net:port", "not a valid URL"),
        ("https://x.atlassian.net/?a=1", "must not contain a query or fragment"),
        ("https://x.atlassian.net/#frag", "must not contain a query or fragment"),
        ("https://x.atlassian.net/a b", "must not contain spaces"),
    ],
)
def test_bad_urls(tmp_path: Path, env: dict[str, str], url: str, reason: str) -> None:
    env["JTM_JIRA_URL"] = url
    message = config_error(tmp_path, "", env)
    assert message.startswith("jira.url = ")
    assert "from JTM_JIRA_URL: " + reason in message


def test_url_with_credentials_is_refused_without_echoing_them(
    tmp_path: Path, env: dict[str, str]
) -> None:
    text = f'[jira]\nurl = "https://me:{CANARY}@x.atlassian.net"'
    message = config_error(tmp_path, text, env)
    assert "must not contain credentials" in message
    assert CANARY not in message


# --- the token ---------------------------------------------------------------------------------


def settings_with_token_file(tmp_path: Path, env: dict[str, str], token_file: str) -> Settings:
    return load(tmp_path, f'[jira]\ntoken_file = "{token_file}"', env)


def test_token_order(tmp_path: Path, env: dict[str, str]) -> None:
    creds = tmp_path / "creds"
    write(creds / "jira-token", "from-credential\n")
    write_token(tmp_path / "conf" / "token", "  from-file\n")
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    env["JTM_JIRA_TOKEN"] = "from-env"
    with_file = settings_with_token_file(tmp_path, env, "token")
    without = load(tmp_path, "", env)

    assert load_token(with_file, env) == Secret("from-file")
    assert load_token(without, env) == Secret("from-env")
    env["JTM_JIRA_TOKEN"] = "  "  # blank counts as unset
    assert load_token(without, env) == Secret("from-credential")
    del env["CREDENTIALS_DIRECTORY"]
    with pytest.raises(ConfigError) as info:
        load_token(without, env)
    assert str(info.value) == (
        "no Jira token: set jira.token_file, JTM_JIRA_TOKEN, or the systemd credential jira-token"
    )
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "empty-creds")
    with pytest.raises(ConfigError, match="no Jira token"):
        load_token(without, env)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read jira.token_file"),
        ("", "is empty"),
        ("  \n", "is empty"),
        (b"\xff" + CANARY.encode(), "not UTF-8"),
        (f"{CANARY} {CANARY}", "contains whitespace or control characters"),
        (f"{CANARY}\n{CANARY}\n", "contains whitespace or control characters"),
    ],
)
def test_bad_token_file_never_shows_its_content(
    tmp_path: Path, env: dict[str, str], content: str | bytes | None, reason: str
) -> None:
    path = tmp_path / "conf" / "token"
    if content is not None:
        write_token(path, content)
    env["JTM_JIRA_TOKEN"] = "never-used-when-the-file-is-set"
    settings = settings_with_token_file(tmp_path, env, "token")
    with pytest.raises(ConfigError) as info:
        load_token(settings, env)
    assert reason in str(info.value)
    assert str(path) in str(info.value)
    assert CANARY not in str(info.value)
    assert "never-used" not in str(info.value)


def test_bad_credential_and_env_token(tmp_path: Path, env: dict[str, str]) -> None:
    creds = tmp_path / "creds"
    write(creds / "jira-token", "")
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    settings = load(tmp_path, "", env)
    with pytest.raises(ConfigError, match=r"systemd credential jira-token .* is empty"):
        load_token(settings, env)
    env["JTM_JIRA_TOKEN"] = f"{CANARY}\r\nX-Evil: 1"
    with pytest.raises(ConfigError) as info:
        load_token(settings, env)
    assert "JTM_JIRA_TOKEN" in str(info.value)
    assert CANARY not in str(info.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660])
def test_a_token_file_open_to_others_is_refused_with_the_chmod_to_run(
    tmp_path: Path, env: dict[str, str], mode: int
) -> None:
    path = write_token(tmp_path / "conf" / "token", CANARY)
    path.chmod(mode)
    settings = settings_with_token_file(tmp_path, env, "token")
    with pytest.raises(ConfigError) as info:
        load_token(settings, env)
    assert f"mode {mode:04o}" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)
    assert info.value.exit_code == 78
    assert CANARY not in str(info.value)
    path.chmod(0o400)  # read-only for its owner is private too
    assert load_token(settings, env).reveal() == CANARY


def test_a_systemd_credential_is_exempt_from_the_mode_check(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # systemd makes the copy and chooses its mode; the service cannot change it.
    path = write(tmp_path / "creds" / "jira-token", CANARY)
    path.chmod(0o644)
    env["CREDENTIALS_DIRECTORY"] = str(path.parent)
    assert load_token(load(tmp_path, "", env), env).reveal() == CANARY


@pytest.mark.parametrize("where", ["file", "env"])
def test_a_bearer_token_beyond_latin_1_is_a_config_error(
    tmp_path: Path, env: dict[str, str], where: str
) -> None:
    token = "tok\u20ac\u4e2d-" + CANARY  # the euro sign and a CJK character
    if where == "file":
        write_token(tmp_path / "conf" / "token", token)
        config = '[jira]\nauth = "bearer"\ntoken_file = "token"'
    else:
        env["JTM_JIRA_TOKEN"] = token
        config = '[jira]\nauth = "bearer"'
    settings = load(tmp_path, config, env)
    with pytest.raises(ConfigError, match="outside Latin-1") as info:
        load_token(settings, env)
    assert CANARY not in str(info.value)
    # Basic auth sends base64 of UTF-8, which carries any character; Latin-1 is a header's.
    env["JTM_JIRA_TOKEN"] = token
    assert load_token(load(tmp_path, "", env), env).reveal() == token
    env["JTM_JIRA_TOKEN"] = "caf\u00e9-" + CANARY
    assert load_token(load(tmp_path, '[jira]\nauth = "bearer"', env), env)


def test_canary_never_in_settings_or_secret_repr(tmp_path: Path, env: dict[str, str]) -> None:
    write_token(tmp_path / "conf" / "token", CANARY)
    settings = settings_with_token_file(tmp_path, env, "token")
    token = load_token(settings, env)
    assert token.reveal() == CANARY
    for text in (repr(settings), str(settings), repr(token), str(token), f"{token}"):
        assert CANARY not in text
    env["JTM_JIRA_TOKEN"] = CANARY
    for text in (repr(load(tmp_path, "", env)), repr(load_token(load(tmp_path, "", env), env))):
        assert CANARY not in text


# --- the example file --------------------------------------------------------------------------


def test_example_config_loads(env: dict[str, str]) -> None:
    settings = load_settings(REPO / "config.example.toml", env)
    assert settings.source == REPO / "config.example.toml"
    assert settings.jira.url == "https://example.atlassian.net"
    assert settings.jira.email == "ops@example.com"
    defaults = load_settings(REPO / "config.example.toml", {**env, "JTM_JIRA_URL": ""})
    assert defaults.poll.interval_s == 30.0
    assert defaults.timeouts.total_s is None


def test_example_config_documents_every_key(env: dict[str, str]) -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    settings = load_settings(REPO / "config.example.toml", env)
    for section in ("jira", "database", "poll", "timeouts", "retention", "log"):
        assert f"[{section}]" in text
        for name in type(getattr(settings, section)).__dataclass_fields__:
            key = name.removesuffix("_s")
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key}"
    for needle in ("JTM_JIRA_TOKEN", "CREDENTIALS_DIRECTORY", "JTM_<SECTION>_<KEY>"):
        assert needle in text
