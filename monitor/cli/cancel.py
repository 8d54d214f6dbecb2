"""`jtm cancel`: a person's cancel, through the same two-phase path as the monitor's own."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from monitor.cli.context import AppContext, pass_app
from monitor.errors import OperationFailed
from monitor.states import CancelSource, TaskState


@click.command()
@click.argument("ref", metavar="ID")
@pass_app
def cancel(app: AppContext, ref: str) -> None:
    """Ask Jira to cancel a watched task now.

    The decision is recorded first (as the user's), then the request is sent; the daemon
    confirms that the task stops, and retries within timeouts.cancel_grace if it does not.
    Exit 1 when Jira refuses or cannot be reached.

    \b
    Example:
      jtm cancel 10042
    """
    from monitor.canceller import Attempt, Canceller
    from monitor.config import load_token
    from monitor.jira import JiraClient
    from monitor.logs import null_logger

    settings = app.settings()
    store = app.store()
    task = store.get(app.task_ref(ref))
    if task.bulk:
        raise OperationFailed(
            f"task {task.ref} is a bulk operation: Jira has no cancel for those (its limits "
            "can only warn)"
        )
    if task.state != TaskState.WATCHING:
        raise OperationFailed(f"task {task.task_id} is {task.state}: there is nothing to cancel")
    token = load_token(settings)
    now = datetime.now(UTC)
    if not store.request_cancel(task.ref, now, CancelSource.USER, "requested by jtm cancel"):
        task = store.get(task.ref)
        click.echo(
            f"a cancel of task {task.task_id} is already in progress "
            f"(decided by the {task.cancel_requested_by}: {task.cancel_reason})"
        )
        return
    with JiraClient(settings.jira, token, pool_size=1) as client:
        canceller = Canceller(
            store, client.cancel_task, settings.timeouts.cancel_grace_s, log=null_logger()
        )
        result = canceller.attempt(store.get(task.ref), now)
    if result.kind is Attempt.REFUSED:
        raise OperationFailed(f"Jira refused to cancel task {task.task_id}: {result.error}")
    if result.kind is Attempt.FAILED:
        raise OperationFailed(
            f"cancel of task {task.task_id} not sent ({result.error}); the daemon will retry it"
        )
    click.echo(
        f"cancel of task {task.task_id} requested: Jira accepted it; "
        "the daemon confirms it when the task stops"
    )


COMMANDS = (cancel,)
