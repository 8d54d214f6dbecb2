"""Configuration: one TOML file, `JTM_<SECTION>_<KEY>` overrides, and the Jira token.

`load_settings` finds the file (`find_config_path`), reads it, applies the environment overrides,
validates every value and returns a frozen `Settings`. `load_token` finds the Jira token, which is
never part of `Settings`, so that no repr, log line or `--json` output can carry it.

Every problem becomes one `ConfigError` (exit code 78) with a one-line message that names the key,
the offending value and where it came from (the file or the environment variable), and for an
unknown name suggests the closest valid one. The token never appears in a message.
"""

from __future__ import annotations

import base64
import os
import pwd
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor import config_keys as keys
from monitor.durations import format_duration
from monitor.errors import ConfigError, ConfigFileMissing
from monitor.notify.channels import Channel, parse_channels
from monitor.settings import (
    KINDS,
    SECTIONS,
    DatabaseSettings,
    JiraSettings,
    LogSettings,
    MetricsSettings,
    PollSettings,
    RetentionSettings,
    Settings,
    TimeoutSettings,
    section_values,
)
from monitor.sqlite_path import file_url, with_file
from monitor.states import Auth

# The settings' classes are declared in monitor.settings and used from here.
__all__ = [
    "DatabaseSettings",
    "JiraSettings",
    "LogSettings",
    "MetricsSettings",
    "PollSettings",
    "RetentionSettings",
    "Secret",
    "Settings",
    "TimeoutSettings",
    "load_settings",
    "load_token",
]


class Secret:
    """A string that never shows itself in a repr, a str(), a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --- where things are --------------------------------------------------------------------------

APP_NAME = "jira-task-monitor"
# The systemd unit's ConfigurationDirectory= and StateDirectory=. An operator's CLI that finds the
# system config also uses the system state dir, so that it sees the service's database.
SYSTEM_CONFIG_PATH = Path("/etc") / APP_NAME / "config.toml"
SYSTEM_STATE_DIR = Path("/var/lib") / APP_NAME
CONFIG_ENV = "JTM_CONFIG"
TOKEN_ENV = "JTM_JIRA_TOKEN"
TOKEN_CREDENTIAL = "jira-token"
# JTM_ variables that are not `JTM_<SECTION>_<KEY>` overrides; every other JTM_ name must be one.
RESERVED_ENV_VARS = frozenset({CONFIG_ENV, TOKEN_ENV})
# Keys the file must never hold, each with the reason: the token stays out of the config file.
_REFUSED_KEYS = {
    "jira.token": "the token is never read from the config file; use jira.token_file, "
    f"{TOKEN_ENV} or the systemd credential {TOKEN_CREDENTIAL}",
}


def find_config_path(
    explicit: Path | None, env: Mapping[str, str], *, system_path: Path = SYSTEM_CONFIG_PATH
) -> Path | None:
    """Return the config file to use, or None when there is none (then every default applies).

    Order: `explicit` (from `--config`), env `JTM_CONFIG`, both of which must exist;
    then `$XDG_CONFIG_HOME/jira-task-monitor/config.toml` (default `~/.config/...`, with HOME
    taken from `env`) and `system_path`, each used only if it exists. A `~` is expanded; the
    result is absolute. Raises ConfigError "config file not found: PATH" for a missing named
    file, and for a file that exists but cannot be looked at (so that a permission problem on
    /etc never silently falls back to the defaults and a different database).
    """
    if explicit is not None:
        return _required_file(_expand_home(explicit, env), "")
    if named := env.get(CONFIG_ENV, "").strip():
        return _required_file(_expand_home(Path(named), env), f" (from {CONFIG_ENV})")
    config_home = _xdg_dir(env, "XDG_CONFIG_HOME", ".config")
    user_path = config_home / APP_NAME / "config.toml" if config_home else None
    for candidate in (user_path, system_path):
        if candidate is not None and _exists(candidate):
            return candidate.absolute()
    return None


def default_database_url(source: Path | None, env: Mapping[str, str]) -> str:
    """The `database.url` used when none is configured: `sqlite:///<state dir>/monitor.db`.

    The state dir is `$STATE_DIRECTORY` (set by systemd; its first entry if several), else
    /var/lib/jira-task-monitor when `source` is the system config, else
    `$XDG_STATE_HOME/jira-task-monitor` (default `~/.local/state/jira-task-monitor`).
    """
    if state := env.get("STATE_DIRECTORY", "").split(":")[0]:
        state_dir = Path(state)
    elif source is not None and source == SYSTEM_CONFIG_PATH:
        state_dir = SYSTEM_STATE_DIR
    else:
        state_home = _xdg_dir(env, "XDG_STATE_HOME", ".local/state")
        if state_home is None:
            raise ConfigError("cannot find a home directory for the database: set HOME")
        state_dir = state_home / APP_NAME
    return file_url(state_dir / "monitor.db")


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Find, read and validate the configuration. `path` is `--config`; `env` is os.environ.

    `JTM_<SECTION>_<KEY>` variables in `env` override the file. Raises ConfigError (one line)
    for a missing named file, a TOML syntax error (with its line), an unknown section, key or
    JTM_ variable (with a suggestion), or a bad value (naming key, value, and file or variable).
    """
    env = os.environ if env is None else env
    source = find_config_path(path, env)
    raw: dict[str, keys.RawValue] = {}
    channels: tuple[Channel, ...] = ()
    if source is not None:
        document = _read_toml(source)
        if "notify" in document:  # an array of tables, read by monitor.notify.channels
            channels = parse_channels(document.pop("notify"), source)
        keys.collect_file(document, source, raw, kinds=KINDS, refused=_REFUSED_KEYS)
    keys.collect_env(env, raw, kinds=KINDS, reserved=RESERVED_ENV_VARS)
    return _build(keys.Values(raw, KINDS), source, env, channels)


