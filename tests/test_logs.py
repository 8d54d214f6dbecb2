"""Log lines: one JSON object each, stdlib logging through the same renderer, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from monitor import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure_logging("json", "info", stream=out)
    yield out
    logs.configure_logging("json", "info", stream=io.StringIO())


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
    logs.configure_logging("json", "warning", stream=stream)
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
    logs.configure_logging("console", "info", stream=stream)
    logs.get_logger().info("daemon.started", version="1")
    assert "daemon.started" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())
