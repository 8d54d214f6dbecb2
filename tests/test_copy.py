"""`jtm db copy --to URL`: a SQLite database copied whole, into SQLite and into PostgreSQL."""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from monitor.database import open_database
from monitor.notify.channels import Channel
from monitor.notify.events import Notice, NotifyEvent
from monitor.notify.router import Router
from monitor.outcome import MAX_STORED_RESULT_CHARS
from monitor.schema import EVENTS, NOTIFICATIONS, SNAPSHOTS, TASKS
from monitor.store import Registration, Store
from monitor.store.outbox import Outbox
from tests.conftest import RunCli
from tests.databases import other_db_url_on_both  # noqa: F401 (`other_db_url`, on both databases)
from tests.helpers import polled

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _notices(*task_ids: str) -> tuple[dict[str, Any], ...]:
    """Outbox rows of a channel `hook`: one per task gone."""
    router = Router([Channel("hook", "json://127.0.0.1:9/")], "https://example.atlassian.net")
    return router.rows(
        [Notice(NotifyEvent.TASK_GONE, T0, {"reason": "expired"}, task_id=t) for t in task_ids]
    )


def _fill(store: Store) -> None:
    """Tasks with a history: snapshots, events, a JSON result and one cut past its limit;
    an outbox with a message sent and two still to send."""
    ids = [f"t{n}" for n in range(25)]
    store.register(ids, Registration(label="copy", run_s=3600.0), T0)
    results: list[object] = [{"errors": {"n": n}, "ok": [1, 2]} for n in range(25)]
    results[3] = {"cut": "x" * (MAX_STORED_RESULT_CHARS + 10)}  # stored cut: no longer JSON
    for step in range(3):
        at = T0 + timedelta(seconds=30 * step)
        tasks = store.due_tasks(at + timedelta(days=1), 100)
        status = "COMPLETE" if step == 2 else "RUNNING"
        outcomes = [
            polled(task, at, status, step, result=result if step == 2 else None)
            for task, result in zip(tasks, results, strict=True)
        ]
        assert all(store.record_polls(outcomes))
    store.remove(["t24"], T0 + timedelta(hours=1))
    outbox = Outbox(store.engine)
    outbox.add(_notices("t0", "t1", "t2"))
    [first, *_] = outbox.unclaimed_due("hook", T0, 10)
    assert outbox.claim([first.id], first.key)
    outbox.record_attempt(first.key, T0, error=None, next_at=None)


def _rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    with engine.connect() as conn:
        for table in (TASKS, SNAPSHOTS, EVENTS, NOTIFICATIONS):
            key = next(iter(table.primary_key.columns))
            found = [r._asdict() for r in conn.execute(select(table).order_by(key))]
            for row in found:
                if row.get("result") is not None:
                    # A cut result is no longer JSON: it reads back as its text on both.
                    with suppress(ValueError):
                        row["result"] = json.loads(row["result"])
            rows[table.name] = found
    return rows


def test_db_copy_keeps_every_task_snapshot_and_event(
    run: RunCli, config: Path, other_db_url: str
) -> None:
    source = open_database(f"sqlite:///{config.parent / 'monitor.db'}")
    target = None
    try:
        _fill(Store(source))
        result = run("db", "copy", "--to", other_db_url)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(
            "copied 25 tasks, 75 snapshots, 101 events, 3 notifications to "
        )
        target = open_database(other_db_url)
        assert _rows(target) == _rows(source)
        # The copy carries on where the source stopped: new rows get new IDs.
        store = Store(target)
        store.register(["new"], Registration(), T0)
        [task] = [t for t in store.due_tasks(T0, 100) if t.task_id == "new"]
        assert store.record_polls([polled(task, T0)]) == [True]
        assert len(_rows(target)["snapshots"]) == 76
        assert Outbox(target).counts() == {"hook": {"sent": 1, "pending": 2}}
        Outbox(target).add(_notices("new"))  # the outbox's IDs carry on too
        assert len(_rows(target)["notifications"]) == 4
        # A target that already holds tasks is refused, and left as it was.
        before = _rows(target)
        again = run("db", "copy", "--to", other_db_url)
        assert again.exit_code == 1
        assert "already holds 26 task(s)" in again.output
        assert "Traceback" not in again.output
        assert _rows(target) == before
    finally:
        source.dispose()
        if target is not None:
            target.dispose()


def test_db_copy_onto_itself_is_a_usage_error(run: RunCli, config: Path) -> None:
    result = run("db", "copy", "--to", f"sqlite:///{config.parent / 'monitor.db'}")
    assert result.exit_code == 2
    assert "--to names the database being copied" in result.output
