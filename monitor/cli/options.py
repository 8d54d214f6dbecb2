"""Options shared by the read commands: one output-format decorator, one filter decorator.

`@output_format(csv=True)` adds `--json` (and `--csv`) and hands the command `fmt`, one of
"table", "json", "csv"; `@filter_options(...)` adds the filters and hands it `filters`
(`monitor.store.queries.Filters`). Task ID arguments complete from the database in the shell.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from click.shell_completion import CompletionItem

from monitor.cli.params import JIRA_STATUS, WHEN
from monitor.errors import UsageError
from monitor.states import TaskState

Command = Callable[..., Any]


def output_format(*, csv: bool = False) -> Callable[[Command], Command]:
    """`--json` (one JSON document on stdout) and, with `csv`, `--csv`; passes `fmt`."""

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def wrapper(*args: Any, as_json: bool, as_csv: bool = False, **kwargs: Any) -> Any:
            if as_json and as_csv:
                raise UsageError("choose one of --json and --csv")
            fmt = "json" if as_json else "csv" if as_csv else "table"
            return command(*args, fmt=fmt, **kwargs)

        if csv:
            wrapper = click.option(
                "--csv", "as_csv", is_flag=True, help="CSV with a header row on stdout."
            )(wrapper)
        return click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")(
            wrapper
        )

    return decorate


def filter_options(
    *, what: str, limit: int = 0, by_task: bool = True, time_of: str = ""
) -> Callable[[Command], Command]:
    """The filters: --state, --status, --label, --since, --until, --limit; passes `filters`.

    `what` names the rows in the help; `limit` is the default --limit (0: none); `time_of`
    says which time --since and --until bound; `by_task=False` leaves out the filters that
    select tasks (--state, --status, --label).
    """
    options = _window_options(what, f"{what} {time_of}".strip(), limit)
    if by_task:
        options += _task_options()

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            states_: tuple[str, ...] = (),
            statuses: tuple[str, ...] = (),
            labels: tuple[str, ...] = (),
            since: datetime | None,
            until: datetime | None,
            limit_: int,
            **kwargs: Any,
        ) -> Any:
            from monitor.store.queries import Filters

            if since is not None and until is not None and since >= until:
                raise UsageError("--since must be earlier than --until")
            filters = Filters(states_, statuses, labels, since, until, limit_ or None)
            return command(*args, filters=filters, **kwargs)

        decorated: Command = wrapper
        for option in options:
            decorated = option(decorated)
        return decorated

    return decorate


def _window_options(what: str, subject: str, limit: int) -> list[Callable[[Command], Command]]:
    """--limit, --until and --since (applied in that order, so shown in the reverse)."""
    return [
        click.option(
            "--limit",
            "limit_",
            type=click.IntRange(min=0),
            default=limit,
            show_default=bool(limit),
            help=f"At most this many {what} (0: no limit).",
        ),
        click.option(
            "--until",
            type=WHEN,
            help=f"Only {subject} before this (2h ago, 2026-03-01).",
        ),
        click.option(
            "--since",
            type=WHEN,
            help=f"Only {subject} since this (2h ago, 7d, 2026-03-01).",
        ),
    ]


def _task_options() -> list[Callable[[Command], Command]]:
    """--label, --status and --state: the filters that select tasks."""
    return [
        click.option(
            "--label",
            "labels",
            multiple=True,
            help="Only tasks with this label (any case; * is a wildcard; repeatable).",
        ),
        click.option(
            "--status",
            "statuses",
            type=JIRA_STATUS,
            multiple=True,
            help="Only this Jira status, e.g. RUNNING, FAILED (repeatable).",
        ),
        click.option(
            "--state",
            "states_",
            multiple=True,
            type=click.Choice([s.value for s in TaskState]),
            help="Only tasks in this state of the monitor's (repeatable).",
        ),
    ]


def complete_task_id(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Registered task IDs for the shell; nothing (never an error) if the database is not there."""
    from pathlib import Path

    try:
        from monitor.config import load_settings
        from monitor.database import create_db_engine
        from monitor.store.queries import Queries

        config = ctx.find_root().params.get("config_path")
        settings = load_settings(Path(config) if config else None)
        from monitor.sqlite_path import database_name

        url = settings.database.url
        name = database_name(url)
        if name is not None and not Path(name).exists():
            return []  # completing must not create a database
        engine = create_db_engine(url)
        try:
            ids = Queries(engine).task_ids_starting(incomplete)
        finally:
            engine.dispose()
    except Exception:
        return []
    return [CompletionItem(task_id) for task_id in ids]
