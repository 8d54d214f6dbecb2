"""Commands that look at the monitor itself: status, check, watch."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from monitor.cli.context import AppContext, pass_app
from monitor.cli.options import complete_task_id, output_format
from monitor.cli.output import emit_json, iso
from monitor.cli.params import DURATION, JIRA_STATUS
from monitor.errors import EXIT_FAILED
from monitor.terminal import visible

if TYPE_CHECKING:
    from monitor.checks import Check
    from monitor.health import DaemonHealth, StatusReport
    from monitor.records import Heartbeat


@click.command()
@click.option(
    "--stale-after",
    type=DURATION,
    default="2m",
    show_default=True,
    help="A heartbeat older than this means the daemon is not running.",
)
@output_format()
@pass_app
@click.pass_context
def status(ctx: click.Context, app: AppContext, stale_after: float, fmt: str) -> None:
    """Is the daemon alive? Tasks per state, polling trouble, next poll, database size.

    Exits 0 when the daemon's last heartbeat is recent, 1 when it is stale, the daemon
    stopped, or none ever ran on this database (with --json too), so that a monitoring
    script can run `jtm status` as is.

    A daemon that cannot write the database (a full disk) is alive; its trouble comes
    first, read from its state file in its runtime directory.

    \b
    Example:
      jtm status
      jtm status --json | jq '.trouble[] | select(.kind == "credentials")'
    """
    from monitor.health import status_report

    report = status_report(app.queries(), datetime.now(UTC), stale_after)
    url = app.settings().database.url
    if fmt == "json":
        emit_json(_status_json(report, url))
    else:
        _print_status(report, url)
    ctx.exit(0 if report.daemon.alive else EXIT_FAILED)


def _daemon_json(health: DaemonHealth) -> dict[str, Any]:
    beat = health.heartbeat
    data: dict[str, Any] = {
        "state": health.state.value,
        "alive": health.alive,
        "stale_after_s": health.stale_after_s,
        "heartbeat_age_s": None if health.age_s is None else round(health.age_s, 3),
        "others_alive": health.others_alive,
    }
    if beat is not None:
        data |= {
            "instance": beat.instance,
            "pid": beat.pid,
            "version": beat.version,
            "started_at": iso(beat.started_at),
            "heartbeat_at": iso(beat.heartbeat_at),
            "last_tick_at": iso(beat.last_tick_at),
            "last_tick_polls": beat.last_tick_polls,
            "stopped_at": iso(beat.stopped_at),
        }
    return data


def _instance_json(beat: Heartbeat, now: datetime) -> dict[str, Any]:
    return {
        "instance": beat.instance,
        "host": beat.host,
        "pid": beat.pid,
        "version": beat.version,
        "started_at": iso(beat.started_at),
        "heartbeat_at": iso(beat.heartbeat_at),
        "heartbeat_age_s": round((now - beat.heartbeat_at).total_seconds(), 3),
        "polls_last_minute": beat.polls_last_minute,
    }


def _status_json(report: StatusReport, url: str) -> dict[str, Any]:
    from monitor.database import describe_url
    from monitor.states import TaskState

    return {
        "checked_at": iso(report.now),
        "daemon": _daemon_json(report.daemon),
        "instances": [_instance_json(beat, report.now) for beat in report.instances],
        "tasks": {state.value: report.counts.get(state, 0) for state in TaskState},
        "store": (
            None
            if report.store is None
            else {
                "error": report.store.error,
                "failing_since": iso(report.store.since),
                "tasks_waiting": report.store.tasks_waiting,
            }
        ),
        "trouble": [
            {"kind": g.kind.value, "tasks": g.count, "task_ids": g.task_ids, "example": g.example}
            for g in report.trouble
        ],
        "notifications": report.notifications,
        "next_poll": (
            {"task_id": report.next_poll[0], "at": iso(report.next_poll[1])}
            if report.next_poll
            else None
        ),
        "database": {
            "url": describe_url(url),
            "schema": report.schema,
            "size_bytes": report.size_bytes,
            "snapshots": report.snapshots,
        },
    }


def _ago(seconds: float) -> str:
    from monitor.durations import format_approx

    return f"{format_approx(seconds)} ago" if seconds >= 0 else f"in {format_approx(seconds)}"


def _daemon_line(health: DaemonHealth) -> str:
    from monitor.health import DaemonState

    beat = health.heartbeat
    if beat is None:
        return click.style("none has run on this database: start `jtm run`", fg="red", bold=True)
    age = _ago(health.age_s or 0.0)
    who = visible(f"pid {beat.pid} on {beat.instance.rsplit(':', 1)[0]}, version {beat.version}")
    if health.state == DaemonState.ALIVE:
        up = _ago((beat.heartbeat_at - beat.started_at).total_seconds()).removesuffix(" ago")
        line = click.style("alive", fg="green") + f": heartbeat {age} ({who}, up {up})"
        if health.others_alive:
            line += f"; {health.others_alive + 1} instances"
        return line
    if health.state == DaemonState.STOPPED:
        return click.style("stopped", fg="red", bold=True) + f" {age} ({who})"
    return click.style("STALE", fg="red", bold=True) + f": last heartbeat {age} ({who})"


def _print_status(report: StatusReport, url: str) -> None:
    from monitor.states import TaskState

    lines = [("daemon", _daemon_line(report.daemon)), *_instance_lines(report)]
    counts = ", ".join(f"{report.counts.get(s, 0)} {s.value}" for s in TaskState)
    lines.append(("tasks", counts))
    lines.extend(_trouble_lines(report))
    lines.extend(_notify_lines(report))
    lines.append(("next poll", _next_poll_text(report)))
    lines.append(("database", _database_text(report, url)))
    for key, text in lines:
        click.echo(f"{key:<10} {text}")


def _instance_lines(report: StatusReport) -> list[tuple[str, str]]:
    """One line per instance when several share the database (none for one)."""
    if len(report.instances) <= 1:
        return []
    lines = []
    for i, beat in enumerate(report.instances):
        age = _ago((report.now - beat.heartbeat_at).total_seconds())
        polls = "-" if beat.polls_last_minute is None else f"{beat.polls_last_minute:,}"
        text = visible(f"{beat.host} pid {beat.pid}, version {beat.version}")
        lines.append(("instances" if i == 0 else "", f"{text}: heartbeat {age}, {polls} polls/min"))
    return lines


def _trouble_lines(report: StatusReport) -> list[tuple[str, str]]:
    """The database's trouble first, then one line per group of failing tasks ("none")."""
    from monitor.statefile import trouble_text

    lines = []
    if report.store is not None:
        lines.append(
            ("trouble", click.style("database: ", fg="red") + visible(trouble_text(report.store)))
        )
    for i, group in enumerate(report.trouble or ([] if report.store else [None])):
        if group is None:
            text = "none"
        else:
            ids = visible(", ".join(group.task_ids))
            ids += ", ..." if group.count > len(group.task_ids) else ""
            noun = "task" if group.count == 1 else "tasks"
            text = click.style(f"{group.kind}: {group.count} {noun}", fg="red") + f" ({ids})"
            text += f": {visible(group.example)}"
        lines.append(("trouble" if i == 0 and report.store is None else "", text))
    return lines


