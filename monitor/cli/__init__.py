"""`jtm`: the command line. Commands parse, call the library, format.

Every `MonitorError` becomes one line on stderr and its exit code (see `monitor.errors`); click
handles usage errors (exit 2). Heavy imports (SQLAlchemy, requests, APScheduler) happen inside
the commands that need them, so `jtm --help` and friends start fast.
"""

from __future__ import annotations

from typing import Any

import click

from monitor import __version__
from monitor.cli.context import AppContext
from monitor.errors import MonitorError


class JtmGroup(click.Group):
    """Turns the monitor's errors into a clean message and the contract's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            click.echo(f"jtm: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            # `jtm history --csv | head`: the reader left. Say nothing; stop like other tools.
            _silence_stdout()
            ctx.exit(1)


@click.group(cls=JtmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Config file (default: $JTM_CONFIG, then ~/.config/jira-task-monitor/config.toml, "
    "then /etc/jira-task-monitor/config.toml).",
)
@click.version_option(__version__, prog_name="jtm")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Watch Jira Cloud asynchronous tasks: record their history, log their outcome,
    and cancel the ones that overrun.

    \b
    Example:
      jtm add https://example.atlassian.net/rest/api/3/task/10042 --run 2h
      jtm run
    """
    ctx.obj = AppContext(config_path)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test runner's stdout)
        pass


def _register() -> None:
    from monitor.cli import cancel, inspect, service, tasks

    for command in (*tasks.COMMANDS, cancel.cancel, *inspect.COMMANDS, *service.COMMANDS):
        cli.add_command(command)


_register()


def main() -> None:
    cli.main(prog_name="jtm")
