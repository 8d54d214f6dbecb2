"""The bare client the daemon is compared with: the same GETs with `requests`, `json.loads`
and one SQLite insert per poll, at the same concurrency, and nothing else.

It is shaped like the poller so that the comparison is fair: one `requests.Session` whose
pool holds `concurrency` connections, GETs (and parsing) in a thread pool of that size, and
the writes in the calling thread, one transaction per poll, on a WAL database with
`synchronous=NORMAL`. It imports nothing of the monitor. `SameSqlWriter` is a diagnostic
variant that writes what the daemon writes (the compare-and-set update of the task row and the
snapshot's last-seen time) with hand-written SQL, to separate the cost of that work from the
cost of the layers that issue it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

POLLS_TABLE = """
CREATE TABLE IF NOT EXISTS polls (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    status TEXT,
    progress INTEGER,
    message TEXT,
    elapsed_ms INTEGER
)
"""


def connect(db_path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class Writer(Protocol):
    def write(self, task_id: str, data: dict[str, Any], now: datetime) -> None: ...


class InsertWriter:
    """One INSERT per poll in its own transaction: the issue's baseline."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute(POLLS_TABLE)

    def write(self, task_id: str, data: dict[str, Any], now: datetime) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO polls (task_id, observed_at, status, progress, message, elapsed_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                task_id,
                now.isoformat(),
                data.get("status"),
                data.get("progress"),
                data.get("message"),
                data.get("elapsedRuntime"),
            ),
        )
        conn.execute("COMMIT")


class PgInsertWriter:
    """The same baseline on PostgreSQL: one INSERT per poll in its own transaction, with
    psycopg 3 (what the monitor's PostgreSQL extra installs)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        with self.conn.transaction():
            self.conn.execute(POLLS_TABLE.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))

    def write(self, task_id: str, data: dict[str, Any], now: datetime) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO polls (task_id, observed_at, status, progress, message, elapsed_ms)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    task_id,
                    now.isoformat(),
                    data.get("status"),
                    data.get("progress"),
                    data.get("message"),
                    data.get("elapsedRuntime"),
                ),
            )


class SameSqlWriter:
    """The daemon's reads and writes for an unchanged poll, by hand, on the daemon's schema:
    the due-task query of each round, then per poll the compare-and-set UPDATE of the task row
    (the same columns) and the newest snapshot's last-seen time, in one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.polls: dict[str, int] = {}

    def due(self, now: datetime) -> list[str]:
        cursor = self.conn.execute(
            "SELECT * FROM tasks WHERE state = 'watching' AND next_poll_at <= ?"
            " ORDER BY next_poll_at LIMIT 5000",
            (_stamp(now),),
        )
        names = [column[0] for column in cursor.description]
        key, polls = names.index("task_id"), names.index("polls")
        self.polls = {row[key]: row[polls] for row in cursor.fetchall()}
        return list(self.polls)

    def write(self, task_id: str, data: dict[str, Any], now: datetime) -> None:
        conn = self.conn
        stamp = _stamp(now)
        polls = self.polls[task_id]
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(
            "UPDATE tasks SET status = ?, progress = ?, message = ?, description = ?,"
            " result = ?, elapsed_runtime_ms = ?, jira_submitted_at = ?, jira_started_at = ?,"
            " jira_finished_at = ?, jira_last_update_at = ?, last_seen_at = ?,"
            " poll_interval_s = ?, next_poll_at = ?, consecutive_errors = 0,"
            " not_found_count = 0, polls = ?, updated_at = ?"
            " WHERE task_id = ? AND state = 'watching' AND polls = ?",
            (
                data.get("status"),
                data.get("progress"),
                data.get("message"),
                data.get("description"),
                None,
                data.get("elapsedRuntime"),
                _millis(data.get("submitted")),
                _millis(data.get("started")),
                _millis(data.get("finished")),
                _millis(data.get("lastUpdate")),
                stamp,
                300.0,
                _stamp(now + timedelta(seconds=300)),
                polls + 1,
                stamp,
                task_id,
                polls,
            ),
        )
        if cursor.rowcount == 1:
            conn.execute(
                "UPDATE snapshots SET last_seen_at = ? WHERE id ="
                " (SELECT max(id) FROM snapshots WHERE task_id = ?)",
                (stamp, task_id),
            )
        conn.execute("COMMIT")


def _stamp(when: datetime) -> str:
    """A UTC time as SQLAlchemy stores it on SQLite."""
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _millis(value: object) -> str | None:
    if not isinstance(value, int):
        return None
    return _stamp(datetime.fromtimestamp(value / 1000, UTC))


class BareClient:
    """GET, parse and write each task of a round, `concurrency` GETs at a time."""

    def __init__(
        self, base_url: str, writer: Writer, concurrency: int, email: str, token: str
    ) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = (email, token)
        session.headers["Accept"] = "application/json"
        self.session = session
        self.api = f"{base_url.rstrip('/')}/rest/api/3/task/"
        self.writer = writer
        self.pool = ThreadPoolExecutor(max_workers=concurrency)

    def fetch(self, task_id: str) -> dict[str, Any]:
        response = self.session.get(self.api + task_id, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"GET {task_id}: HTTP {response.status_code}")
        data: dict[str, Any] = json.loads(response.content)
        return data

    def poll_round(self, task_ids: Sequence[str], now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        futures = {self.pool.submit(self.fetch, task_id): task_id for task_id in task_ids}
        for future in as_completed(futures):
            self.writer.write(futures[future], future.result(), now)
        return len(futures)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.session.close()
