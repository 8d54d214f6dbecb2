"""parse_task: Jira's task object, parsed defensively."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import JiraBadResponse
from monitor.jira.payload import TaskInfo, parse_task

OFFICIAL_EXAMPLE = (
    b'{"self":"https://your-domain.atlassian.net/rest/api/3/task/1","id":"1",'
    b'"description":"Task description","status":"COMPLETE",'
    b'"result":"the task result, this may be any JSON","submittedBy":10000,"progress":100,'
    b'"elapsedRuntime":156,"submitted":1501708132800,"started":1501708132900,'
    b'"finished":1501708133000,"lastUpdate":1501708133000}'
)


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "self": "https://x.atlassian.net/rest/api/3/task/7",
        "id": "7",
        "status": "RUNNING",
        "submittedBy": 10000,
        "progress": 40,
        "elapsedRuntime": 1000,
        "submitted": 1_700_000_000_000,
        "lastUpdate": 1_700_000_001_000,
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not DROP}).encode()


DROP = object()


def test_official_example() -> None:
    info = parse_task(OFFICIAL_EXAMPLE, expected_id="1")
    assert info == TaskInfo(
        task_id="1",
        status="COMPLETE",
        progress=100,
        message=None,
        description="Task description",
        result="the task result, this may be any JSON",
        elapsed_runtime_ms=156,
        submitted=datetime(2017, 8, 2, 21, 8, 52, 800_000, tzinfo=UTC),
        started=datetime(2017, 8, 2, 21, 8, 52, 900_000, tzinfo=UTC),
        finished=datetime(2017, 8, 2, 21, 8, 53, tzinfo=UTC),
        last_update=datetime(2017, 8, 2, 21, 8, 53, tzinfo=UTC),
        anomalies=(),
    )
    assert info.terminal


def test_in_flight_task_without_optional_fields_has_no_anomaly() -> None:
    info = parse_task(body(), expected_id="7")
    assert info.status == "RUNNING"
    assert not info.terminal
    assert info.started is None and info.finished is None and info.result is None
    assert info.anomalies == ()


@pytest.mark.parametrize("status", ["COMPLETE", "FAILED", "CANCELLED", "DEAD"])
def test_terminal_statuses(status: str) -> None:
    assert parse_task(body(status=status), expected_id="7").terminal


def test_unknown_status_is_kept_and_reported() -> None:
    info = parse_task(body(status="PAUSED"), expected_id="7")
    assert info.status == "PAUSED"
    assert not info.terminal
    assert info.anomalies == ('status: unknown value "PAUSED"',)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"RUNNING"',
        b"null",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"id": "7"}',
        b'{"status": null}',
        b'{"status": 3}',
        b'{"status": ""}',
        b'{"status": "  "}',
        b'{"status": {"name": "RUNNING"}}',
        b"\xff\xfe{}",
        b'{"status": "RUN\xc3NING"}',
        b"[" * 100_000,
    ],
)
def test_unusable_bodies_raise_bad_response(raw: bytes) -> None:
    with pytest.raises(JiraBadResponse) as caught:
        parse_task(raw, expected_id="7")
    assert caught.value.transient
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), ("42", 42), (" 42 ", 42), (42.9, 42), ("42.9", 42), (-5, 0), (150, 100)],
)
def test_progress_accepts_numbers_and_clamps(value: object, expected: int) -> None:
    assert parse_task(body(progress=value), expected_id="7").progress == expected


def test_clamping_is_noted() -> None:
    info = parse_task(body(progress=150), expected_id="7")
    assert info.anomalies == ("progress: out of range, got 150 (clamped)",)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"value": 3}, "{...}"),
        ([3], "[...]"),
        (True, "true"),
        ("lots", '"lots"'),
        ("1_000", '"1_000"'),
        ("\u0664\u0662", '"\\u0664\\u0662"'),
        (None, None),
    ],
)
def test_odd_progress_is_an_anomaly(value: object, shown: str | None) -> None:
    info = parse_task(body(progress=value), expected_id="7")
    assert info.progress is None
    expected = "progress: got null" if shown is None else f"progress: expected integer, got {shown}"
    assert info.anomalies == (expected,)


def test_missing_required_fields_are_anomalies() -> None:
    raw = body(id=DROP, progress=DROP, elapsedRuntime=DROP, submitted=DROP, lastUpdate=DROP)
    info = parse_task(raw, expected_id="7")
    assert info.task_id == "7"
    assert info.progress is None and info.elapsed_runtime_ms is None
    assert info.submitted is None and info.last_update is None
    assert info.anomalies == (
        "id: missing",
        "progress: missing",
        "elapsedRuntime: missing",
        "submitted: missing",
        "lastUpdate: missing",
    )


def test_other_id_is_an_anomaly_and_the_expected_id_is_kept() -> None:
    info = parse_task(body(id="8"), expected_id="7")
    assert info.task_id == "7"
    assert info.anomalies == ('id: expected "7", got "8"',)
    assert parse_task(body(id=7), expected_id="7").anomalies == ("id: expected string, got 7",)


@pytest.mark.parametrize("value", [1_700_000_000, 0, -1, 99_999_999_999_999, "soon", 1e300])
def test_timestamps_out_of_range_or_odd(value: object) -> None:
    info = parse_task(body(submitted=value, started=value), expected_id="7")
    assert info.submitted is None and info.started is None
    assert len(info.anomalies) == 2
    assert info.anomalies[0].startswith("submitted: ")
    assert info.anomalies[1].startswith("started: ")


def test_timestamp_as_numeric_string() -> None:
    info = parse_task(body(submitted="1700000000000"), expected_id="7")
    assert info.submitted == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_odd_strings_and_negative_runtime() -> None:
    info = parse_task(body(message=5, description=["x"], elapsedRuntime=-3), expected_id="7")
    assert info.message is None and info.description is None and info.elapsed_runtime_ms is None
    assert set(info.anomalies) == {
        "message: expected string, got 5",
        "description: expected string, got [...]",
        "elapsedRuntime: negative, got -3",
    }


def test_result_is_any_json() -> None:
    result = {"deleted": [1, 2], "ok": True}
    assert parse_task(body(result=result), expected_id="7").result == result


def test_non_json_numbers_and_huge_integers_are_anomalies() -> None:
    raw = body().replace(b'"progress": 40', b'"progress": NaN')
    raw = raw.replace(b'"elapsedRuntime": 1000', b'"elapsedRuntime": ' + b"9" * 5000)
    info = parse_task(raw, expected_id="7")
    assert info.progress is None and info.elapsed_runtime_ms is None
    assert len(info.anomalies) == 2


def test_anomaly_texts_are_short_single_lines() -> None:
    info = parse_task(body(status="x\n" * 100, id="y" * 1000), expected_id="7")
    assert all("\n" not in a and len(a) < 100 for a in info.anomalies)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["COMPLETE", "RUNNING", "42", "1700000000000", "-1", "1e400"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        *("id", "status", "progress", "message", "description", "result", "elapsedRuntime"),
        *("submitted", "started", "finished", "lastUpdate", "self", "submittedBy"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values))
def test_any_json_object_parses_or_raises_bad_response(fields: dict[str, object]) -> None:
    raw = json.dumps(fields).encode()
    try:
        info = parse_task(raw, expected_id="7")
    except JiraBadResponse:
        assert not isinstance(fields.get("status"), str) or not str(fields["status"]).strip()
        return
    assert info.status == fields["status"]
    assert info.progress is None or 0 <= info.progress <= 100
    for when in (info.submitted, info.started, info.finished, info.last_update):
        assert when is None or (when.tzinfo is UTC and 2000 <= when.year < 2200)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_never_raise_anything_else(raw: bytes) -> None:
    with contextlib.suppress(JiraBadResponse):
        parse_task(raw, expected_id="7")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(JiraBadResponse):
        parse_task(text.encode("utf-8", "surrogatepass"), expected_id="7")


def test_lone_surrogates_become_replacement_characters_everywhere() -> None:
    raw = body(
        status="RUNNING\ud800",
        message="half \ud83d of a pair",
        description="\udfff",
        result={"key\udc00": ["\ud800", 1, {"pair": "\ud83d\ude00"}]},
    )
    assert b"\\ud800" in raw  # json.dumps escaped them, as a server might
    info = parse_task(raw, expected_id="7")
    assert info.status == "RUNNING\ufffd"
    assert info.message == "half \ufffd of a pair"
    assert info.description == "\ufffd"
    assert info.result == {"key\ufffd": ["\ufffd", 1, {"pair": "\U0001f600"}]}  # pairs stay


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=20))
def test_every_parsed_string_can_be_stored_as_utf8(text: str) -> None:
    info = parse_task(
        body(
            status=text if text.strip() else "RUNNING",
            message=text,
            description=text,
            result={text: [text]},
        ),
        expected_id="7",
    )
    for value in (info.status, info.message, info.description):
        assert value is not None
        value.encode("utf-8")
    json.dumps(info.result, ensure_ascii=False).encode("utf-8")
