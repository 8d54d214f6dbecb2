"""Store the kind of a task's last error, so that `jtm status` need not read it from the text.

Rows whose last poll failed before this revision keep a NULL kind until their next poll;
readers classify those from the text, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 22:46:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_error_kind", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("last_error_kind")
