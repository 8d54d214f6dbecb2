"""Task IDs and task URLs as users type them."""

from __future__ import annotations

import pytest

from monitor.errors import UsageError
from monitor.taskref import parse_task_id


@pytest.mark.parametrize(
    ("text", "task_id"),
    [
        ("10042", "10042"),
        ("a-b_C9", "a-b_C9"),
        ("x" * 64, "x" * 64),
        ("https://x.atlassian.net/rest/api/3/task/10042", "10042"),
        ("https://x.atlassian.net/rest/api/2/task/10042/", "10042"),
        ("https://api.atlassian.com/ex/jira/1a2b-3c/rest/api/3/task/7", "7"),
        ("http://127.0.0.1:8089/rest/api/3/task/5", "5"),
        ("http://localhost/rest/api/3/task/5", "5"),
        ("http://[::1]:8089/rest/api/3/task/5", "5"),
    ],
)
def test_accepted(text: str, task_id: str) -> None:
    assert parse_task_id(text) == task_id


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" 1", "letters, digits"),
        ("1\n", "letters, digits"),
        ("../1", "letters, digits"),
        ("1/cancel", "letters, digits"),
        ("1%2F2", "letters, digits"),
        ("é", "letters, digits"),
        ("x" * 65, "longer than 64"),
        ("ftp://x.atlassian.net/rest/api/3/task/1", "expected https://"),
        ("http://x.atlassian.net/rest/api/3/task/1", "loopback"),
        ("https://x.atlassian.net/rest/api/4/task/1", "must end in"),
        ("https://x.atlassian.net/rest/api/3/task/1/cancel", "must end in"),
        ("https://x.atlassian.net/rest/api/3/task/", "must end in"),
        ("https://x.atlassian.net/rest/api/3/task/1?x=1", "query"),
        ("https://x.atlassian.net/rest/api/3/task/a%2Fb", "not a task ID"),
        ("https://x.atlassian.net:99999/rest/api/3/task/1", "invalid task URL"),
        ("https:///rest/api/3/task/1", "expected https://"),
    ],
)
def test_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_task_id(text)
    assert reason in str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_credentials_in_a_url_are_refused_and_not_repeated() -> None:
    with pytest.raises(UsageError) as caught:
        parse_task_id("https://me:s3cret-pw@x.atlassian.net/rest/api/3/task/1")
    assert "s3cret-pw" not in str(caught.value)
