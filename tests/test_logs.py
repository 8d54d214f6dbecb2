"""Log lines: one JSON object each, stdlib logging through the same renderer, secrets scrubbed."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest

from monitor import logs
from monitor.config import JiraSettings, Secret, credential_forms
from monitor.states import LogFormat, LogLevel


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure_logging(LogFormat.JSON, LogLevel.INFO, stream=out)
    yield out
    logs.configure_logging(LogFormat.JSON, LogLevel.INFO, stream=io.StringIO())


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_are_json_lines_with_utc_timestamps(stream: io.StringIO) -> None:
    logs.get_logger().info("task.finished", task_id="1", progress=100)
    [line] = lines(stream)
    assert (line["event"], line["level"], line["task_id"], line["progress"]) == (
        "task.finished", "info", "1", 100,
    )  # fmt: skip
    assert str(line["timestamp"]).endswith("Z")
    assert list(line)[:3] == ["timestamp", "level", "event"]


def test_library_logging_goes_through_the_same_renderer(stream: io.StringIO) -> None:
    logging.getLogger("apscheduler.scheduler").warning("Run time of job %s was missed", "tick")
    logging.getLogger("apscheduler.scheduler").info("chatter below warning is dropped")
    [line] = lines(stream)
    assert line["event"] == "Run time of job tick was missed"
    assert line["level"] == "warning"


def test_level_filters(stream: io.StringIO) -> None:
    logs.configure_logging(LogFormat.JSON, LogLevel.WARNING, stream=stream)
    logs.get_logger().info("quiet")
    logs.get_logger().warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_secrets_are_scrubbed_everywhere(stream: io.StringIO) -> None:
    logs.register_secret("canary-LOG-91ab")
    log = logs.get_logger()
    log.warning("jira.error", error="401 for canary-LOG-91ab", nested={"a": ["x canary-LOG-91ab"]})
    try:
        raise RuntimeError("boom canary-LOG-91ab")
    except RuntimeError:
        log.exception("poller.task_failed")
    logging.getLogger("urllib3").error("header Authorization: canary-LOG-91ab")
    text = stream.getvalue()
    assert "canary-LOG-91ab" not in text
    assert text.count("********") >= 4
    assert len(lines(stream)) == 3


def test_large_values_are_truncated(stream: io.StringIO) -> None:
    logs.get_logger().info("task.finished", result="x" * 100_000)
    [line] = lines(stream)
    assert len(str(line["result"])) < logs.MAX_VALUE_CHARS + 100


def test_console_format_is_not_json(stream: io.StringIO) -> None:
    logs.configure_logging(LogFormat.CONSOLE, LogLevel.INFO, stream=stream)
    logs.get_logger().info("daemon.started", version="1")
    assert "daemon.started" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())


def test_every_form_of_the_credentials_is_scrubbed(stream: io.StringIO) -> None:
    jira = JiraSettings(url="https://x.atlassian.net", email="ops@example.com")
    token = Secret("canary-FORMS-77c2")
    for form in credential_forms(jira, token):
        logs.register_secret(form)
    basic = base64.b64encode(b"ops@example.com:canary-FORMS-77c2").decode()
    log = logs.get_logger()
    log.warning("jira.error", error=f"echoed Authorization: Basic {basic}")
    log.warning("jira.error", error=f"echoed {basic}", nested={"h": f"Bearer {token.reveal()}"})
    logging.getLogger("urllib3").error("header %s", f"Basic {basic}")
    text = stream.getvalue()
    assert basic not in text and token.reveal() not in text
    assert basic[:20] not in text  # no part of it is left around the asterisks
    assert text.count("********") >= 4


@pytest.mark.parametrize("fmt", [LogFormat.CONSOLE, LogFormat.JSON])
def test_exception_text_is_redacted_after_rendering(stream: io.StringIO, fmt: LogFormat) -> None:
    logs.configure_logging(fmt, LogLevel.INFO, stream=stream)
    logs.register_secret("canary-EXC-5b7e")
    try:
        raise RuntimeError('boom "canary-EXC-5b7e"')
    except RuntimeError:
        logs.get_logger().exception("poller.task_failed")
    text = stream.getvalue()
    assert "boom" in text and "RuntimeError" in text
    assert "canary-EXC-5b7e" not in text


def test_console_logs_show_control_characters_escaped(stream: io.StringIO) -> None:
    logs.configure_logging(LogFormat.CONSOLE, LogLevel.INFO, stream=stream)
    logs.get_logger().info("task.status_changed", to="\x1b]0;owned\x07RUNNING\r\u202e")
    # A library's message is the event itself, which the console renderer shows as it is.
    logging.getLogger("urllib3").warning("Retrying %s", "\x1b]0;owned\x07/\r\u202e")
    text = stream.getvalue()
    assert "\\x1b]0;owned\\x07RUNNING\\r\\u202e" in text
    assert "Retrying \\x1b]0;owned\\x07/\\r\\u202e" in text
    assert not set(text) & {"\x1b", "\x07", "\r", "\u202e"}
