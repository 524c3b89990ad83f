"""exchange_session_revision: how many times a session was changed after its creation (the
iCalendar SEQUENCE of its event), since sessions can be corrected (services/exchanges.change).

Additive only (one column, 0 for the sessions already planned).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_session") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("exchange_session") as batch:
        batch.drop_column("revision")
