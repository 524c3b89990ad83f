"""outbox_relay: e-mails leave through a relay in every worker process, out of the workflow's
path. The relay claims pending rows with a lease (`claimed_until`, `claim_token`) and retries
SMTP failures with a backoff (`next_attempt_at`); the index serves its claim query.

Additive only (nullable columns, one index); written out here, not imported from store.models.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notification", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notification", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notification", sa.Column("claim_token", sa.String(), nullable=True))
    op.create_index("ix_notification_relay", "notification", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_notification_relay", table_name="notification")
    with op.batch_alter_table("notification") as batch:
        batch.drop_column("claim_token")
        batch.drop_column("claimed_until")
        batch.drop_column("next_attempt_at")
