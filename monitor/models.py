"""The database schema as SQLAlchemy models.

The schema itself is created only by the Alembic migrations in `migrations/`; these models
describe it for queries, and a test proves that the two agree. Column names are chosen to be
read by a person with `sqlite3`: times are UTC, stored as ISO 8601 text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend stores."""

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Task(Base):
    """One registered Jira task: its registration, its latest known state, its schedule."""

    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Per-task limits in seconds; NULL means "use [timeouts] from the config".
    limit_total_s: Mapped[float | None] = mapped_column(Float)
    limit_queued_s: Mapped[float | None] = mapped_column(Float)
    limit_run_s: Mapped[float | None] = mapped_column(Float)
    limit_stall_s: Mapped[float | None] = mapped_column(Float)
    timeout_action: Mapped[str | None] = mapped_column(String(8))

    # Jira's latest answer. Its clocks are kept as Jira sent them.
    status: Mapped[str | None] = mapped_column(String(40))
    progress: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    elapsed_runtime_ms: Mapped[int | None] = mapped_column(BigInteger)
    jira_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    jira_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    jira_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    jira_last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Polling: when, how often, and how it went.
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    poll_interval_s: Mapped[float | None] = mapped_column(Float)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    not_found_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_transient: Mapped[bool | None] = mapped_column(Boolean)

    # Timeouts and cancellation. `timed_out` is the first limit that fired; `timeouts_fired`
    # every kind already reported (comma-separated), so each is reported once.
    timed_out: Mapped[str | None] = mapped_column(String(8))
    timeouts_fired: Mapped[str | None] = mapped_column(String(40))
    # A cancel decision: the intent is recorded first (requested_at/by/reason), then each
    # attempt is claimed (attempts + 1) before the POST; next_at is when the next attempt (or
    # the verdict "unconfirmed") is due; outcome closes the decision.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(16))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancel_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancel_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    cancel_outcome: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index(None, "state", "next_poll_at"),)


class Snapshot(Base):
    """What Jira said about a task, written only when something changed.

    While nothing changes, `last_seen_at` of the newest snapshot moves instead: a task stuck at
    37% for a day is one row.
    """

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tasks.task_id", ondelete="CASCADE")
    )
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(40))
    progress: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    elapsed_runtime_ms: Mapped[int | None] = mapped_column(BigInteger)
    jira_last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # One task's history, newest first, straight from the index (no sort).
    __table_args__ = (Index(None, "task_id", "observed_at"),)


class Event(Base):
    """One step of a task's timeline: registered, status changed, finished, timed out, ..."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tasks.task_id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


class Heartbeat(Base):
    """One row per daemon instance: is it alive, and what did its last tick do."""

    __tablename__ = "heartbeats"

    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_tick_polls: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
