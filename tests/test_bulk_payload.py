"""parse_bulk: Jira's bulk operation progress (`GET /rest/api/3/bulk/queue/{id}`), its real
samples field by field, and both forms of its timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import JiraBadResponse
from monitor.jira import BulkCounts, TaskInfo, parse_bulk
from monitor.jira.diagnosis import jira_error_text

SAMPLES = Path(__file__).parent / "jira_samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_the_complete_sample() -> None:
    info = parse_bulk(sample("bulk-queue-complete.json"), expected_id="10000")
    assert info == TaskInfo(
        task_id="10000",
        status="COMPLETE",
        progress=100,
        message=None,
        description=None,
        result=None,  # no failedAccessibleIssues in the sample
        elapsed_runtime_ms=None,
        submitted=datetime(2024, 1, 1, 12, 0, tzinfo=UTC),  # created 1704110400000
        started=datetime(2024, 1, 1, 12, 1, tzinfo=UTC),  # 1704110460000
        finished=datetime(2024, 1, 1, 12, 2, tzinfo=UTC),  # terminal: its `updated`
        last_update=datetime(2024, 1, 1, 12, 2, tzinfo=UTC),  # 1704110520000
        anomalies=(),
        bulk=BulkCounts(total=2, succeeded=2, failed=None, invalid=0),
    )
    assert info.terminal


def test_the_running_sample_and_its_missing_digit() -> None:
    info = parse_bulk(sample("bulk-queue-running.json"), expected_id="10779")
    assert (info.task_id, info.status, info.progress) == ("10779", "RUNNING", 65)
    assert info.submitted == datetime(2023, 7, 24, 6, 27, 35, 963_000, tzinfo=UTC)
    assert info.started == datetime(2023, 7, 24, 6, 27, 36, 206_000, tzinfo=UTC)
    assert info.finished is None
    # Atlassian's example has `updated` one digit short (1973): kept as an anomaly, not a time.
    assert info.last_update is None
    assert info.anomalies == ("updated: epoch milliseconds out of range, got 169018005829",)
    assert info.bulk == BulkCounts()  # no counts while it runs, in this sample
    assert (info.message, info.elapsed_runtime_ms, info.result) == (None, None, None)
    assert not info.terminal


def test_the_400_sample_says_the_id_is_not_a_bulk_task() -> None:
    text = jira_error_text(sample("bulk-queue-error-400.json"))
    assert text == "The task associated with this taskId is not a bulk operation task"


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "taskId": "5",
        "status": "RUNNING",
        "progressPercent": 40,
        "submittedBy": {"accountId": "abc"},
        "created": 1_700_000_000_000,
        "updated": 1_700_000_001_000,
    }
    return json.dumps(base | fields).encode()


def test_counts_and_failures() -> None:
    info = parse_bulk(
        body(
            totalIssueCount=10,
            processedAccessibleIssues=[1, 2, 3],
            failedAccessibleIssues={"10004": ["locked", "no permission"], "10005": "odd"},
            invalidOrInaccessibleIssueCount=1,
        ),
        expected_id="5",
    )
    assert info.bulk == BulkCounts(total=10, succeeded=3, failed=2, invalid=1)
    assert info.result == {"10004": ["locked", "no permission"], "10005": ["odd"]}
    assert info.anomalies == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T12:00:00.250+02:00", datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("1772366400000", datetime(2026, 3, 1, 12, tzinfo=UTC)),
    ],
)
def test_timestamps_as_date_time_strings_or_epoch_ms(text: str, expected: datetime) -> None:
    info = parse_bulk(body(created=text, updated=text), expected_id="5")
    assert (info.submitted, info.last_update, info.anomalies) == (expected, expected, ())


def test_odd_fields_are_anomalies_never_crashes() -> None:
    info = parse_bulk(
        body(
            taskId="6",
            progressPercent=140,
            submittedBy=10000,
            created="yesterday",
            processedAccessibleIssues=3,
            failedAccessibleIssues=["10004"],
            totalIssueCount=-1,
        ),
        expected_id="5",
    )
    assert info.progress == 100
    assert info.submitted is None
    assert info.bulk == BulkCounts(total=None, succeeded=None, failed=None, invalid=None)
    assert info.anomalies == (
        'taskId: expected "5", got "6"',
        "progressPercent: out of range, got 140 (clamped)",
        "submittedBy: expected an object with accountId, got 10000",
        "failedAccessibleIssues: expected an object, got [...]",
        'created: expected a date-time, got "yesterday"',
        "totalIssueCount: negative, got -1",
        "processedAccessibleIssues: expected a list, got 3",
    )


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'{"taskId": "5"}', b'{"status": ""}'])
def test_unusable_bodies_raise(raw: bytes) -> None:
    with pytest.raises(JiraBadResponse):
        parse_bulk(raw, expected_id="5")
