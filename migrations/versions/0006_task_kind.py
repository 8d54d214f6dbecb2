"""A task has a kind, part of its identity: `task` (`/task/{id}`) or `bulk` (`/bulk/queue/{id}`).

The key of `tasks` becomes (kind, task_id), and snapshots and events name their task by both.
Every existing task is of kind `task`. Bulk operations also get their per-issue counts, on the
task and on each snapshot.

SQLite's foreign keys are on (and cannot be turned off inside the migration's transaction),
and batch mode recreates a table by dropping it: dropping `tasks` while snapshots and events
still refer to it would delete them by cascade. So the children first lose their foreign key,
then `tasks` is recreated, then the children get the new two-column key.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("total_issues", "succeeded_issues", "failed_issues", "invalid_issues")


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("fk_events_task_id_tasks", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_events_task_id"))
        batch_op.add_column(
            sa.Column("task_kind", sa.String(length=8), nullable=False, server_default="task")
        )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_constraint("fk_snapshots_task_id_tasks", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_snapshots_task_id_observed_at"))
        batch_op.add_column(
            sa.Column("task_kind", sa.String(length=8), nullable=False, server_default="task")
        )
        for name in _COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="task")
        )
        for name in _COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch_op.drop_constraint("pk_tasks", type_="primary")
        batch_op.create_primary_key("pk_tasks", ["kind", "task_id"])

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_events_task_kind_tasks"),
            "tasks",
            ["task_kind", "task_id"],
            ["kind", "task_id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_events_task_kind_task_id"), ["task_kind", "task_id"], unique=False
        )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_snapshots_task_kind_tasks"),
            "tasks",
            ["task_kind", "task_id"],
            ["kind", "task_id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_snapshots_task_kind_task_id_observed_at"),
            ["task_kind", "task_id", "observed_at"],
            unique=False,
        )


def downgrade() -> None:
    # Bulk operations have no place in the older schema: they go, with their history.
    op.execute("DELETE FROM tasks WHERE kind != 'task'")
    for table, count_columns in (("events", ()), ("snapshots", _COUNTS)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_task_kind_tasks", type_="foreignkey")
            batch_op.drop_index(
                batch_op.f(
                    "ix_events_task_kind_task_id"
                    if table == "events"
                    else "ix_snapshots_task_kind_task_id_observed_at"
                )
            )
            batch_op.drop_column("task_kind")
            for name in count_columns:
                batch_op.drop_column(name)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint("pk_tasks", type_="primary")
        batch_op.create_primary_key("pk_tasks", ["task_id"])
        for name in _COUNTS:
            batch_op.drop_column(name)
        batch_op.drop_column("kind")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_events_task_id_tasks"),
            "tasks",
            ["task_id"],
            ["task_id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_events_task_id"), ["task_id"], unique=False)
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_snapshots_task_id_tasks"),
            "tasks",
            ["task_id"],
            ["task_id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_snapshots_task_id_observed_at"), ["task_id", "observed_at"], unique=False
        )
