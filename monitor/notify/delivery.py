"""Delivering the outbox in the background: one sender thread per channel.

Each `ChannelSender` works its own channel in order, never the tick's thread and never another
channel's: a channel that is down or hangs (each send is bounded by its `timeout`) delays only
itself. One `step` sends one message:

1. A batch claimed earlier and still pending (a retry, or a send cut short by a crash) goes
   again, whole, under the same idempotency key, once its retry time is due.
2. Otherwise the due rows not yet claimed are claimed into a batch first (durably, before the
   send): one row, or, when more are waiting than the channel's `max_per_minute` allows in the
   current minute, all of them (up to `GROUP_MAX`) as one grouped message with the count and
   the first few.
3. Delivered: the rows are `sent` (`notify.delivered`). Failed: retried after the channel's
   backoff, doubling from `retry_backoff` up to `retry_max_backoff`; after `max_attempts` the
   rows are `failed`, logged once (`notify.failed`) and counted by `jtm status`.

A message that cannot wait for the database (the database itself failing to write) is held in
memory instead (`announce`): it is tried the same way, for as long as the daemon runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from monitor.errors import MonitorError
from monitor.logs import get_logger
from monitor.notify.channels import Channel
from monitor.notify.events import Notice, new_id, payload
from monitor.notify.transport import DeliveryError, Message, send
from monitor.store.outbox import Outbox, Pending

GROUP_MAX = 1000
"""At most this many events in one grouped message."""
GROUP_EXAMPLES = 5
"""A grouped message lists this many events; the count says how many more."""
IDLE_S = 1.0
"""How often an idle sender looks for new rows (a tick that wrote some wakes it sooner)."""
STORE_RETRY_S = 5.0
"""How long a sender waits after the database could not be read or written."""

Clock = Callable[[], datetime]
Sender = Callable[[Channel, Message], None]


def compose(rows: Sequence[Pending], key: str) -> Message:
    """The message for `rows`: the event itself, or a group with a count and the first few."""
    bodies = [json.loads(row.payload) for row in rows]
    if len(bodies) == 1:
        body = {**bodies[0], "idempotency_key": key}
        return Message(key, body["event"], body["title"], body["text"], body)
    kinds = Counter(b["event"] for b in bodies)
    summary = ", ".join(f"{event} x {n}" for event, n in kinds.most_common())
    title = f"jtm: {len(bodies)} notifications ({summary})"
    lines = [b["title"].removeprefix("jtm: ") for b in bodies[:GROUP_EXAMPLES]]
    if len(bodies) > GROUP_EXAMPLES:
        lines.append(f"... and {len(bodies) - GROUP_EXAMPLES} more")
    group = {
        "event": "group",
        "idempotency_key": key,
        "count": len(bodies),
        "events": bodies[:GROUP_EXAMPLES],
        "event_ids": [b["event_id"] for b in bodies],
        "title": title,
        "text": "\n".join(lines),
    }
    return Message(key, "group", title, "\n".join(lines), group)


class RateWindow:
    """Messages sent in the last minute, against the channel's `max_per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.sent: deque[float] = deque()

    def _trim(self) -> float:
        now = self.clock()
        while self.sent and self.sent[0] <= now - 60.0:
            self.sent.popleft()
        return now

    def remaining(self) -> int:
        self._trim()
        return self.per_minute - len(self.sent)

    def wait_s(self) -> float:
        now = self._trim()
        return 0.0 if len(self.sent) < self.per_minute else self.sent[0] + 60.0 - now

    def used(self) -> None:
        self.sent.append(self._trim())


@dataclass(slots=True)
class _Volatile:
    message: Message
    event_id: str
    attempts: int = 0
    next_at: datetime | None = None


