"""Name the daemon's state file in its heartbeat row.

While the database cannot be written, the heartbeat row cannot say so; the daemon then keeps
its state in a small file (in its runtime directory), and `jtm status` finds it by this path.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 02:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_file", sa.String(length=4096), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("state_file")
