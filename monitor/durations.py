"""Durations as operators write them: "750ms", "30s", "5m", "2h", "7d", "1h30m", or bare seconds.

`parse_duration` turns such text into float seconds and `format_duration` turns seconds back into
the shortest text of the same form, so that `parse_duration(format_duration(x)) == x` for every
whole number of milliseconds. Both raise `ValueError` with a short reason; callers add the
context (the config key and file, or the command-line option) and pick the error class.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

# Largest unit first: a compound duration must use them in this order, each at most once.
_UNITS: tuple[tuple[str, Decimal], ...] = (
    ("d", Decimal(86400)),
    ("h", Decimal(3600)),
    ("m", Decimal(60)),
    ("s", Decimal(1)),
    ("ms", Decimal("0.001")),
)
_UNIT_RANK = {name: rank for rank, (name, _) in enumerate(_UNITS)}
_UNIT_NAMES = ", ".join(name for name, _ in _UNITS)

# ASCII digits only: str.isdigit() and \d also accept other scripts' digits.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_BARE = re.compile(_NUMBER)
# One component: a number, then a unit; spaces are allowed between and after them, so that
# "1h 30m" reads as an operator means it.
_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)\s*")

MAX_SECONDS = 36500 * 86400.0
"""The longest duration accepted: 36500d, about 100 years. Longer ones are mistakes, and
they break date arithmetic (a time past the year 9999, a wait beyond what a thread can
wait), so they are refused where they are read rather than failing at every use."""


def parse_duration(text: str | int | float) -> float:
    """Return the duration `text` describes, in seconds (>= 0, finite).

    Accepted: a bare number of seconds (an int, a float, or a string such as "10" or "2.5"), or
    one or more number+unit components with units d, h, m, s, ms (case-insensitive), largest
    first and each at most once, e.g. "1d2h3m4s500ms". Whitespace around the text and between
    components is ignored. Zero is accepted; whether zero is allowed is the caller's rule.

    Raises `ValueError` with a short reason (no context) for anything else: empty text,
    negative or non-finite values, values above `MAX_SECONDS`, booleans, unknown units,
    repeated or out-of-order units, malformed numbers such as "1.5.5s".
    """
    # bool is an int subclass; `verify_tls = true` given where a duration belongs is a mistake.
    if isinstance(text, bool):
        raise ValueError("expected a duration, not a boolean")
    if isinstance(text, int | float):
        try:
            return _bounded(float(text))
        except OverflowError:  # an int beyond float's range
            raise ValueError("must be a finite number") from None

    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("empty duration")
    if cleaned.startswith("-"):
        raise ValueError("must not be negative")
    if _BARE.fullmatch(cleaned):
        return _bounded(float(Decimal(cleaned)))

    total = Decimal(0)
    seen: set[int] = set()
    pos = 0
    while pos < len(cleaned):
        match = _PART.match(cleaned, pos)
        if match is None:
            raise ValueError(f"expected numbers with units ({_UNIT_NAMES}), e.g. '1h30m'")
        number, unit = match.groups()
        rank = _UNIT_RANK.get(unit)
        if rank is None:
            raise ValueError(f"unknown unit {unit!r} (use {_UNIT_NAMES})")
        if rank in seen:
            raise ValueError(f"unit {unit!r} repeated")
        if seen and rank < max(seen):
            raise ValueError(f"units out of order: {unit!r} after {_UNITS[max(seen)][0]!r}")
        total += Decimal(number) * _UNITS[rank][1]
        seen.add(rank)
        pos = match.end()
    # Decimal keeps each component exact, so the one rounding happens here and "750ms"
    # is exactly float(0.75), which the round trip through format_duration relies on.
    return _bounded(float(total))


def _bounded(seconds: float) -> float:
    if _checked(seconds) > MAX_SECONDS:
        raise ValueError(f"must be at most {format_duration(MAX_SECONDS)} (about 100 years)")
    return seconds


def _checked(seconds: float) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("must be a finite number")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Return `seconds` as compact text, largest unit first: 5400 -> "1h30m", 0.75 -> "750ms".

    The value is rounded to whole milliseconds; zero (or less than half a millisecond) is "0s".
    Raises `ValueError` for negative or non-finite values.
    """
    remaining = round(_checked(float(seconds)) * 1000)
    if remaining == 0:
        return "0s"
    parts: list[str] = []
    for name, size in _UNITS:
        unit_ms = int(size * 1000)
        count, remaining = divmod(remaining, unit_ms)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts)


_COMPONENT = re.compile(r"[0-9]+[a-z]+")


def format_approx(seconds: float) -> str:
    """Return `|seconds|` rounded to whole seconds, in its two largest units, for people:
    7384 -> "2h3m", 250 -> "4m10s", 45.4 -> "45s"."""
    return "".join(_COMPONENT.findall(format_duration(round(abs(seconds))))[:2])
