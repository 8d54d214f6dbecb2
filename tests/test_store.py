"""Registration and the compare-and-set writes of the store, on real SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.errors import NotFoundError
from monitor.states import EventKind, TaskState
from monitor.store import Registration, Store
from monitor.store.queries import Filters, Queries
from monitor.taskref import as_ref
from tests.helpers import events, polled, snapshots

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_register_then_readd_updates_options_without_duplicating(store: Store) -> None:
    first = store.register(["1", "2", "1"], Registration(label="a", run_s=60), T0)
    assert [(str(r.ref), r.outcome) for r in first] == [("1", "added"), ("2", "added")]
    again = store.register(["1"], Registration(stall_s=30), T0 + timedelta(minutes=1))
    assert [(str(r.ref), r.outcome) for r in again] == [("1", "updated")]
    task = store.get("1")
    assert (task.label, task.limit_run_s, task.limit_stall_s) == ("a", 60, 30)
    assert task.registered_at == T0
    assert task.state == TaskState.WATCHING
    assert task.next_poll_at == T0
    assert len(Queries(store.engine).tasks(Filters())) == 2
    kinds = [e.kind for e in events(store, "1")]
    assert kinds == [EventKind.REGISTERED, EventKind.UPDATED]


def test_remove_keeps_history_and_readd_watches_again(store: Store) -> None:
    store.register(["7"], Registration(), T0)
    assert store.remove(["7"], T0 + timedelta(seconds=5)) == [as_ref("7")]
    assert store.remove(["7"], T0 + timedelta(seconds=6)) == []  # already removed
    task = store.get("7")
    assert (task.state, task.next_poll_at) == (TaskState.REMOVED, None)
    assert store.due_tasks(T0 + timedelta(days=1), 10) == []
    [result] = store.register(["7"], Registration(), T0 + timedelta(seconds=9))
    assert result.outcome == "rewatched"
    assert store.get("7").state == TaskState.WATCHING
    assert [e.kind for e in events(store, "7")] == ["registered", "removed", "updated"]


def test_register_one_batch_adds_updates_and_rewatches(store: Store) -> None:
    store.register(["1", "2", "3"], Registration(label="old"), T0)
    store.remove(["3"], T0 + timedelta(seconds=1))
    later = T0 + timedelta(minutes=1)
    results = store.register(["4", "1", "3", "4"], Registration(run_s=90), later)
    assert [(str(r.ref), r.outcome) for r in results] == [
        ("4", "added"),
        ("1", "updated"),
        ("3", "rewatched"),
    ]
    one, two, three, four = (store.get(t) for t in ("1", "2", "3", "4"))
    assert (one.label, one.limit_run_s, one.updated_at) == ("old", 90, later)
    assert (two.limit_run_s, two.updated_at) == (None, T0)  # not in the batch: untouched
    assert (three.state, three.removed_at, three.next_poll_at) == (TaskState.WATCHING, None, later)
    assert (four.label, four.limit_run_s, four.registered_at) == (None, 90, later)
    assert [e.detail for e in events(store, "1")] == [None, "limit_run_s=90"]


def test_remove_of_an_unknown_id_changes_nothing(store: Store) -> None:
    store.register(["1"], Registration(), T0)
    with pytest.raises(NotFoundError, match="nope"):
        store.remove(["1", "nope"], T0)
    assert store.get("1").state == TaskState.WATCHING


def test_get_unknown_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.get("404")
    assert caught.value.exit_code == 3


def test_due_tasks_are_the_watched_ones_whose_time_has_come(store: Store) -> None:
    store.register(["a"], Registration(), T0)
    store.register(["b"], Registration(), T0 + timedelta(seconds=10))
    assert [t.task_id for t in store.due_tasks(T0, 10)] == ["a"]
    assert [t.task_id for t in store.due_tasks(T0 + timedelta(seconds=10), 10)] == ["a", "b"]
    assert [t.task_id for t in store.due_tasks(T0 + timedelta(seconds=10), 1)] == ["a"]


def test_record_poll_is_compare_and_set(store: Store) -> None:
    store.register(["1"], Registration(), T0)
    [read] = store.due_tasks(T0, 10)
    assert store.record_polls([polled(read, T0, "RUNNING", 5)])[0]
    # The same read again is stale: another writer (or instance) got there first.
    assert not store.record_polls([polled(read, T0, "COMPLETE", 5)])[0]
    assert store.get("1").status == "RUNNING"
    assert store.get("1").polls == 1
    assert len(snapshots(store, "1")) == 1


def test_record_poll_does_not_resurrect_a_removed_task(store: Store) -> None:
    store.register(["1"], Registration(), T0)
    [read] = store.due_tasks(T0, 10)
    store.remove(["1"], T0)
    assert not store.record_polls([polled(read, T0, "RUNNING")])[0]
    assert store.get("1").state == TaskState.REMOVED


def test_touching_moves_last_seen_of_the_newest_snapshot_only(store: Store) -> None:
    store.register(["1"], Registration(), T0)
    for i, progress in enumerate((10, 20)):
        [task] = store.due_tasks(T0 + timedelta(days=1), 10)
        at = T0 + timedelta(seconds=i)
        assert store.record_polls([polled(task, at, "RUNNING", progress)])[0]
    [task] = store.due_tasks(T0 + timedelta(days=1), 10)
    later = T0 + timedelta(hours=1)
    assert store.record_polls([polled(task, later, "RUNNING", 20)])[0]  # no change: a touch
    newest, oldest = snapshots(store, "1")
    assert (newest.progress, newest.last_seen_at) == (20, later)
    assert (oldest.progress, oldest.last_seen_at) == (10, T0)


def test_snapshots_filter_and_limit(store: Store) -> None:
    store.register(["1", "2"], Registration(), T0)
    for i in range(6):
        task = store.get(str(i % 2 + 1))
        at = T0 + timedelta(minutes=i)
        assert store.record_polls([polled(task, at, "RUNNING", i)])[0]
    assert [s.progress for s in snapshots(store)] == [5, 4, 3, 2, 1, 0]
    assert [s.progress for s in snapshots(store, "2")] == [5, 3, 1]
    assert [s.progress for s in snapshots(store, since=T0 + timedelta(minutes=4))] == [5, 4]
    assert [s.progress for s in snapshots(store, limit=2)] == [5, 4]
