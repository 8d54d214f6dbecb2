"""`jtm metrics`: the Prometheus exposition, once, from the database."""

from __future__ import annotations

import click

from monitor.cli.context import AppContext, pass_app


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Write to this file atomically (a temporary file renamed over it) instead of "
    "stdout: what node_exporter's textfile collector needs.",
)
@pass_app
def metrics(app: AppContext, output: str | None) -> None:
    """Print the metrics the database holds, in the Prometheus text format.

    The same names as the daemon's endpoint ([metrics] listen): tasks per state and Jira
    status, the oldest watched task's age, the longest stall, the last tick, the build info,
    and with [metrics] per_task the per-task series. The counters (polls, requests, ...)
    live in the daemon's memory and are served by its endpoint only. For node_exporter's
    textfile collector, run it from a timer or cron with -o.

    \b
    Example:
      jtm metrics -o /var/lib/prometheus/node-exporter/jira-task-monitor.prom
    """
    from monitor.metrics.exposition import database_registry, render, write_atomically

    registry = database_registry(app.engine(), app.settings())
    if output is None:
        click.echo(render(registry).decode(), nl=False)
    else:
        write_atomically(output, registry)


COMMANDS = [metrics]
