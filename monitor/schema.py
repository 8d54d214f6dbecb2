"""The database schema as SQLAlchemy Core tables.

The schema itself is created only by the Alembic migrations in `migrations/`; these tables
describe it for queries, and a test proves that the two agree. Column names are chosen to be
read by a person with `sqlite3`: times are UTC, stored as ISO 8601 text on SQLite.

There is no ORM: statements are SQLAlchemy Core, and rows come back as Core rows or as the
typed records of `monitor.records` (tasks, heartbeats). Importing the ORM alone would cost a
CLI command more than its query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores.

    On SQLite the value is text, in SQLAlchemy's own DATETIME format ("2026-03-01
    12:00:00.000000"); there the conversions below go straight between that text and aware
    datetimes with C-implemented `isoformat`/`fromisoformat`, instead of taking a naive
    datetime through SQLAlchemy's format dictionary and regular expression. A poll binds and
    reads a dozen such values, `jtm list` tens of thousands. A test holds them to SQLAlchemy's
    own processors.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" less its offset: SQLAlchemy's SQLite DATETIME text.
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        # The text has no offset: it is UTC. Naming it costs a sixth of `.replace(tzinfo=UTC)`.
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # written by hand with an offset of its own
        return datetime.fromisoformat(value).astimezone(UTC)


METADATA = MetaData(naming_convention=NAMING_CONVENTION)

# One registered Jira task: its registration, its latest known state, its schedule.
TASKS = Table(
    "tasks",
    METADATA,
    # The identity is (kind, task_id): the same ID may name a task and a bulk operation.
    Column("kind", String(8), primary_key=True, server_default="task"),  # a TaskKind
    Column("task_id", String(64), primary_key=True),
    Column("label", Text),
    Column("state", String(16), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("removed_at", UTCDateTime),
    # Per-task limits in seconds; NULL means "use [timeouts] from the config".
    Column("limit_total_s", Float),
    Column("limit_queued_s", Float),
    Column("limit_run_s", Float),
    Column("limit_stall_s", Float),
    Column("timeout_action", String(8)),
    # Jira's latest answer. Its clocks are kept as Jira sent them.
    Column("status", String(40)),
    Column("progress", Integer),
    Column("message", Text),
    Column("description", Text),
    Column("result", Text),
    Column("elapsed_runtime_ms", BigInteger),
    Column("jira_submitted_at", UTCDateTime),
    Column("jira_started_at", UTCDateTime),
    Column("jira_finished_at", UTCDateTime),
    Column("jira_last_update_at", UTCDateTime),
    # A bulk operation's per-issue counts (NULL for a task, and until Jira gives them); its
    # failed issues with their reasons are its `result`.
    Column("total_issues", Integer),
    Column("succeeded_issues", Integer),
    Column("failed_issues", Integer),
    Column("invalid_issues", Integer),
    # Polling: when, how often, and how it went.
    Column("next_poll_at", UTCDateTime),
    Column("poll_interval_s", Float),
    Column("polls", Integer, default=0, nullable=False),
    Column("first_seen_at", UTCDateTime),
    Column("last_seen_at", UTCDateTime),
    Column("last_change_at", UTCDateTime),
    Column("consecutive_errors", Integer, default=0, nullable=False),
    Column("not_found_count", Integer, default=0, nullable=False),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("last_error_transient", Boolean),
    Column("last_error_kind", String(16)),  # an ErrorKind; NULL for errors before schema 0004
    # Timeouts and cancellation. `timed_out` is the first limit that fired; `timeouts_fired`
    # every kind already reported (comma-separated), so each is reported once.
    Column("timed_out", String(8)),
    Column("timeouts_fired", String(40)),
    # A cancel decision: the intent is recorded first (requested_at/by/reason), then each
    # attempt is claimed (attempts + 1) before the POST; next_at is when the next attempt (or
    # the verdict "unconfirmed") is due; outcome closes the decision.
    Column("cancel_requested_at", UTCDateTime),
    Column("cancel_requested_by", String(16)),
    Column("cancel_reason", Text),
    Column("cancel_attempts", Integer, default=0, server_default="0", nullable=False),
    Column("cancel_sent_at", UTCDateTime),
    Column("cancel_next_at", UTCDateTime, index=True),
    Column("cancel_outcome", String(16)),
    Index(None, "state", "next_poll_at"),
)

# What Jira said about a task, written only when something changed.
#
# While nothing changes, `last_seen_at` of the newest snapshot moves instead: a task stuck at
# 37% for a day is one row.
SNAPSHOTS = Table(
    "snapshots",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_kind", String(8), nullable=False, server_default="task"),
    Column("task_id", String(64), nullable=False),
    Column("observed_at", UTCDateTime, index=True, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("status", String(40), nullable=False),
    Column("progress", Integer),
    Column("message", Text),
    Column("elapsed_runtime_ms", BigInteger),
    Column("jira_last_update_at", UTCDateTime),
    Column("total_issues", Integer),
    Column("succeeded_issues", Integer),
    Column("failed_issues", Integer),
    Column("invalid_issues", Integer),
    ForeignKeyConstraint(
        ["task_kind", "task_id"], ["tasks.kind", "tasks.task_id"], ondelete="CASCADE"
    ),
    # One task's history, newest first, straight from the index (no sort).
    Index(None, "task_kind", "task_id", "observed_at"),
)

# One step of a task's timeline: registered, status changed, finished, timed out, ...
EVENTS = Table(
    "events",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_kind", String(8), nullable=False, server_default="task"),
    Column("task_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(32), nullable=False),  # an EventKind
    Column("detail", Text),
    ForeignKeyConstraint(
        ["task_kind", "task_id"], ["tasks.kind", "tasks.task_id"], ondelete="CASCADE"
    ),
    Index(None, "task_kind", "task_id"),
)

# One row per daemon instance: is it alive, and what did its last tick do.
HEARTBEATS = Table(
    "heartbeats",
    METADATA,
    Column("instance", String(200), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("last_tick_at", UTCDateTime),
    Column("last_tick_polls", Integer, default=0, nullable=False),
    Column("next_poll_at", UTCDateTime),
    Column("stopped_at", UTCDateTime),
    Column("state_file", String(4096)),  # see monitor.statefile
)

# The notifications outbox (`monitor.notify`): one row per (event, channel), written in the
# same transaction as the event it announces, then delivered in the background. `key` is the
# delivery's idempotency key; `batch` the key of the message it goes out in (its own, or the
# first row's of a grouped message), set before the first attempt so that a retry after a
# crash sends the same message under the same key.
NOTIFICATIONS = Table(
    "notifications",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("event_id", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("event", String(40), nullable=False),
    Column("task_id", String(64)),
    Column("task_kind", String(8)),  # a TaskKind, with task_id
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # a DeliveryState
    Column("batch", String(64)),
    Column("attempts", Integer, default=0, server_default="0", nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    Index(None, "channel", "state", "next_attempt_at"),
)
