"""Structured logging: structlog for our events, stdlib logging of libraries through the same
renderer, one line per event on stdout.

`json` renders one JSON object per line (what journald and `jq` want); `console` renders
aligned, coloured text for a person at a terminal; `auto` picks console on a TTY. Every event
passes `redact`, which replaces each registered secret wherever it appears (in any value, at
any depth) and truncates oversized values; then the rendered line itself is scrubbed again
(`scrub_text`), because a renderer adds text of its own (the console renderer formats an
exception's traceback and message after every processor has run), so a token cannot reach
the journal or a terminal even by way of an exception message. In `console` format, the
control characters of values are shown escaped (`monitor.terminal.visible`), as in every
other human output.

Under systemd, stdout is a stream to journald, which gives every line of a stream the same
priority unless the line starts with a syslog prefix `<N>` (`SyslogLevelPrefix=yes`, systemd's
default). So when stdout is the journal stream (`monitor.systemd.is_journal_stream`), each line
gets the prefix of its level (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug): journald
strips it, the stored message is the bare JSON object, and `journalctl -p warning` works.
Anywhere else (a terminal, a pipe, a file) there is no prefix.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

from monitor.states import LogFormat, LogLevel
from monitor.systemd import is_journal_stream
from monitor.terminal import visible

MAX_VALUE_CHARS = 2000
_REDACTED = "********"
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Never let `value` be rendered: every occurrence is replaced by asterisks.

    Register every form a secret travels in (`monitor.config.credential_forms`): the raw
    token, and the base64 of `email:token` that basic auth sends, which contains no copy of
    the token's text."""
    if len(value) >= 4:  # a one-letter "secret" would blank out every log line
        _secrets.add(value)
        # As a renderer writes it: JSON escapes (`\"`, `\u00e9`), repr() escapes.
        _secrets.add(json.dumps(value)[1:-1])
        _secrets.add(repr(value)[1:-1])


def scrub_text(text: str) -> str:
    """`text` with every registered secret replaced by asterisks."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        value = scrub_text(value)
        if len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS] + f"... ({len(value) - MAX_VALUE_CHARS} more chars)"
        return value
    if depth > 8:
        return "..."
    if isinstance(value, Mapping):
        return {k: _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub(str(value), depth)


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: scrub secrets and truncate every value of the event."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub(value)
    return event_dict


def escape_controls(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor for the console: text values with control characters escaped, so
    that Jira's text cannot act on the terminal the log is read on."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = visible(value)
    return event_dict


class _Scrubbed:
    """A renderer whose output is scrubbed of secrets once more, after rendering."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return scrub_text(str(self._renderer(logger, method, event_dict)))


def order_keys(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: timestamp, level and event first, so lines read well in a pager."""
    head = {k: event_dict.pop(k) for k in ("timestamp", "level", "event") if k in event_dict}
    return {**head, **event_dict}


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg ... 7 debug) of a stdlib logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class _PriorityPrefixFormatter(structlog.stdlib.ProcessorFormatter):
    """Prefixes every rendered line with `<N>`, the record's syslog priority, for journald."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        # A console rendering may span lines (a traceback); journald reads each line alone.
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def configure_logging(
    fmt: LogFormat = LogFormat.AUTO,
    level: LogLevel = LogLevel.INFO,
    stream: TextIO | None = None,
    *,
    level_prefix: bool | None = None,
) -> None:
    """Route structlog and stdlib logging to `stream` (stdout) through one renderer.

    `level_prefix` puts journald's `<N>` priority prefix before each line; None (the default)
    does so exactly when `stream` is the journal stream systemd set up. Safe to call again (a
    reload changes the level or format in place).
    """
    stream = stream if stream is not None else sys.stdout
    if level_prefix is None:
        level_prefix = is_journal_stream(stream, os.environ)
    if fmt == LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_handler(fmt, stream, shared, level_prefix=level_prefix))
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(numeric)
    # Libraries are chatty at info; their warnings and errors are what an operator needs.
    for noisy in ("alembic", "apscheduler", "urllib3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


def _handler(
    fmt: LogFormat, stream: TextIO, shared: list[Any], *, level_prefix: bool
) -> logging.Handler:
    """The one handler: `fmt`'s renderer (JSON or console), secrets scrubbed after rendering."""
    renderer: Any
    if fmt == LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        tail: list[Any] = [structlog.processors.format_exc_info, redact, order_keys]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        tail = [redact, escape_controls]
    handler = logging.StreamHandler(stream)
    formatter = _PriorityPrefixFormatter if level_prefix else structlog.stdlib.ProcessorFormatter
    handler.setFormatter(
        formatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                _Scrubbed(renderer),
            ],
        )
    )
    return handler


def get_logger(name: str = "monitor") -> FilteringBoundLogger:
    """The structlog logger that every module logs events through."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


def null_logger() -> FilteringBoundLogger:
    """A logger that drops everything: for library code run by a CLI command that reports
    the outcome in its own words."""
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    )
    return logger