def load_token(settings: Settings, env: Mapping[str, str] | None = None) -> Secret:
    """Return the Jira token from, in order: `jira.token_file`, env `JTM_JIRA_TOKEN`, or the
    systemd credential `$CREDENTIALS_DIRECTORY/jira-token`; surrounding whitespace is stripped.

    A configured token file that cannot be read or is empty is an error, not a reason to look
    further; so is one that other users may read or write (as ssh refuses such a private key:
    the token is the account's password). A systemd credential is exempt: systemd makes its
    copy and sets its mode. A bearer token must be Latin-1 text, which is all that an HTTP
    header can carry. Raises ConfigError when no token is found; no message ever contains
    the token.
    """
    env = os.environ if env is None else env
    bearer = settings.jira.auth == Auth.BEARER
    if settings.jira.token_file is not None:
        return _read_token(settings.jira.token_file, "jira.token_file", bearer, private=True)
    if text := env.get(TOKEN_ENV, "").strip():
        return Secret(_checked_token(text, TOKEN_ENV, bearer))
    if credentials := env.get("CREDENTIALS_DIRECTORY", ""):
        path = Path(credentials) / TOKEN_CREDENTIAL
        if _exists(path):
            what = f"the systemd credential {TOKEN_CREDENTIAL}"
            return _read_token(path, what, bearer, private=False)
    raise ConfigError(
        f"no Jira token: set jira.token_file, {TOKEN_ENV}, or the systemd credential "
        f"{TOKEN_CREDENTIAL}"
    )


# --- files and directories ---------------------------------------------------------------------


def _exists(path: Path) -> bool:
    """True if `path` exists; raises ConfigError if it cannot be checked (e.g. no permission)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ConfigError(f"cannot access {path}: {exc.strerror or exc}") from None
    return True


def _required_file(path: Path, origin: str) -> Path:
    if not _exists(path):
        raise ConfigFileMissing(f"config file not found: {path}{origin}")
    return path.absolute()


def _home(env: Mapping[str, str]) -> Path | None:
    if home := env.get("HOME", ""):
        return Path(home)
    # A system service may run without HOME; the password database still knows it.
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return None


def _xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> Path | None:
    # The XDG spec says a relative value is invalid and must be ignored.
    value = env.get(variable, "")
    if value and Path(value).is_absolute():
        return Path(value)
    home = _home(env)
    return home / fallback if home else None


def _expand_home(path: Path, env: Mapping[str, str]) -> Path:
    """Expand a leading `~` with HOME from `env` (not the process's), so tests stay hermetic."""
    if path.parts and path.parts[0] == "~" and (home := _home(env)) is not None:
        return home.joinpath(*path.parts[1:])
    return path.expanduser() if str(path).startswith("~") else path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"invalid TOML in {path}: the file is not UTF-8 text") from None
    except ValueError as exc:
        # tomllib lets int()'s own errors through, e.g. an integer of more than 4300 digits.
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def credential_forms(jira: JiraSettings, token: Secret) -> tuple[str, ...]:
    """Every form in which the token travels, each of which must be scrubbed wherever text
    leaves the program: the token itself, the base64 of `email:token` that basic auth sends
    (which holds no copy of the token's text), and the whole `Authorization` header values."""
    raw = token.reveal()
    forms = [raw, f"Bearer {raw}"]
    if jira.email:
        pair = base64.b64encode(f"{jira.email}:{raw}".encode()).decode("ascii")
        forms += [pair, f"Basic {pair}"]
    return tuple(forms)


