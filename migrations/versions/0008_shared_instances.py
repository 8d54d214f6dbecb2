"""Several daemon instances on one database: shared state, instances' polls, `jsonb` results.

`shared_state` holds what instances share (a site-wide rate-limit pause, who runs retention);
each heartbeat row says how many polls its instance made in the last minute. On PostgreSQL a
task's `result` becomes `jsonb`; a stored value that is not JSON (one cut past its limit)
becomes a JSON string of its text. SQLite keeps TEXT.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TO_JSONB = """
CREATE OR REPLACE FUNCTION pg_temp.jtm_to_jsonb(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN to_jsonb(value);
END $$
"""


def upgrade() -> None:
    op.create_table(
        "shared_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("until_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_state")),
    )
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("polls_last_minute", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_TO_JSONB)
        op.execute(
            "ALTER TABLE tasks ALTER COLUMN result TYPE jsonb USING pg_temp.jtm_to_jsonb(result)"
        )
        # A temporary function lives as long as the connection, which the pool keeps.
        op.execute("DROP FUNCTION pg_temp.jtm_to_jsonb(text)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tasks ALTER COLUMN result TYPE text USING result::text")
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("polls_last_minute")
    op.drop_table("shared_state")
