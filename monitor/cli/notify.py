"""`jtm notify`: the notification channels, their outbox, and a test message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from monitor.cli.context import AppContext, pass_app
from monitor.cli.options import output_format
from monitor.cli.output import emit_json
from monitor.errors import NotFoundError, OperationFailed
from monitor.terminal import visible

if TYPE_CHECKING:
    from monitor.notify.channels import Channel


@click.group()
def notify() -> None:
    """Notification channels ([[notify]] in the config).

    \b
    Example:
      jtm notify list
      jtm notify test ops-chat
    """


def _channel_json(channel: Channel, counts: dict[str, int], error: str | None) -> dict[str, Any]:
    return {
        "name": channel.name,
        "url": channel.shown_url,
        "events": list(channel.events),
        "statuses": list(channel.statuses),
        "labels": list(channel.labels),
        "max_per_minute": channel.max_per_minute,
        "max_attempts": channel.max_attempts,
        "outbox": {state: counts.get(state, 0) for state in ("pending", "failed", "sent")},
        "last_error": error,
    }


@notify.command("list")
@output_format()
@pass_app
def list_channels(app: AppContext, fmt: str) -> None:
    """Show the channels, their filters, and their outbox (pending, failed, sent).

    \b
    Example:
      jtm notify list
      jtm notify list --json | jq '.[] | select(.outbox.failed > 0)'
    """
    from monitor.store.outbox import Outbox

    channels = app.settings().notify
    outbox = Outbox(app.engine())
    counts, errors = outbox.counts(), outbox.last_errors()
    rows = [_channel_json(c, counts.get(c.name, {}), errors.get(c.name)) for c in channels]
    if fmt == "json":
        emit_json(rows)
        return
    if not rows:
        click.echo("no channels: add [[notify]] tables to the config")
        return
    for row in rows:
        box = row["outbox"]
        filters = f"events {','.join(row['events'])}"
        if row["statuses"]:
            filters += f"; statuses {','.join(row['statuses'])}"
        if row["labels"]:
            filters += f"; labels {','.join(row['labels'])}"
        click.echo(
            f"{visible(row['name'])}  {visible(row['url'])}  {visible(filters)}; "
            f"at most {row['max_per_minute']}/min"
        )
        click.echo(
            f"    outbox: {box['pending']:,} pending, {box['failed']:,} failed, "
            f"{box['sent']:,} sent"
        )
        if row["last_error"]:
            click.echo(f"    last error: {visible(row['last_error'])}")


@notify.command("test")
@click.argument("name", required=False)
@pass_app
def test_channel(app: AppContext, name: str | None) -> None:
    """Send a test message through channel NAME (default: every channel), now.

    The message goes straight out, not through the outbox. Exits 1 if any channel failed.

    \b
    Example:
      jtm notify test ops-chat
    """
    from monitor.notify.events import Notice, NotifyEvent, new_id, payload
    from monitor.notify.service import check_channels
    from monitor.notify.transport import DeliveryError, Message, send

    channels = app.settings().notify
    if name is not None:
        channels = tuple(c for c in channels if c.name == name)
        if not channels:
            raise NotFoundError(f"no notify channel named {name!r}")
    if not channels:
        raise NotFoundError("no notify channels: add [[notify]] tables to the config")
    check_channels(channels)
    fields = {"reason": "jtm notify test", "action": "nothing: this is a test"}
    notice = Notice(NotifyEvent.TEST, datetime.now(UTC), fields).with_id()
    body = payload(notice)
    failed = 0
    for channel in channels:
        key = new_id()
        message = Message(
            key, body["event"], body["title"], body["text"], body | {"idempotency_key": key}
        )
        try:
            send(channel, message)
        except DeliveryError as exc:
            failed += 1
            click.echo(f"FAIL  {visible(channel.name)}: {visible(str(exc))}")
        else:
            click.echo(f"ok    {visible(channel.name)}: delivered (idempotency key {key})")
    if failed:
        raise OperationFailed(f"{failed} of {len(channels)} channel(s) failed")


COMMANDS = (notify,)