def _read_token(path: Path, what: str, bearer: bool, *, private: bool) -> Secret:
    try:
        with path.open("rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if private and mode & 0o077:
                raise ConfigError(
                    f"{what} {path} is open to other users (mode {mode:04o}): make it private "
                    f"with `chmod 600 {path}`"
                )
            text = fh.read().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not text:
        raise ConfigError(f"{what} {path} is empty")
    return Secret(_checked_token(text, f"{what} {path}", bearer))


def _checked_token(token: str, origin: str, bearer: bool) -> str:
    # A space or newline inside would break the Authorization header (or smuggle another one).
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError(f"the Jira token in {origin} contains whitespace or control characters")
    # Basic auth sends base64 of UTF-8; a bearer token goes in the header as it is, and HTTP
    # headers carry Latin-1 only (requests would fail on every request, not at start).
    if bearer and not token.isascii() and any(ord(ch) > 0xFF for ch in token):
        raise ConfigError(
            f"the Jira token in {origin} has characters outside Latin-1, which an HTTP "
            "Authorization header cannot carry: check that it is the right bearer token"
        )
    return token


def _local_path(
    raw: keys.RawValue | None, text: str, source: Path | None, env: Mapping[str, str]
) -> Path:
    """`~` expanded; a relative path from the file is relative to the file's directory, one from
    the environment stays relative to the working directory, as a shell user expects."""
    path = _expand_home(Path(text), env)
    if not path.is_absolute() and source is not None and raw is not None and not raw.from_env:
        path = source.parent / path
    return path


def _database_url(
    url: str | None, raw: keys.RawValue | None, source: Path | None, env: Mapping[str, str]
) -> str:
    if url is None:
        return default_database_url(source, env)
    return with_file(url, lambda name: _local_path(raw, name, source, env))


def _build(
    values: keys.Values,
    source: Path | None,
    env: Mapping[str, str],
    channels: tuple[Channel, ...] = (),
) -> Settings:
    """The settings from `values`: each section's keys converted (`settings.section_values`),
    then the rules that join keys or need the file's place."""
    found = {section: section_values(values, section) for section in SECTIONS}
    jira, poll, database = found["jira"], found["poll"], found["database"]
    if jira["url"] and jira["auth"] == Auth.BASIC and not jira["email"]:
        where = f"in {source} or " if source else "in a config file or "
        raise ConfigError(
            f"jira.email is required when jira.auth is 'basic': set it {where}JTM_JIRA_EMAIL"
        )
    if jira["token_file"]:
        origin = values.origin("jira.token_file")
        jira["token_file"] = _local_path(origin, jira["token_file"], source, env)
    interval = poll["interval_s"]
    if values.origin("poll.max_interval") is None:
        # Left unset, the cap follows a long interval up instead of contradicting it.
        poll["max_interval_s"] = max(poll["max_interval_s"], interval)
    elif poll["max_interval_s"] < interval:
        raise values.error(
            "poll.max_interval", f"must be at least poll.interval ({format_duration(interval)})"
        )
    origin = values.origin("database.url")
    database["url"] = _database_url(database["url"], origin, source, env)
    sections = {name: cls(**found[name]) for name, cls in SECTIONS.items()}
    return Settings(**sections, notify=channels, source=source)
