"""The delivery of the outbox, one step at a time with a chosen `now` (no threads, no sleeps):
order, backoff, the retry limit, the rate limit and grouping, and a crash between claim and
record. The transport is the seam: a function that delivers or raises DeliveryError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from monitor.logs import get_logger
from monitor.notify.channels import Channel
from monitor.notify.delivery import ChannelSender
from monitor.notify.events import Notice, NotifyEvent
from monitor.notify.router import Router
from monitor.notify.transport import DeliveryError, Message
from monitor.outcome import Happened
from monitor.states import TaskKind
from monitor.store import Registration, Store
from monitor.store.outbox import Outbox
from monitor.taskref import TaskRef
from tests.helpers import polled

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Transport:
    """Records what it was asked to send; fails while `down`."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False

    def __call__(self, channel: Channel, message: Message) -> None:
        self.sent.append(message)
        if self.down:
            raise DeliveryError("HTTP 503 from the receiver")


def _setup(
    store: Store, n: int, **keys: object
) -> tuple[ChannelSender, Transport, Outbox, Channel]:
    channel = Channel("hook", "json://127.0.0.1:9/", **keys)  # type: ignore[arg-type]
    outbox = Outbox(store.engine)
    router = Router([channel], "https://example.atlassian.net")
    notices = [
        Notice(NotifyEvent.TASK_GONE, T0, {"reason": "expired"}, task_id=str(i)) for i in range(n)
    ]
    outbox.add(router.rows(notices))
    transport = Transport()
    sender = ChannelSender(channel, outbox, log=get_logger(), sender=transport, clock=lambda: T0)
    return sender, transport, outbox, channel


def test_each_event_goes_out_once_in_order(store: Store) -> None:
    sender, transport, outbox, _ = _setup(store, 3)
    while sender.step(T0) == 0:
        pass
    assert [json.loads(json.dumps(m.body))["task_id"] for m in transport.sent] == ["0", "1", "2"]
    assert outbox.totals() == {"pending": 0, "failed": 0}
    assert outbox.counts()["hook"]["sent"] == 3


def test_failures_back_off_doubling_then_give_up_once(store: Store) -> None:
    sender, transport, outbox, _ = _setup(
        store, 1, retry_backoff_s=1.0, retry_max_backoff_s=4.0, max_attempts=5
    )
    transport.down = True
    now = T0
    sender.clock = lambda: now
    with capture_logs() as logs:
        for _ in range(5):
            wait = sender.step(now)
            assert wait == 0
            if outbox.totals()["failed"]:
                break
            due = outbox.next_due_at("hook")
            assert due is not None
            assert sender.step(now) > 0  # not due yet: nothing sent
            now = due
    gaps = [1.0, 2.0, 4.0, 4.0]  # doubling, capped at retry_max_backoff
    assert now == T0 + timedelta(seconds=sum(gaps))
    assert len(transport.sent) == 5
    assert len({m.key for m in transport.sent}) == 1  # one message, one key
    assert outbox.totals() == {"pending": 0, "failed": 1}
    assert [e["attempts"] for e in logs if e["event"] == "notify.failed"] == [5]
    assert len([e for e in logs if e["event"] == "notify.retrying"]) == 4


def test_a_message_claimed_before_a_crash_goes_again_whole_under_its_key(store: Store) -> None:
    sender, transport, outbox, channel = _setup(store, 1)
    # a first process claims and sends, and dies before recording: the receiver got it
    first = outbox.unclaimed_due("hook", T0, 10)
    assert outbox.claim([r.id for r in first], first[0].key)
    # more events arrive meanwhile
    outbox.add(
        Router([channel], None).rows([Notice(NotifyEvent.TASK_GONE, T0, {}, task_id="later")])
    )
    # the next process's sender sends the claimed batch again, same key, then the rest
    sender.step(T0)
    sender.step(T0)
    assert [m.key for m in transport.sent] == [first[0].key, transport.sent[1].key]
    assert transport.sent[0].body["task_id"] == "0"
    assert transport.sent[1].body["task_id"] == "later"
    assert outbox.counts()["hook"] == {"sent": 2}


