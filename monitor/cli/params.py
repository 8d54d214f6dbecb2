"""Click parameter types shared by the commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from click.shell_completion import CompletionItem

from monitor.durations import parse_duration
from monitor.states import JiraStatus
from monitor.terminal import has_unsafe, visible


class Duration(click.ParamType[float, Any]):
    """A duration such as 30s, 5m, 2h, 7d or 1h30m, as seconds (a bad one is exit 2)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(
                f"{value!r} is not a duration ({exc}); use e.g. 30s, 5m, 2h, 1h30m", param, ctx
            )
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than zero", param, ctx)
        return seconds


DURATION = Duration()


class PointInTime(click.ParamType[datetime, Any]):
    """A time: a duration ago (2h, 7d) or an ISO 8601 date or time (naive means UTC)."""

    name = "when"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
        except ValueError as exc:
            problem = str(exc)
        try:
            when = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            if problem.startswith("must be at most"):  # a duration, too long ago
                self.fail(f"{value!r} is not a duration ago: it {problem}", param, ctx)
            self.fail(
                f"{value!r} is neither a duration ago (e.g. 2h, 7d) nor a time "
                "(e.g. 2026-03-01 or 2026-03-01T12:00Z)",
                param,
                ctx,
            )
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


WHEN = PointInTime()


class JiraStatusParam(click.ParamType[str, Any]):
    """A Jira status, any case; Jira's documented ones complete in the shell, others pass."""

    name = "status"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().upper()
        if not text:
            self.fail("a status cannot be empty", param, ctx)
        return text

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        prefix = incomplete.upper()
        return [CompletionItem(s.value) for s in JiraStatus if s.value.startswith(prefix)]


JIRA_STATUS = JiraStatusParam()


class LabelParam(click.ParamType[str, Any]):
    """A task's label: any text without control characters (a bad one is exit 2).

    A label is printed by every human output; refusing control characters here keeps a
    label's escape sequences out of the database, not only off the screen."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if has_unsafe(text):
            self.fail(
                f"{visible(text)!r} contains control characters (escapes, line breaks, "
                "bidi controls); a label must be plain text",
                param,
                ctx,
            )
        return text


LABEL = LabelParam()
