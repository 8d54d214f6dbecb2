"""Cancel lifecycle: two-phase cancel bookkeeping and the timeouts already reported.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:39:42.591251
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timeouts_fired", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("cancel_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("cancel_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancel_next_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancel_outcome", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_tasks_cancel_next_at"), ["cancel_next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_cancel_next_at"))
        batch_op.drop_column("cancel_outcome")
        batch_op.drop_column("cancel_next_at")
        batch_op.drop_column("cancel_sent_at")
        batch_op.drop_column("cancel_attempts")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("timeouts_fired")
