"""`jtm`: the command line. Commands parse, call the library, format.

Every `MonitorError` becomes one line on stderr and its exit code (see `monitor.errors`); click
handles usage errors (exit 2). Heavy imports (SQLAlchemy, requests, APScheduler) happen inside
the commands that need them, and a command's module is imported only when that command runs
(`COMMAND_MODULES`), so a read command starts with little beyond Python and SQLAlchemy Core.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from monitor import __version__
from monitor.cli.context import AppContext
from monitor.errors import EXIT_FAILED, MonitorError
from monitor.terminal import visible

COMMAND_MODULES = {
    **dict.fromkeys(("add", "remove", "list", "show", "history"), "tasks"),
    "cancel": "cancel",
    "notify": "notify",
    **dict.fromkeys(("status", "check", "watch"), "inspect"),
    **dict.fromkeys(("run", "db", "prune", "simulate", "demo"), "service"),
    "metrics": "metrics",
}
"""Each command's module under `monitor.cli` (its `COMMANDS`), imported when it is needed."""


class JtmGroup(click.Group):
    """Loads commands on first use, and turns the monitor's errors into a clean message and
    the contract's exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"monitor.cli.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            click.echo(f"jtm: error: {visible(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            # `jtm history --csv | head`: the reader left. Say nothing; stop like other tools.
            _silence_stdout()
            ctx.exit(EXIT_FAILED)


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


def main() -> None:
    cli.main(prog_name="jtm")