class ChannelSender:
    """Delivers one channel's outbox rows; `step(now)` is one unit of work (tests call it)."""

    def __init__(
        self,
        channel: Channel,
        outbox: Outbox,
        *,
        log: FilteringBoundLogger | None = None,
        sender: Sender = send,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.channel = channel
        self.outbox = outbox
        self.log = log or get_logger()
        self.sender = sender
        self.clock = clock
        self.window = RateWindow(channel.max_per_minute)
        self.volatile: deque[_Volatile] = deque()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"jtm-notify-{self.channel.name}", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after the send in hand (bounded by the channel's timeout)."""
        self.stopping.set()
        self.wake.set()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                wait = self.step(self.clock())
            except MonitorError as exc:  # the database: try again later
                self.log.warning(
                    "notify.outbox_unavailable", channel=self.channel.name, error=str(exc)
                )
                wait = STORE_RETRY_S
            except Exception:
                self.log.exception("notify.sender_failed", channel=self.channel.name)
                wait = STORE_RETRY_S
            if wait > 0:
                self.wake.wait(wait)
                self.wake.clear()

    def step(self, now: datetime) -> float:
        """Send one message if one is due; return how long to wait before the next step."""
        if self.volatile and self._volatile(now):
            return 0.0
        rows = self.outbox.claimed_due(self.channel.name, now)
        if not rows:
            if self.outbox.has_claimed(self.channel.name):
                return self._until_due(now)  # in order: a batch retrying holds the rest
            if (wait := self.window.wait_s()) > 0:
                return wait
            waiting = self.outbox.unclaimed_due(self.channel.name, now, GROUP_MAX)
            if not waiting:
                return self._until_due(now)
            take = waiting[:1] if len(waiting) <= self.window.remaining() else waiting
            key = take[0].key
            if not self.outbox.claim([row.id for row in take], key):
                return 0.0
            rows = [replace(row, batch=key) for row in take]
        self._attempt(rows, now)
        return 0.0

    def _until_due(self, now: datetime) -> float:
        at = self.outbox.next_due_at(self.channel.name)
        if at is None:
            return IDLE_S
        return min(max((at - now).total_seconds(), 0.05), IDLE_S)

    def _attempt(self, rows: Sequence[Pending], now: datetime) -> None:
        key = rows[0].batch or rows[0].key
        message = compose(rows, key)
        attempt = rows[0].attempts + 1
        error = self._send(message)
        done = self.clock()
        context: dict[str, Any] = {
            "channel": self.channel.name,
            "event_id": rows[0].event_id,
            "notice": message.event,
            "attempts": attempt,
            "idempotency_key": key,
            "count": len(rows),
        }
        if error is None:
            self.outbox.record_attempt(key, done, error=None, next_at=None)
            self.log.info("notify.delivered", **context)
            return
        if attempt >= self.channel.max_attempts:
            self.outbox.record_attempt(key, done, error=error, next_at=None)
            self.log.error("notify.failed", **context, error=error)
            return
        delay = self.backoff(attempt)
        self.outbox.record_attempt(key, done, error=error, next_at=done + delay)
        self.log.info("notify.retrying", **context, error=error, retry_in_s=delay.total_seconds())

    def backoff(self, attempt: int) -> timedelta:
        """The wait after the `attempt`-th failed attempt: doubling, capped."""
        seconds = self.channel.retry_backoff_s * 2 ** min(attempt - 1, 30)
        return timedelta(seconds=min(seconds, self.channel.retry_max_backoff_s))

    def _send(self, message: Message) -> str | None:
        self.window.used()
        try:
            self.sender(self.channel, message)
        except DeliveryError as exc:
            return str(exc) or "not delivered"
        except Exception as exc:
            return f"internal error: {type(exc).__name__}"
        return None

    # -- messages held in memory ---------------------------------------------------------

    def announce(self, message: Message, event_id: str) -> None:
        self.volatile.append(_Volatile(message, event_id))
        self.wake.set()

    def _volatile(self, now: datetime) -> bool:
        item = self.volatile[0]
        if item.next_at is not None and item.next_at > now:
            return False
        self.volatile.popleft()
        item.attempts += 1
        error = self._send(item.message)
        context = {"channel": self.channel.name, "event_id": item.event_id}
        if error is None:
            self.log.info("notify.delivered", **context, attempts=item.attempts)
        elif item.attempts >= self.channel.max_attempts:
            self.log.error("notify.failed", **context, attempts=item.attempts, error=error)
        else:
            item.next_at = self.clock() + self.backoff(item.attempts)
            self.volatile.appendleft(item)
        return True


class Delivery:
    """The senders of every channel, started with the daemon and stopped with it."""

    def __init__(
        self,
        channels: Sequence[Channel],
        outbox: Outbox,
        *,
        log: FilteringBoundLogger | None = None,
        sender: Sender = send,
    ) -> None:
        self.outbox = outbox
        self.log = log or get_logger()
        self.sender = sender
        self.senders = {
            c.name: ChannelSender(c, outbox, log=self.log, sender=sender) for c in channels
        }

    def start(self) -> None:
        for sender in self.senders.values():
            sender.start()

    def wake(self) -> None:
        """New rows were written: look now rather than at the next idle check."""
        for sender in self.senders.values():
            sender.wake.set()

    def announce(self, notice: Notice, channels: Sequence[Channel]) -> None:
        """Send `notice` from memory (it cannot be written) through the channels that take it."""
        notice = notice.with_id()
        body = payload(notice)
        for channel in channels:
            if channel.name in self.senders and channel.wants(notice.event, None, None, False):
                key = new_id()
                message = Message(
                    key, body["event"], body["title"], body["text"], body | {"idempotency_key": key}
                )
                self.senders[channel.name].announce(message, notice.event_id)

    def replace(self, channels: Sequence[Channel]) -> None:
        """A reload: stop the senders of channels that changed, start the new ones."""
        wanted = {c.name: c for c in channels}
        for name, sender in list(self.senders.items()):
            if wanted.get(name) != sender.channel:
                sender.stop()
                del self.senders[name]
        for name, channel in wanted.items():
            if name not in self.senders:
                self.senders[name] = ChannelSender(
                    channel, self.outbox, log=self.log, sender=self.sender
                )
                self.senders[name].start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every sender; a send in hand finishes (each is bounded by its timeout)."""
        for sender in self.senders.values():
            sender.stop()
        deadline = time.monotonic() + timeout
        for sender in self.senders.values():
            sender.join(max(deadline - time.monotonic(), 0.0))
