"""Reading configuration keys: gathering raw values, and the converters that check them.

The keys themselves are declared once, in `monitor.settings` (each a dataclass field with its
kind and converter); the functions here take the `kinds` derived from them (every
`section.key` and its TOML type). `collect_file` and `collect_env` gather the raw values by key,
rejecting an unknown name with the closest valid one as a suggestion. `Values` converts one
value at a time with a converter from this module (`duration()`, `choice()`, `jira_url`, ...)
and turns the converter's ValueError into a one-line `ConfigError` naming the key, the value (a
URL without its credentials) and where it came from.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from monitor.metrics.address import ListenAddress, parse_listen
from monitor.states import TimeoutAction
from monitor.taskref import is_loopback_host

Kind = Literal["str", "int", "number", "bool", "duration"]
"""A key's TOML type. An environment override is a string; it is first turned into that type,
so that the same validation serves both sources."""

_KEY = "jtm_key"


@dataclass(frozen=True, slots=True)
class Key:
    """How one key is read: `kind` types an environment string, `convert` checks the value."""

    convert: Callable[[object], Any]
    kind: Kind = "str"


def key(default: Any, convert: Callable[[object], Any], kind: Kind = "str") -> Any:
    """A settings field that is a configuration key (see `monitor.settings`)."""
    return field(default=default, metadata={_KEY: Key(convert, kind)})


def required_key(
    convert: Callable[[object], Any], kind: Kind = "str", *, shown: bool = True
) -> Any:
    """A key without a default; `shown=False` for a value never to be echoed (it may hold a
    secret): its field is left out of the repr, and an error about it does not quote it."""
    return field(repr=shown, metadata={_KEY: Key(convert, kind)})


def key_name(item: Field[Any]) -> str:
    """The key's name within its section: the field's, without the `_s` of seconds."""
    return item.name.removesuffix("_s")


def key_spec(item: Field[Any]) -> Key:
    """The `Key` of a field declared with `key` or `required_key`."""
    spec: Key = item.metadata[_KEY]
    return spec


def env_var(dotted: str) -> str:
    """The `JTM_<SECTION>_<KEY>` variable that overrides the key `section.key`."""
    return "JTM_" + dotted.replace(".", "_").upper()


# --- collecting raw values ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawValue:
    value: object  # as TOML typed it, or the environment's string
    where: str  # "in /path/config.toml" or "from JTM_POLL_INTERVAL"
    from_env: bool


def _suggestion(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _key_suggestion(dotted: str, kinds: Mapping[str, Kind]) -> str:
    # A right key in the wrong section is the likeliest mistake: suggest where it belongs.
    bare = dotted.rsplit(".", 1)[-1]
    if same := [key for key in kinds if key.endswith("." + bare)]:
        return f" (did you mean {difflib.get_close_matches(dotted, same, n=1, cutoff=0)[0]}?)"
    return _suggestion(dotted, list(kinds))


def collect_file(
    document: dict[str, Any],
    source: Path,
    raw: dict[str, RawValue],
    *,
    kinds: Mapping[str, Kind],
    refused: Mapping[str, str],
) -> None:
    """Add every value of the parsed file to `raw`; `kinds` holds every key there is, `refused`
    maps a key the file must never hold to the reason given. Raises ConfigError for an unknown
    section or key, with a suggestion."""
    sections = list(dict.fromkeys(key.split(".", 1)[0] for key in kinds))
    for section, table in document.items():
        if section not in sections:
            if isinstance(table, dict):
                match = difflib.get_close_matches(section, sections, n=1)
                hint = f" (did you mean [{match[0]}]?)" if match else ""
                raise ConfigError(f"unknown section [{section}] in {source}{hint}")
            hint = _key_suggestion(section, kinds)
            raise ConfigError(f"unknown key {section} in {source}{hint}")
        if not isinstance(table, dict):
            raise ConfigError(f"{section} in {source}: expected a table [{section}]")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if dotted in refused:
                raise ConfigError(f"unknown key {dotted} in {source}: {refused[dotted]}")
            if dotted not in kinds:
                hint = _key_suggestion(dotted, kinds)
                raise ConfigError(f"unknown key {dotted} in {source}{hint}")
            raw[dotted] = RawValue(value, f"in {source}", from_env=False)


def collect_env(
    env: Mapping[str, str],
    raw: dict[str, RawValue],
    *,
    kinds: Mapping[str, Kind],
    reserved: frozenset[str],
) -> None:
    """Add every `JTM_<SECTION>_<KEY>` override in `env` to `raw`, for the keys in `kinds`. A
    JTM_ name that is neither an override nor in `reserved` raises ConfigError, with a
    suggestion but never the value."""
    env_vars = {env_var(key): key for key in kinds}
    for name in sorted(env):
        if not name.startswith("JTM_") or name in reserved:
            continue
        key = env_vars.get(name)
        if key is None:
            # Only the name: the value of a misspelt JTM_JIRA_TOKEN is the token.
            hint = _suggestion(name, [*env_vars, *sorted(reserved)])
            raise ConfigError(f"unknown environment variable {name}{hint}")
        raw[key] = RawValue(env[name], f"from {name}", from_env=True)


# --- converting and validating -----------------------------------------------------------------

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class Values:
    """The raw values by dotted key; `take` converts one and turns a ValueError into a message.
    `kinds` types a value from the environment (a string) as its key's TOML type first."""

    def __init__(self, raw: dict[str, RawValue], kinds: Mapping[str, Kind]) -> None:
        self._raw = raw
        self._kinds = kinds

    def origin(self, key: str) -> RawValue | None:
        return self._raw.get(key)

    def take(self, key: str, convert: Callable[[object], T], default: T) -> T:
        raw = self._raw.get(key)
        if raw is None:
            return default
        try:
            value = _from_env(self._kinds[key], str(raw.value)) if raw.from_env else raw.value
            return convert(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def error(self, key: str, reason: str) -> ConfigError:
        raw = self._raw[key]
        return ConfigError(f"{key} = {_show(key, raw.value)} {raw.where}: {reason}")


def _show(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and key.endswith(".url"):
        value = _redact_url(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _redact_url(url: str) -> str:
    """`url` without credentials, query or fragment: a database password must not be echoed."""
    redacted = re.sub(r"^([^:/]*://)[^/]*@", r"\1***@", url)
    base = re.split(r"[?#]", redacted, maxsplit=1)[0]
    return base if base == redacted else base + "..."


def _from_env(kind: Kind, text: str) -> object:
    """Turn an environment string into the TOML type of its key; strings stay strings."""
    word = text.strip().lower()
    if kind == "int":
        if not re.fullmatch(r"[+-]?[0-9]+", word):
            raise ValueError("not an integer")
        return int(word)
    if kind == "number":
        try:
            return float(word)
        except ValueError:
            raise ValueError("not a number") from None
    if kind == "bool":
        if word in ("true", "1", "yes"):
            return True
        if word in ("false", "0", "no"):
            return False
        raise ValueError("expected true or false (or 1/0, yes/no)")
    return text


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), "a date or time")


def string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, not {_type_name(value)}")
    if not (text := value.strip()):
        raise ValueError("must not be empty")
    return text


def optional(convert: Callable[[object], T]) -> Callable[[object], T | None]:
    """An empty string means "unset": the only way to clear a file's value from the environment."""

    def convert_or_none(value: object) -> T | None:
        return None if isinstance(value, str) and not value.strip() else convert(value)

    return convert_or_none


def integer(low: int, high: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, not {_type_name(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return convert


def positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, not {_type_name(value)}")
    try:
        number = float(value)  # TOML integers are unbounded in tomllib
    except OverflowError:
        raise ValueError("too large") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a number greater than 0")
    return number


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {_type_name(value)}")
    return value


def duration(minimum: float = 0.0) -> Callable[[object], float]:
    """A duration (see monitor.durations) above 0, and at least `minimum` seconds."""

    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration such as '30s', not {_type_name(value)}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"not a duration ({exc})") from None
        if seconds <= 0:
            raise ValueError("must be greater than 0")
        if seconds < minimum:
            raise ValueError(f"must be at least {format_duration(minimum)}")
        return seconds

    return convert


def choice(options: type[E]) -> Callable[[object], E]:
    """One of a closed vocabulary's values, in any case."""

    def convert(value: object) -> E:
        word = string(value).lower()
        for option in options:
            if word == option.value:
                return option
        raise ValueError(f"expected one of: {', '.join(options)}")

    return convert


def bulk_timeout_action(value: object) -> TimeoutAction:
    """The action on a bulk operation's timeout: only `warn`, for Jira cannot cancel one."""
    action = choice(TimeoutAction)(value)
    if action != TimeoutAction.WARN:
        raise ValueError(
            "bulk operations cannot be cancelled (Jira has no cancel for them): use warn"
        )
    return action


def api_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (2, 3):
        raise ValueError("expected 2 or 3")
    return value


def jira_url(value: object) -> str:
    """An http(s) base URL with a host and nothing a base URL must not carry."""
    url = string(value)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - validates the port; raises ValueError if malformed
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with https://")
    if not host:
        raise ValueError("has no host")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials (use jira.email and the token)")
    if "?" in url or "#" in url:
        raise ValueError("must not contain a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError("http:// is allowed only for loopback hosts (localhost, 127.*, ::1)")
    return url.rstrip("/")


def listen_address(value: object) -> ListenAddress:
    """`[metrics] listen`: `HOST:PORT`, `[IPV6]:PORT` or `unix:PATH` (monitor.metrics.address)."""
    return parse_listen(string(value))


def email_address(value: object) -> str:
    email = string(value)
    if "@" not in email or any(ch.isspace() for ch in email):
        raise ValueError("not an email address")
    return email
