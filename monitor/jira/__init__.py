"""The Jira client package: task payload parsing, per-site pacing, and the HTTP client.

`JiraClient` is the only place where HTTP and transport failures become `JiraError`s.

The client and the pacing are imported on first use (PEP 562): the payload types are what
the store and the read-only commands need, and `requests` alone costs a CLI start about as
much as the rest of the package (`jtm list` never talks to Jira).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from monitor.jira.bulk import parse_bulk
from monitor.jira.payload import BulkCounts, TaskInfo, parse_task

if TYPE_CHECKING:
    from monitor.jira.client import (
        DEFAULT_USER_AGENT,
        MAX_BODY_BYTES,
        JiraClient,
        retry_after_seconds,
    )
    from monitor.jira.pacing import SiteGate

_ON_FIRST_USE = {
    "DEFAULT_USER_AGENT": "monitor.jira.client",
    "MAX_BODY_BYTES": "monitor.jira.client",
    "JiraClient": "monitor.jira.client",
    "retry_after_seconds": "monitor.jira.client",
    "SiteGate": "monitor.jira.pacing",
}

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


def __getattr__(name: str) -> object:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
