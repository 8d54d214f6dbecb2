"""What the daemon needs of Jira: `JiraClient` is one, a test's fake another."""

from __future__ import annotations

from typing import Protocol

from monitor.jira.payload import TaskInfo


class TaskApi(Protocol):
    """Read a task, and ask Jira to cancel one."""

    def get_task(self, task_id: str) -> TaskInfo: ...

    def cancel_task(self, task_id: str) -> None: ...
