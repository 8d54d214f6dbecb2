"""Task IDs and task URLs as users type them."""

from __future__ import annotations

import pytest

from monitor.errors import UsageError
from monitor.states import TaskKind
from monitor.taskref import TaskRef, parse_task_id, parse_task_ref


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


@pytest.mark.parametrize(
    ("text", "site"),
    [
        ("https://x.atlassian.net/rest/api/3/task/7", "https://x.atlassian.net"),
        ("https://X.Atlassian.net:443/rest/api/2/task/7/", "https://x.atlassian.net/"),
        (
            "https://api.atlassian.com/ex/jira/c1/rest/api/3/task/7",
            "https://api.atlassian.com/ex/jira/c1",
        ),
        ("http://127.0.0.1:8089/rest/api/3/task/7", "http://127.0.0.1:8089"),
        ("7", "https://x.atlassian.net"),
    ],
)
def test_a_task_url_on_the_configured_site_is_accepted(text: str, site: str) -> None:
    assert parse_task_id(text, site) == "7"


@pytest.mark.parametrize(
    ("text", "site", "named"),
    [
        (
            "https://other-site.example/rest/api/3/task/3",
            "https://x.atlassian.net",
            "other-site.example",
        ),
        ("http://127.0.0.1:9999/rest/api/3/task/3", "http://127.0.0.1:8089", "127.0.0.1:9999"),
        ("http://localhost/rest/api/3/task/3", "https://localhost", "http://localhost"),
        (
            "https://api.atlassian.com/ex/jira/c2/rest/api/3/task/3",
            "https://api.atlassian.com/ex/jira/c1",
            "/c2",
        ),
        ("https://x.atlassian.net/jira/rest/api/3/task/3", "https://x.atlassian.net", "/jira"),
    ],
)
def test_a_task_url_of_another_site_is_refused_naming_both(
    text: str, site: str, named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_task_id(text, site)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert named in message and site in message and "not on the configured site" in message


SITE = "https://x.atlassian.net"


@pytest.mark.parametrize(
    ("text", "bulk", "ref"),
    [
        ("10042", False, TaskRef(TaskKind.TASK, "10042")),
        ("10042", True, TaskRef(TaskKind.BULK, "10042")),
        ("bulk:10042", False, TaskRef(TaskKind.BULK, "10042")),
        ("bulk:10042", True, TaskRef(TaskKind.BULK, "10042")),
        (f"{SITE}/rest/api/3/bulk/queue/10000", False, TaskRef(TaskKind.BULK, "10000")),
        (f"{SITE}/rest/api/3/bulk/queue/10000/", True, TaskRef(TaskKind.BULK, "10000")),
        (f"{SITE}/rest/api/2/task/7", False, TaskRef(TaskKind.TASK, "7")),
    ],
)
def test_kinds(text: str, bulk: bool, ref: TaskRef) -> None:
    assert parse_task_ref(text, SITE, bulk=bulk) == ref


def test_a_ref_is_shown_as_it_is_typed() -> None:
    assert str(TaskRef(TaskKind.TASK, "7")) == "7"
    assert str(TaskRef(TaskKind.BULK, "7")) == "bulk:7"


@pytest.mark.parametrize(
    ("text", "bulk", "reason"),
    [
        ("bulk:", False, "it is empty"),
        ("bulk:a/b", False, "use only letters"),
        ("https://x.atlassian.net/rest/api/3/task/7", True, "--bulk given"),
        ("https://x.atlassian.net/rest/api/2/bulk/queue/7", False, "bulk/queue/ID"),
        ("https://x.atlassian.net/rest/api/3/bulk/queue/7/x", False, "bulk/queue/ID"),
    ],
)
def test_bad_kinds_are_refused(text: str, bulk: bool, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        parse_task_ref(text, bulk=bulk)