def _notify_lines(report: StatusReport) -> list[tuple[str, str]]:
    """The outbox's pending and failed notifications, if any."""
    pending, failed = report.notifications.get("pending", 0), report.notifications.get("failed", 0)
    if not (pending or failed):
        return []
    text = f"{pending:,} pending, " + click.style(
        f"{failed:,} failed", fg="red" if failed else None
    )
    return [("notify", text + " (jtm notify list)")]


def _next_poll_text(report: StatusReport) -> str:
    from monitor.durations import format_approx

    if report.next_poll is None:
        return "none: no watched task"
    task_id, at = report.next_poll
    wait = (at - report.now).total_seconds()
    if wait >= 1:
        when = f"in {format_approx(wait)}"
    else:
        when = "now" if wait > -1 else f"overdue by {format_approx(wait)}"
    return f"{when} (task {task_id})"


def _database_text(report: StatusReport, url: str) -> str:
    from monitor.database import describe_url

    size = "-" if report.size_bytes is None else f"{report.size_bytes / 1e6:,.1f} MB"
    return (
        f"{visible(describe_url(url))}: {size}, {report.snapshots:,} snapshots, "
        f"schema {visible(str(report.schema))}"
    )


@click.command()
@output_format()
@pass_app
@click.pass_context
def check(ctx: click.Context, app: AppContext, fmt: str) -> None:
    """Check the config, the database and the credentials (one GET /myself).

    Prints one line per check, and a one-line fix under each failure. Exits 0 when all
    pass; else with the first failure's code: 78 config, token or database, 69 Jira
    unreachable, 77 credentials rejected. Nothing is created or changed.

    \b
    Example:
      jtm check
      jtm --config /etc/jira-task-monitor/config.toml check
    """
    from monitor.checks import exit_code, run_checks

    checks: list[Check] = []
    for result in run_checks(app.config_path):
        checks.append(result)
        if fmt == "table":
            _print_check(result)
    if fmt == "json":
        emit_json(
            {
                "ok": all(c.ok for c in checks),
                "exit_code": exit_code(checks),
                "checks": [
                    {"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks
                ],
            }
        )
    ctx.exit(exit_code(checks))


def _print_check(check: Check) -> None:
    mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red", bold=True)
    click.echo(f"{mark}  {check.name:<11}  {visible(check.detail)}")
    if check.fix:
        click.echo(f"{'':<4}  {'':<11}  fix: {visible(check.fix)}")


@click.command()
@click.argument("refs", metavar="[ID]...", nargs=-1, shell_complete=complete_task_id)
@click.option("--label", "labels", multiple=True, help="Only tasks with this label (* wildcard).")
@click.option("--status", "statuses", type=JIRA_STATUS, multiple=True, help="Only this status.")
@click.option("--interval", type=DURATION, default="2s", show_default=True, help="Refresh.")
@click.option(
    "--recent", type=DURATION, default="5m", show_default=True, help="Keep ended tasks this long."
)
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@pass_app
def watch(
    app: AppContext,
    refs: tuple[str, ...],
    labels: tuple[str, ...],
    statuses: tuple[str, ...],
    interval: float,
    recent: float,
    once: bool,
) -> None:
    """Live view of the watched tasks: progress bars, status, age, ETA, time to the limit.

    Reads the database, so it runs beside the daemon. Ctrl-C quits (exit 0). On a terminal
    the view redraws in place, in colour; otherwise it prints a plain snapshot every
    --interval (or one, with --once).

    \b
    Example:
      jtm watch
      jtm watch 10042 10043 --interval 1s
      jtm watch --label 'reindex*' --once | mail -s tasks ops@example.com
    """
    import shutil

    from monitor.store.queries import Filters
    from monitor.watch import View, load_view, run

    queries, settings = app.queries(), app.settings()
    found = tuple(app.task_ref(ref) for ref in refs)
    filters = Filters(statuses=statuses, labels=labels, refs=found)
    tty = sys.stdout.isatty()

    def load() -> View:
        shown = shutil.get_terminal_size().lines if tty else None
        now = datetime.now(UTC)
        return load_view(
            queries,
            settings=settings,
            filters=filters,
            now=now,
            recent_s=recent,
            shown=shown,
        )

    run(
        load, out=sys.stdout, tty=tty, interval_s=interval, once=once, size=shutil.get_terminal_size
    )


COMMANDS = (status, check, watch)
