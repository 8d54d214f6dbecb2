"""What the daemon needs of Jira: `JiraClient` is one, a test's fake another."""

from __future__ import annotations

from typing import Protocol

from monitor.jira.payload import TaskInfo
from monitor.taskref import TaskRef


class TaskApi(Protocol):
    """Read a task of either kind, and ask Jira to cancel one (of kind `task` only)."""

    def get_task(self, ref: TaskRef) -> TaskInfo: ...

    def cancel_task(self, task_id: str) -> None: ...
