"""`jtm db copy`: a database copied whole into another, typically SQLite into PostgreSQL.

Every task, snapshot and event, and the notifications outbox (what was sent, what is still to
send), goes across with its ID, in one write transaction on the
target: a copy that fails leaves the target as empty as it was. The source is read in one
transaction too (REPEATABLE READ on PostgreSQL), so a daemon writing meanwhile cannot make
the copy see an event whose task it has not. Heartbeats and the shared state are not copied:
they belong to the daemons of the source, not to the history.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, Table, func, insert, select, text

from monitor.database import describe_url, transaction
from monitor.errors import OperationFailed
from monitor.schema import EVENTS, NOTIFICATIONS, SNAPSHOTS, TASKS

COPIED: tuple[Table, ...] = (TASKS, SNAPSHOTS, EVENTS, NOTIFICATIONS)
"""In the order their foreign keys need."""

BATCH = 1000


def copy_database(source: Engine, target: Engine) -> dict[str, int]:
    """Copy every row of `COPIED` from `source` into `target`, both at the current schema;
    returns the rows copied per table. Refuses a target that already holds tasks."""
    copied: dict[str, int] = {}
    with transaction(source) as reader, transaction(target, write=True) as writer:
        if reader.dialect.name == "postgresql":
            reader.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        held = writer.scalar(select(func.count()).select_from(TASKS))
        if held:
            raise OperationFailed(
                f"{describe_url(str(target.url))} already holds {held} task(s): "
                "copy into a new, empty database"
            )
        for table in COPIED:
            copied[table.name] = _copy_table(reader, writer, table)
        if writer.dialect.name == "postgresql":
            for table in (SNAPSHOTS, EVENTS, NOTIFICATIONS):
                _restart_sequence(writer, table)
    return copied


def _copy_table(reader: Connection, writer: Connection, table: Table) -> int:
    key = next(iter(table.primary_key.columns))
    rows = reader.execution_options(yield_per=BATCH).execute(select(table).order_by(key))
    count = 0
    for batch in rows.partitions():
        writer.execute(insert(table), [row._asdict() for row in batch])
        count += len(batch)
    return count


def _restart_sequence(writer: Connection, table: Table) -> None:
    """Make PostgreSQL's ID sequence of `table` carry on after the IDs copied into it."""
    writer.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"
        )
    )
