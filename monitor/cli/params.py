"""Click parameter types shared by the commands."""

from __future__ import annotations

from typing import Any

import click

from monitor.durations import parse_duration


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
