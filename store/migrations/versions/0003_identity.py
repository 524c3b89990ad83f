"""identity: a per-user session version (revocable sessions and API tokens) and the sign-in
attempts every UI process counts for its rate limits.

Additive only; written out here, not imported from store.models.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user", sa.Column("session_version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "sign_in_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_attempt_key", "sign_in_attempt", ["key"], unique=False)
    op.create_index("ix_sign_in_attempt_at", "sign_in_attempt", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("sign_in_attempt")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("session_version")
