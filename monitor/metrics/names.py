"""Label values shared by the metrics: closed vocabularies, so no label grows without bound."""

from __future__ import annotations

from monitor.states import ErrorKind, JiraStatus, TaskKind

TASK_KINDS = tuple(str(kind) for kind in TaskKind)
"""`kind` of every per-task-kind series: the task's kind (`monitor.states.TaskKind`), part of
its identity (`task`: the task API's, `bulk`: a bulk issue operation's)."""

OK = "ok"
POLL_OUTCOMES = (OK, *(str(kind) for kind in ErrorKind))
"""`outcome` of `jtm_polls_total`: `ok`, or the kind of error (`monitor.states.ErrorKind`)."""

OTHER_STATUS = "OTHER"
_STATUSES = frozenset(str(status) for status in JiraStatus)
UNKNOWN_STATUS = ""
"""`status` of a task not yet polled successfully (an empty label: Prometheus's "unset")."""

CODE_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")
"""`code_class` of `jtm_jira_requests_total`; `error`: no HTTP answer (connection, timeout)."""


def status_label(status: str | None) -> str:
    """Jira's status as a label: a documented one as is, any other as `OTHER` (Jira's text is
    written by whoever runs the task, so it must not become a new series each time)."""
    if status is None:
        return UNKNOWN_STATUS
    return status if status in _STATUSES else OTHER_STATUS


def code_class(status: int | None) -> str:
    if status is None or not 200 <= status < 600:
        return "error"
    return f"{status // 100}xx"
