"""What went wrong, in one line: the texts of the Jira client's errors.

Jira's own error text from a response body, a transport failure described from the exception
and its causes, origins and task IDs fit for a message. Each text is one line, capped; none
carries a header, a credential or an HTML page.
"""

from __future__ import annotations

import html
import json
import re
import socket
import ssl
from urllib.parse import urlsplit

import requests

JIRA_TEXT_MAX = 200
JIRA_BODY_SCAN = 4096
"""Only this much of an error body is looked at for Jira's text."""


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def origin_and_path(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return one_line(parts.path, 100)
    return one_line(f"{origin(url)}{parts.path}", 100)


def show_id(task_id: str) -> str:
    return one_line(task_id, 64) if task_id.isprintable() else repr(task_id)[:66]


def reason(response: requests.Response) -> str:
    return one_line(response.reason or "", 60)


def jira_error_text(body: bytes) -> str | None:
    """Jira's error text from any of the forms Jira Cloud answers errors in; None for anything
    else (an HTML page from a proxy, an empty or cut body).

    The forms: an ErrorCollection `{"errorMessages": [...], "errors": {...}}` (most errors; the
    bulk-queue API adds `httpStatusCode`), a bare JSON array of strings (every error of cancel),
    `{"message": ..., "status-code": 401}` and an XML `<status>` document (401 from the
    authentication layer), and plain text ("Basic authentication with passwords is
    deprecated...", "XSRF check failed").
    """
    data = json_or_none(body)
    parts: list[str] = []
    if isinstance(data, list):
        parts.extend(item for item in data if isinstance(item, str))
    elif isinstance(data, dict):
        messages = data.get("errorMessages")
        if isinstance(messages, list):
            parts.extend(item for item in messages if isinstance(item, str))
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts.extend(f"{k}: {v}" for k, v in errors.items() if isinstance(v, str))
        for key in ("message", "error"):  # the auth layer, and gateways in front of Jira
            if isinstance(data.get(key), str):
                parts.append(data[key])
    elif data is None:
        parts.append(_xml_message(body) or _plain_text(body))
    text = one_line("; ".join(p.strip() for p in parts if p.strip()), JIRA_TEXT_MAX)
    return text or None


_XML_MESSAGE = re.compile(rb"<message>([^<]{1,2000})</message>")
_MARKUP = re.compile(rb"<[a-zA-Z!/?]")


def _xml_message(body: bytes) -> str:
    """The `<message>` of Jira's XML `<status>` document; "" for any other body."""
    head = body[:4096].lstrip()
    if not (head.startswith(b"<?xml") or head.startswith(b"<status")):
        return ""
    match = _XML_MESSAGE.search(body[:JIRA_BODY_SCAN])
    return html.unescape(match.group(1).decode("utf-8", "replace")) if match else ""


def _plain_text(body: bytes) -> str:
    """A short plain-text answer as it is; "" for markup (an HTML page) or binary."""
    head = body[:JIRA_BODY_SCAN]
    if not head.strip() or _MARKUP.search(head):
        return ""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return text if all(c.isprintable() or c.isspace() for c in text) else ""


def json_or_none(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def transport_reason(exc: BaseException, timeout: str) -> str:
    """A short description of a transport failure, from the exception and its causes."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connect timeout after {timeout}"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"read timeout after {timeout}"
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or "certificate verify failed"
            return one_line(f"TLS certificate not trusted ({detail})", 120)
    if isinstance(exc, requests.exceptions.SSLError) or any(
        isinstance(c, ssl.SSLError) for c in chain
    ):
        return "TLS error"
    for cause in chain:
        name = type(cause).__name__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return "connection reset"
        if name == "NameResolutionError" or isinstance(cause, socket.gaierror):
            return "name resolution failed"
        if name == "RemoteDisconnected":
            return "connection closed without a response"
        if name in ("ReadTimeoutError", "TimeoutError") or isinstance(cause, TimeoutError):
            return f"read timeout after {timeout}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken while reading the response"
    return "connection error"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its arguments that are exceptions, `.reason`, causes and contexts."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for link in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(link, BaseException):
                todo.append(link)
    return seen
