"""jira-task-monitor: watch Jira Cloud asynchronous tasks."""

__version__ = "0.1.0"