def test_a_burst_beyond_the_rate_is_one_grouped_message(store: Store) -> None:
    sender, transport, outbox, _ = _setup(store, 500, max_per_minute=3)
    sender.step(T0)
    (message,) = transport.sent
    assert message.event == "group"
    assert message.body["count"] == 500
    assert len(message.body["events"]) == 5
    assert len(set(message.body["event_ids"])) == 500
    assert "... and 495 more" in message.text
    assert message.title.startswith("jtm: 500 notifications (task.gone x 500)")
    assert outbox.totals()["pending"] == 0


def test_the_rate_limit_holds_further_messages(store: Store) -> None:
    sender, transport, _outbox, _ = _setup(store, 2, max_per_minute=1)
    sender.step(T0)
    assert sender.step(T0) > 0  # the minute's one message is spent: wait
    assert len(transport.sent) == 1


@pytest.mark.parametrize("down", [True, False])
def test_a_down_channel_does_not_stop_another(store: Store, down: bool) -> None:
    sender, transport, outbox, _ = _setup(store, 1)
    other = Channel("other", "json://127.0.0.1:9/x")
    outbox.add(Router([other], None).rows([Notice(NotifyEvent.TASK_GONE, T0, {}, task_id="9")]))
    transport.down = down
    second = Transport()
    ChannelSender(other, outbox, log=get_logger(), sender=second, clock=lambda: T0).step(T0)
    sender.step(T0)
    assert len(second.sent) == 1
    assert outbox.counts()["other"] == {"sent": 1}


def test_a_polls_notices_ride_on_its_outcome_and_commit_with_its_events(store: Store) -> None:
    """The router fills the typed outcome's `notices`; the store writes them in the poll's
    transaction, and not at all when the poll loses its race. An outcome with notices is
    never merged into a held chain of plain ones (`Outcome.plain`)."""
    store.register(["1"], Registration(), T0)
    router = Router([Channel("hook", "json://127.0.0.1:9/")], "https://example.atlassian.net")
    task = store.get("1")
    outcome = router.attach(polled(task, T0, "COMPLETE", 100))
    assert outcome.happened == Happened.FINISHED
    assert [row["event"] for row in outcome.notices] == ["task.finished"]
    assert not outcome.plain  # never merged away with the polls held before it
    stale = router.attach(polled(task, T0, "FAILED", 100))  # the same task, as read before
    assert store.record_polls([outcome, stale]) == [True, False]
    outbox = Outbox(store.engine)
    assert outbox.counts() == {"hook": {"pending": 1}}
    pending = outbox.unclaimed_due("hook", T0, 10)
    assert [row.key for row in pending] == [outcome.notices[0]["key"]]
    assert json.loads(pending[0].payload)["status"] == "COMPLETE"


def test_an_outcome_without_channels_has_no_notices(store: Store) -> None:
    store.register(["1"], Registration(), T0)
    outcome = polled(store.get("1"), T0, "COMPLETE", 100)
    assert Router([], None).attach(outcome) is outcome
    assert store.record_polls([outcome]) == [True]
    assert Outbox(store.engine).counts() == {}


@pytest.mark.parametrize(
    ("ref", "kind", "path"),
    [
        (TaskRef(TaskKind.TASK, "7"), "task", "/rest/api/2/task/7"),
        (TaskRef(TaskKind.BULK, "7"), "bulk", "/rest/api/3/bulk/queue/7"),
    ],
)
def test_a_notice_names_its_tasks_kind_and_link(
    store: Store, ref: TaskRef, kind: str, path: str
) -> None:
    """The same ID as a task and as a bulk operation: each notice says which, links to
    where Jira reports it, and its outbox row keeps the kind."""
    store.register([ref], Registration(), T0)
    router = Router([Channel("hook", "json://127.0.0.1:9/")], "https://x.atlassian.net", 2)
    outcome = router.attach(polled(store.get(ref), T0, "COMPLETE", 100))
    assert store.record_polls([outcome]) == [True]
    [row] = outcome.notices
    body = json.loads(row["payload"])
    assert (row["task_kind"], body["kind"], body["task_id"]) == (kind, kind, "7")
    assert body["url"] == "https://x.atlassian.net" + path
