"""What crosses the wire: the simulator's replies and its log of API requests.

A `Reply` is decided while the simulator's lock is held (or with no lock at all) and written by
the request handler afterwards, so that no socket I/O ever happens inside a critical section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer. `drop` means: send nothing and reset the connection; `close` means:
    answer, then close the connection (otherwise HTTP/1.1 keep-alive holds it open)."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False
    close: bool = False


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API request the simulator received (control requests under /_sim/ are not recorded).

    `path` is the request target as sent (query string included); `task_id` is set for task and
    cancel paths; `status` is the status answered, 0 when a "reset" fault dropped the connection;
    `at` is the simulator clock and `monotonic` is `time.monotonic()`, both taken on receipt.
    """

    method: str
    path: str
    task_id: str | None
    status: int
    at: float
    monotonic: float


def dump_json(payload: object) -> bytes:
    """Compact JSON, as Jira sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_reply(status: int, payload: object, *, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, dump_json(payload), headers=headers)


def jira_error(status: int, *messages: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Jira's usual error body: `{"errorMessages": [...], "errors": {}}`."""
    return json_reply(status, {"errorMessages": list(messages), "errors": {}}, headers=headers)


def bare_error(status: int, *messages: str) -> Reply:
    """The cancel endpoint's error body: a bare JSON array of strings."""
    return json_reply(status, list(messages))
