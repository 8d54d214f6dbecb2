"""The Jira client package: task payload parsing, per-site pacing, and the HTTP client.

`JiraClient` is the only place where HTTP and transport failures become `JiraError`s.
"""

from monitor.jira.bulk import parse_bulk
from monitor.jira.client import DEFAULT_USER_AGENT, MAX_BODY_BYTES, JiraClient, retry_after_seconds
from monitor.jira.pacing import SiteGate
from monitor.jira.payload import BulkCounts, TaskInfo, parse_task

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_BODY_BYTES",
    "BulkCounts",
    "JiraClient",
    "SiteGate",
    "TaskInfo",
    "parse_bulk",
    "parse_task",
    "retry_after_seconds",
]
