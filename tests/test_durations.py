"""Durations: what parses, what does not, and the round trip through format_duration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.durations import MAX_SECONDS, format_approx, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("750ms", 0.75),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s500ms", 93784.5),
        ("1m30s", 90.0),
        ("2m1ms", 120.001),
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        ("10", 10.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("0s", 0.0),
        ("  5m  ", 300.0),
        ("\t1h\n", 3600.0),
        ("1H30M", 5400.0),
        ("750MS", 0.75),
        ("1h 30m", 5400.0),
        ("5 m", 300.0),
        (10, 10.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_good(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5s", "negative"),
        ("-5", "negative"),
        (-1, "negative"),
        (-0.5, "negative"),
        ("5x", "unknown unit 'x'"),
        ("5 minutes", "unknown unit 'minutes'"),
        ("1w", "unknown unit 'w'"),
        ("1m1m", "repeated"),
        ("1s1ms1s", "repeated"),
        ("1s1m", "out of order"),
        ("1ms1s", "out of order"),
        ("30m1h", "out of order"),
        ("1.5.5s", "expected numbers with units"),
        ("1h30", "expected numbers with units"),
        ("h", "expected numbers with units"),
        ("1 2h", "expected numbers with units"),
        ("nan", "expected numbers with units"),
        ("inf", "expected numbers with units"),
        ("1e3", "unknown unit 'e'"),
        ("\u0661\u0660s", "expected numbers with units"),  # Arabic-Indic digits
        (math.nan, "finite"),
        (math.inf, "finite"),
        (True, "boolean"),
        (False, "boolean"),
        ("9" * 400 + "d", "finite"),
        (10**400, "finite"),
    ],
)
def test_parse_bad(text: str | int | float, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0001, "0s"),
        (0.75, "750ms"),
        (1, "1s"),
        (60, "1m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
        (93784.5, "1d2h3m4s500ms"),
        (7776000, "90d"),
        (120.001, "2m1ms"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf])
def test_format_bad(seconds: float) -> None:
    with pytest.raises(ValueError, match=r"negative|finite"):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=int(MAX_SECONDS * 1000)))
def test_round_trip_whole_milliseconds(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text", ["36500d1ms", "36501d", "99999999999d", 3_153_600_001, 1e300, "9" * 400]
)
def test_durations_above_the_maximum_are_refused(text: str | int | float) -> None:
    # Longer ones broke date arithmetic (OverflowError) at every use instead of at load.
    with pytest.raises(ValueError, match=r"must be at most 36500d|finite"):
        parse_duration(text)
    assert parse_duration("36500d") == MAX_SECONDS


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (45.4, "45s"), (250, "4m10s"), (7384, "2h3m"), (-90, "1m30s"),
     (90061, "1d1h"), (3600, "1h")],
)  # fmt: skip
def test_format_approx_keeps_two_units(seconds: float, text: str) -> None:
    assert format_approx(seconds) == text
