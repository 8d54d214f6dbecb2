"""Parse a Jira task object (`TaskProgressBeanObject`) defensively.

Atlassian's own examples omit required fields and put objects where integers are declared, so a
missing or odd field never crashes the monitor: it is set to None and described in
`TaskInfo.anomalies`. Only two things make a body unusable, and both raise `JiraBadResponse`
(transient): it is not a JSON object (including invalid UTF-8), or it has no usable `status`.

Anomalies are recorded for the fields `TaskInfo` carries (`id`, `status`, `progress`,
`elapsedRuntime`, `submitted`, `lastUpdate` when missing or odd; `description`, `message`,
`started`, `finished` only when present and odd). `self` and `submittedBy` are not used by the
monitor and are not checked: `self` in particular is ignored on purpose, because with OAuth it
points at the site rather than at the configured base.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.errors import JiraBadResponse
from monitor.states import JiraStatus, is_terminal

__all__ = ["BulkCounts", "TaskInfo", "parse_task"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Epoch milliseconds outside [2000-01-01, 2200-01-01) are taken as garbage (seconds sent instead
# of milliseconds, a zero, a sentinel), not as real instants.
_MIN_EPOCH_MS = 946_684_800_000
_MAX_EPOCH_MS = 7_258_118_400_000
_KNOWN_STATUSES = frozenset(s.value for s in JiraStatus)
# ASCII only: Python's int() would also accept "1_000", " 42 " and non-ASCII digits.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]{1,30}\.[0-9]{0,30}|\.[0-9]{1,30})", re.ASCII)
_SHOWN_MAX = 40


@dataclass(frozen=True, slots=True)
class BulkCounts:
    """The per-issue counts of a bulk operation, each None when Jira did not say.

    `succeeded` is the number of `processedAccessibleIssues`, `failed` that of
    `failedAccessibleIssues` (whose reasons are the observation's `result`).
    """

    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    invalid: int | None = None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One observation of a Jira task, as far as the body allowed.

    `status` is Jira's string verbatim (an unknown value is kept, and noted in `anomalies`).
    Times are aware UTC datetimes. Every other field is None when absent or unusable; each
    unusable or missing-but-required field adds one short text to `anomalies`.
    """

    task_id: str
    status: str
    progress: int | None
    message: str | None
    description: str | None
    result: object
    elapsed_runtime_ms: int | None
    submitted: datetime | None
    started: datetime | None
    finished: datetime | None
    last_update: datetime | None
    anomalies: tuple[str, ...] = ()
    server_time: datetime | None = None
    """Jira's clock when it answered (the HTTP Date header), if it said; set by the client."""
    bulk: BulkCounts | None = None
    """The per-issue counts of a bulk operation (`monitor.jira.bulk`); None for a task."""

    @property
    def terminal(self) -> bool:
        """True when the status is one after which the task never changes again."""
        return is_terminal(self.status)


def parse_task(body: bytes, *, expected_id: str) -> TaskInfo:
    """Parse the body of `GET /task/{id}`.

    Raises `JiraBadResponse` (and nothing else) when the body is not UTF-8 JSON holding an
    object with a non-blank string `status`. `task_id` is always `expected_id`: the id the caller
    asked for; a different or missing `id` in the body is an anomaly.
    """
    data = _load_object(body)
    anomalies: list[str] = []

    status = status_of(data, anomalies)

    if "id" not in data:
        anomalies.append("id: missing")
    elif not isinstance(data["id"], str):
        anomalies.append(f"id: expected string, got {_show(data['id'])}")
    elif data["id"] != expected_id:
        anomalies.append(f"id: expected {_show(expected_id)}, got {_show(data['id'])}")

    progress = _integer(data, "progress", anomalies, required=True)
    if progress is not None and not 0 <= progress <= 100:
        anomalies.append(f"progress: out of range, got {progress} (clamped)")
        progress = min(100, max(0, progress))
    elapsed = _integer(data, "elapsedRuntime", anomalies, required=True)
    if elapsed is not None and elapsed < 0:
        anomalies.append(f"elapsedRuntime: negative, got {elapsed}")
        elapsed = None

    return TaskInfo(
        task_id=expected_id,
        status=status,
        progress=progress,
        message=_string(data, "message", anomalies),
        description=_string(data, "description", anomalies),
        result=data.get("result"),
        elapsed_runtime_ms=elapsed,
        submitted=_instant(data, "submitted", anomalies, required=True),
        started=_instant(data, "started", anomalies, required=False),
        finished=_instant(data, "finished", anomalies, required=False),
        last_update=_instant(data, "lastUpdate", anomalies, required=True),
        anomalies=tuple(anomalies),
    )


def status_of(data: dict[str, object], anomalies: list[str]) -> str:
    """The body's `status`, kept verbatim; an undocumented value is an anomaly, a missing or
    blank one makes the body unusable (`JiraBadResponse`)."""
    status = data.get("status")
    if not isinstance(status, str) or not status.strip():
        raise JiraBadResponse(f"no usable status, got {_show(status)}")
    if status not in _KNOWN_STATUSES:
        anomalies.append(f"status: unknown value {_show(status)}")
    return status


def _load_object(body: bytes) -> dict[str, object]:
    # Errors are raised outside the `except` blocks: nothing of the decoder is chained.
    data: object = None
    problem = None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        problem = "body is not valid UTF-8"
    if problem is None:
        try:
            data = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
            if _SURROGATE_ESCAPE.search(text):
                data = _without_lone_surrogates(data)
        except (ValueError, RecursionError):  # RecursionError: pathologically nested arrays
            problem = "body is not JSON"
    if problem is None:
        if isinstance(data, dict):
            return data
        problem = f"body is not a JSON object, got {_show(data)}"
    raise JiraBadResponse(problem)


def _without_lone_surrogates(value: object) -> object:
    """`value` with each lone surrogate replaced by U+FFFD.

    JSON may escape one ("\\ud800") that pairs with nothing; no UTF-8 can hold it, so the
    database would refuse the poll's write (again at every poll) and a log line could not
    carry it. Valid UTF-8 holds no surrogates: only such escapes bring them in.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _json_int(text: str) -> int | float:
    # Python refuses to convert integers of more than 4300 digits; such a value in an unused
    # field must not make the whole body unusable. A float (possibly inf) is then an anomaly.
    return int(text) if len(text) <= 400 else float(text)


def _json_constant(text: str) -> float:
    # NaN / Infinity are not JSON; keep them as floats so that the field becomes an anomaly.
    return float(text)


def _integer(
    data: dict[str, object], key: str, anomalies: list[str], *, required: bool
) -> int | None:
    """An integer field: ints, finite floats (truncated) and numeric strings; never bools."""
    if key not in data or data[key] is None:
        if required:
            anomalies.append(f"{key}: missing" if key not in data else f"{key}: got null")
        return None
    value = data[key]
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif isinstance(value, float):
        if math.isfinite(value):
            return int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            return int(text)
        if _FLOAT_TEXT.fullmatch(text):
            return int(float(text))
    anomalies.append(f"{key}: expected integer, got {_show(value)}")
    return None


def _instant(
    data: dict[str, object], key: str, anomalies: list[str], *, required: bool
) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime; values outside 2000..2200 are anomalies."""
    millis = _integer(data, key, anomalies, required=required)
    if millis is None:
        return None
    if not _MIN_EPOCH_MS <= millis < _MAX_EPOCH_MS:
        anomalies.append(f"{key}: epoch milliseconds out of range, got {millis}")
        return None
    return _EPOCH + timedelta(milliseconds=millis)


def _string(data: dict[str, object], key: str, anomalies: list[str]) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    anomalies.append(f"{key}: expected string, got {_show(value)}")
    return None


def _show(value: object) -> str:
    """A short, single-line rendering of a JSON value for an anomaly or an error message."""
    if isinstance(value, dict):
        return "{...}" if value else "{}"
    if isinstance(value, list):
        return "[...]" if value else "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    # json.dumps: quoted, control characters escaped, so always one line.
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"
