"""Where a SQLite database lives: the file a `sqlite:///PATH` URL names, read from the URL's text.

The one place for the rule, so that the config (which resolves a relative path), the engine
(which creates the folder and the file), `jtm check`, the status's size, the state file and the
shell completion agree on it. Plain text, no SQLAlchemy: the config is read before any command
decides it needs a database, and importing SQLAlchemy would cost every CLI call its start time.
Only a `sqlite` URL with three slashes names a file (`sqlite://` alone is an in-memory database).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)([^?]*)(.*)", re.DOTALL)


class ParsedURL(Protocol):
    """What is read of SQLAlchemy's `URL` (whose str() escapes the name, so is not used)."""

    @property
    def drivername(self) -> str: ...
    @property
    def database(self) -> str | None: ...
    @property
    def query(self) -> Mapping[str, object]: ...


def _text(url: str | ParsedURL) -> str:
    if isinstance(url, str):
        return url
    return f"{url.drivername}:///{url.database or ''}{'?' if url.query else ''}"


def database_name(url: str | ParsedURL) -> str | None:
    """The name SQLite opens for `url` (a path, or a `file:` URI), without the URL's query;
    None for an in-memory database or a URL of another database."""
    match = _SQLITE_URL.fullmatch(_text(url))
    if match is None or match.group(2) in ("", ":memory:"):
        return None
    return match.group(2)


def sqlite_file(url: str | ParsedURL) -> Path | None:
    """The file of a SQLite URL naming a plain file (`~` expanded); None for anything else:
    memory, a `file:` URI, a URL with a query (whose options may move the file), or not SQLite."""
    name = database_name(url)
    if name is None or name.startswith("file:") or "?" in _text(url):
        return None
    return Path(name).expanduser()


def with_file(url: str, place: Callable[[str], Path]) -> str:
    """`url` with the plain file it names replaced by `place(name)`; any other URL unchanged."""
    match = _SQLITE_URL.fullmatch(url)
    name = database_name(url)
    if match is None or name is None or name.startswith("file:"):
        return url
    prefix, _, rest = match.groups()
    return f"{prefix}{place(name)}{rest}"


def file_url(path: Path) -> str:
    """The URL of the SQLite database file at `path`."""
    return f"sqlite:///{path}"
