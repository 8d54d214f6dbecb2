"""What crosses the wire: the simulator's replies and its log of API requests.

A `Reply` is decided while the simulator's lock is held (or with no lock at all) and written by
the request handler afterwards, so that no socket I/O ever happens inside a critical section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from xml.sax.saxutils import escape

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"
TEXT_TYPE = "text/plain;charset=UTF-8"
XML_TYPE = "application/xml;charset=UTF-8"


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer. `drop` means: send nothing and reset the connection; `close` means:
    answer, then close the connection (otherwise HTTP/1.1 keep-alive holds it open); `drip_s`
    means: write the answer one byte every `drip_s` seconds."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False
    close: bool = False
    drip_s: float = 0.0


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


class ErrorForm(StrEnum):
    """How the simulated site writes the body of a 401: each is a form real Jira Cloud sends
    (tests/jira_samples)."""

    MESSAGE = "message"  # {"message": ..., "status-code": 401}
    XML = "xml"  # <status><status-code>401</status-code><message>...</message></status>
    PLAIN = "plain"  # plain text
    COLLECTION = "collection"  # {"errorMessages": [...], "errors": {}}


def auth_error(form: ErrorForm, message: str, headers: tuple[tuple[str, str], ...]) -> Reply:
    """A 401 in the body form `form`."""
    if form is ErrorForm.MESSAGE:
        return json_reply(401, {"message": message, "status-code": 401}, headers=headers)
    if form is ErrorForm.XML:
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><status>'
            f"<status-code>401</status-code><message>{escape(message)}</message></status>"
        )
        return Reply(401, body.encode(), XML_TYPE, headers=headers)
    if form is ErrorForm.PLAIN:
        return Reply(401, message.encode(), TEXT_TYPE, headers=headers)
    return jira_error(401, message, headers=headers)


def bare_error(status: int, *messages: str) -> Reply:
    """The cancel endpoint's error body: a bare JSON array of strings."""
    return json_reply(status, list(messages))
