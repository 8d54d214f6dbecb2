"""The notifications outbox shared by several instances on one PostgreSQL database (skipped
without a server, see `tests.databases`): two senders of one channel, each on its own
connection pool as two instances would be, deliver every row once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest

from monitor.database import open_database
from monitor.logs import get_logger
from monitor.notify.channels import Channel
from monitor.notify.delivery import BUSY_S, ChannelSender
from monitor.notify.events import Notice, NotifyEvent
from monitor.notify.router import Router
from monitor.notify.transport import Message
from monitor.store.outbox import Outbox

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHANNEL = Channel("hook", "json://127.0.0.1:9/")


@pytest.mark.postgresql
def test_two_instances_senders_deliver_each_outbox_row_once(pg_url: str) -> None:
    engines = [open_database(pg_url), open_database(pg_url)]
    try:
        first, second = Outbox(engines[0]), Outbox(engines[1])
        router = Router([CHANNEL], "https://example.atlassian.net")
        notices = [
            Notice(NotifyEvent.TASK_GONE, T0, {"reason": "expired"}, task_id=str(n))
            for n in range(4)
        ]
        first.add(router.rows(notices))
        sent: list[str] = []
        other_steps: list[float] = []

        def transport(channel: Channel, message: Message) -> None:
            sent.append(message.key)
            if len(sent) == 1:
                # The other instance's sender looks while this one is still sending (its
                # batch claimed, due, not yet recorded): it must not send that batch too.
                peer = threading.Thread(target=lambda: other_steps.append(b.step(T0)))
                peer.start()
                peer.join(timeout=10)

        a = ChannelSender(CHANNEL, first, log=get_logger(), sender=transport, clock=lambda: T0)
        b = ChannelSender(CHANNEL, second, log=get_logger(), sender=transport, clock=lambda: T0)
        for _ in range(20):  # bounded: each step sends at most one message
            if first.totals()["pending"] == 0:
                break
            a.step(T0)
            b.step(T0)
        assert first.totals() == {"pending": 0, "failed": 0}
        assert first.counts()["hook"] == {"sent": 4}
        assert sorted(Counter(sent).values()) == [1, 1, 1, 1]
        assert other_steps == [BUSY_S]  # it found the channel taken, and sent nothing
    finally:
        for engine in engines:
            engine.dispose()
