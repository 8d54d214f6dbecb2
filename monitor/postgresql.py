"""What is PostgreSQL's own: its driver, and its advisory locks.

PostgreSQL is the store for several daemon instances sharing one database (`monitor.sharing`);
everything else about it is portable SQLAlchemy Core. The driver (psycopg 3) is an optional
extra, `pip install 'jira-task-monitor[postgresql]'`: a URL naming PostgreSQL without it is
refused with that advice, not with an import traceback.

Advisory locks take a 64-bit key; jtm's keys are fixed here, so that no two uses collide.
"""

from __future__ import annotations

import importlib.util

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from monitor.errors import StoreError

MIGRATION_LOCK = 0x6A746D_0001
"""The advisory lock held by the transaction that migrates the schema ("jtm" 1)."""

NOTIFY_LOCKS = 0x6A746D02
"""The class of the advisory locks a channel's sender holds while it sends ("jtm" 2): the
two-key form, the second key a hash of the channel's name."""

EXTRA_HINT = "pip install 'jira-task-monitor[postgresql]'"


def is_postgresql(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def require_driver(url: URL) -> None:
    """Refuse a PostgreSQL URL whose driver is not installed, or is not psycopg 3."""
    driver = url.get_driver_name()
    if driver != "psycopg":
        raise StoreError(
            f"database.url names the PostgreSQL driver {driver!r}: jtm uses psycopg 3, "
            "write the URL as postgresql+psycopg://USER@HOST/DATABASE"
        )
    if importlib.util.find_spec("psycopg") is None:
        raise StoreError(
            f"database.url names PostgreSQL, but its driver is not installed: {EXTRA_HINT}"
        )


def migration_lock(conn: Connection) -> None:
    """Wait for the migration lock, held until `conn`'s transaction ends.

    Instances started together would otherwise each find the schema old and run the same
    migration at once; with the lock, the second waits, then finds the schema current (its
    reads in READ COMMITTED see what the first committed) and has nothing to do.
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def try_channel_lock(conn: Connection, channel: str) -> bool:
    """Take the session lock of `channel`'s sender on `conn` if no other session holds it.

    Held until `release_channel_lock` or the session's end: an instance that dies mid-send
    frees the channel at once for the others, which re-send its claimed batch.
    """
    taken = conn.scalar(
        text("SELECT pg_try_advisory_lock(:cls, hashtext(:channel))"),
        {"cls": NOTIFY_LOCKS, "channel": channel},
    )
    return bool(taken)


def release_channel_lock(conn: Connection, channel: str) -> None:
    conn.execute(
        text("SELECT pg_advisory_unlock(:cls, hashtext(:channel))"),
        {"cls": NOTIFY_LOCKS, "channel": channel},
    )
