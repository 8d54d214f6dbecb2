"""Commands that run things: the daemon, schema upgrades, the simulator, the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.cli.context import AppContext, pass_app
from monitor.cli.options import output_format
from monitor.cli.output import emit_json, iso
from monitor.cli.params import DURATION
from monitor.errors import UsageError


@click.command()
@pass_app
@click.pass_context
def run(ctx: click.Context, app: AppContext) -> None:
    """Run the daemon in the foreground (what systemd starts).

    Polls the registered tasks, records snapshots, logs outcomes. SIGTERM or SIGINT finish
    the tick in flight and exit 0; SIGHUP reloads the config.

    \b
    Example:
      JTM_LOG_FORMAT=console jtm --config ./config.toml run
    """
    from monitor.daemon import Daemon
    from monitor.logs import configure_logging

    settings = app.settings()
    settings.jira.require_url()
    configure_logging(settings.log.format, settings.log.level)
    ctx.exit(Daemon(settings, config_path=app.config_path).run())


@click.group()
def db() -> None:
    """Database maintenance.

    \b
    Example:
      jtm db upgrade
      jtm db copy --to postgresql+psycopg://jtm@db.example.com/jtm
    """


@db.command()
@pass_app
def upgrade(app: AppContext) -> None:
    """Migrate the database to the current schema.

    Also the one way to make a database of an empty (0-byte) file at database.url, which
    every other command refuses.

    \b
    Example:
      jtm db upgrade
    """
    from monitor.database import SCHEMA_HEAD, create_db_engine, describe_url, ensure_schema

    url = app.settings().database.url
    engine = create_db_engine(url, adopt_empty=True)
    try:
        before = ensure_schema(engine, "upgrade")
    finally:
        engine.dispose()
    if before == SCHEMA_HEAD:
        click.echo(f"{describe_url(url)}: already at schema {SCHEMA_HEAD}")
    else:
        click.echo(f"{describe_url(url)}: schema {before or 'none'} -> {SCHEMA_HEAD}")


@db.command()
@click.option(
    "--to",
    "to_url",
    required=True,
    metavar="URL",
    help="The database to copy into (a SQLAlchemy URL): new, or without tasks.",
)
@pass_app
def copy(app: AppContext, to_url: str) -> None:
    """Copy this database whole (every task, snapshot and event) into another.

    The way from SQLite to PostgreSQL: stop the daemon, copy, point database.url at the new
    database, start the daemon(s). The target is created at the current schema; one that
    already holds tasks is refused. All or nothing: a failed copy leaves the target empty.

    \b
    Example:
      jtm db copy --to 'postgresql+psycopg://jtm@db.example.com/jtm'
    """
    from monitor.database import describe_url, open_database
    from monitor.store.copy import copy_database

    source_url = app.settings().database.url
    if to_url == source_url:
        raise UsageError("--to names the database being copied: give another one")
    source = app.engine()
    target = open_database(to_url, "create")
    try:
        copied = copy_database(source, target)
    finally:
        target.dispose()
    counts = ", ".join(f"{n:,} {table}" for table, n in copied.items())
    click.echo(f"copied {counts} to {describe_url(to_url)}")


@click.command()
@click.option(
    "--older-than",
    type=DURATION,
    help="Prune snapshots observed longer ago than this. Default: retention.snapshots (90d).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be pruned.")
@output_format()
@pass_app
def prune(app: AppContext, older_than: float | None, batch: int, dry_run: bool, fmt: str) -> None:
    """Apply retention now: delete old snapshots, keeping each task's newest.

    The daemon does this once a day with retention.snapshots; deleting in batches lets it
    carry on polling meanwhile. Tasks and their timelines are kept.

    \b
    Example:
      jtm prune --older-than 30d --dry-run
      jtm prune --older-than 30d
    """
    from monitor.retention import apply_retention, cutoff

    keep_s = older_than if older_than is not None else app.settings().retention.snapshots_s
    now = datetime.now(UTC)
    if dry_run:
        count = app.queries().prunable_snapshots(cutoff(now, keep_s))
    else:
        count = apply_retention(app.store(), keep_s, now, batch=batch)
    before = iso(cutoff(now, keep_s))
    if fmt == "json":
        emit_json({"snapshots": count, "dry_run": dry_run, "older_than": before})
    else:
        verb = "would prune" if dry_run else "pruned"
        click.echo(
            f"{verb} {count:,} snapshots observed before {before} (newest of each task kept)"
        )


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8089, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option(
    "--auth", type=click.Choice(["basic", "bearer", "none"]), default="basic", show_default=True
)
@click.option("--email", default="sim@example.com", show_default=True)
@click.option("--token", default="sim-token", show_default=True, help="The token it accepts.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON list of task scripts (default: a varied demo set).",
)
def simulate(
    port: int, host: str, auth: str, email: str, token: str, scenario: Path | None
) -> None:
    """Run the bundled Jira task-API simulator on loopback.

    It serves GET/POST /rest/api/{2|3}/task/{id}[/cancel] and /myself with scripted task
    lifecycles, and a control API under /_sim/ (add tasks, inject faults, read the log).

    \b
    Example:
      jtm simulate --port 8089
      curl -u sim@example.com:sim-token http://127.0.0.1:8089/rest/api/3/task/10001
    """
    from monitor.simulator import Simulator, demo_scripts, script_from_json, serve
    from monitor.taskref import is_loopback_host

    if not is_loopback_host(host):
        raise UsageError(f"--host {host}: the simulator binds loopback addresses only")
    if scenario is not None:
        try:
            scripts = [script_from_json(item) for item in json.loads(scenario.read_text())]
        except (ValueError, TypeError, OSError) as exc:
            raise UsageError(f"--scenario {scenario}: {exc}") from None
    else:
        scripts = demo_scripts()

    def ready(sim: Simulator) -> None:
        ids = ", ".join(s.task_id for s in scripts)
        click.echo(f"simulator at {sim.url} (auth {auth}, email {email}); tasks: {ids}")

    serve(port, scripts, host=host, auth=auth, email=email, token=token, on_ready=ready)


@click.command()
@click.option(
    "--duration",
    type=click.IntRange(10, 600),
    default=40,
    show_default=True,
    help="Stop after this many seconds at the latest.",
)
def demo(duration: int) -> None:
    """A short, self-contained demonstration: the simulator, the daemon, a few tasks.

    Starts the bundled simulator and the real daemon on a temporary database, registers a
    handful of tasks, narrates what the daemon logs as they progress, complete and fail,
    and ends with a table of final states. Nothing is left behind.

    \b
    Example:
      jtm demo
    """
    from monitor.demo import run_demo

    run_demo(max_seconds=duration)


COMMANDS = (run, db, prune, simulate, demo)
