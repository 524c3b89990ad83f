"""immersion_bilan: an immersion's link to the pathway's immersion step (the task its tutor's
bilan completes) and the bilan itself.

Additive only (two nullable columns).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("immersion") as batch:
        batch.add_column(sa.Column("task_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("bilan", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("immersion") as batch:
        batch.drop_column("bilan")
        batch.drop_column("task_id")
