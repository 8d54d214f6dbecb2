"""Index one task's history by time: `jtm history ID` reads newest first without a sort.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:08:35.784059
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_task_id"))
        batch_op.create_index(
            batch_op.f("ix_snapshots_task_id_observed_at"), ["task_id", "observed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_task_id_observed_at"))
        batch_op.create_index(batch_op.f("ix_snapshots_task_id"), ["task_id"], unique=False)
