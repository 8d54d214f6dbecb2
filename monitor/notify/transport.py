"""Sending one message through one channel: Apprise, or a command (`exec:`).

`send` either returns (delivered) or raises `DeliveryError` with a one-line reason that holds
no part of the channel's URL. Every send is bounded by the channel's `timeout`.

- Apprise (imported here, on first use only: the optional extra `jira-task-monitor[apprise]`,
  ~12 MB of memory and 0.1-0.6 s of start the daemon does not pay without a channel that
  needs it). The idempotency key goes out as the `Idempotency-Key` header of the webhook
  services that take headers (`json://`, `form://`, `xml://`), and `json://` also carries it
  as `idempotency_key` in its body, beside the whole event as `jtm`.
- `exec:COMMAND`: run without a shell, the message's JSON on standard input, and
  `JTM_IDEMPOTENCY_KEY` and `JTM_EVENT` in its environment; exit 0 means delivered.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from monitor.durations import format_duration
from monitor.notify.channels import Channel

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_ERROR_CHARS = 300


class DeliveryError(Exception):
    """A message was not delivered; the text says why (never with the channel's URL)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What goes out: `key` is the idempotency key; `body` the JSON document (the event's
    fields, or a group's), which carries the key as `idempotency_key` too."""

    key: str
    event: str
    title: str
    text: str
    body: dict[str, Any]


def send(channel: Channel, message: Message) -> None:
    """Deliver `message` through `channel`, or raise DeliveryError."""
    if channel.is_exec:
        _run(channel, message)
    else:
        _apprise(channel, message)


def _run(channel: Channel, message: Message) -> None:
    argv = channel.command
    env = {**os.environ, "JTM_IDEMPOTENCY_KEY": message.key, "JTM_EVENT": message.event}
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(message.body, ensure_ascii=False).encode(),
            capture_output=True,
            timeout=channel.timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeliveryError(
            f"{argv[0]} ran over the channel's timeout ({format_duration(channel.timeout_s)})"
        ) from None
    except OSError as exc:
        raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        tail = f": {said[-1][:MAX_ERROR_CHARS]}" if said else ""
        raise DeliveryError(f"{argv[0]} exited with status {done.returncode}{tail}")


class _ThreadLog(logging.Handler):
    """Apprise's warnings raised by this thread's send (it reports failures only there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


def apprise_plugin(channel: Channel) -> Any:
    """The Apprise plugin for `channel`'s URL; DeliveryError if Apprise does not know it."""
    import apprise

    plugin = apprise.Apprise.instantiate(channel.url, suppress_exceptions=True)
    if not plugin:
        raise DeliveryError("not a URL that Apprise understands")
    return plugin


def _apprise(channel: Channel, message: Message) -> None:
    plugin = apprise_plugin(channel)
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(plugin, name):
            setattr(plugin, name, channel.timeout_s)
    headers = getattr(plugin, "headers", None)
    if isinstance(headers, dict):
        headers[IDEMPOTENCY_HEADER] = message.key
    extras = getattr(plugin, "payload_extras", None)
    if isinstance(extras, dict) and type(plugin).__name__ == "NotifyJSON":
        extras["idempotency_key"] = message.key
        extras["jtm"] = message.body
    capture = _ThreadLog()
    logger = logging.getLogger("apprise")
    logger.addHandler(capture)
    try:
        delivered = plugin.notify(body=message.text, title=message.title)
    except Exception as exc:  # a plugin bug must not kill the sender
        raise DeliveryError(f"apprise failed: {type(exc).__name__}") from None
    finally:
        logger.removeHandler(capture)
    if not delivered:
        reason = capture.lines[-1] if capture.lines else "the service did not accept it"
        raise DeliveryError(_without(reason, channel.url)[:MAX_ERROR_CHARS])


def _without(text: str, url: str) -> str:
    """`text` with the channel's URL (and its longer parts) taken out."""
    for part in sorted({url, *url.replace("?", "/").split("/")}, key=len, reverse=True):
        if len(part) >= 8 and part in text:
            text = text.replace(part, "***")
    return " ".join(text.split())
