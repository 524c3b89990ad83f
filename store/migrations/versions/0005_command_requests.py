"""command_requests: the request log that makes writes idempotent. A write sent with a request id
(Idempotency-Key, form token, --request-id) is recorded per user with a fingerprint of its inputs
and, once done, its answer; a retry gets that answer (services/requests.py).

Additive only (one new table); written out here, not imported from store.models.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "command_request",
        sa.Column("actor_user_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("pathway_id", sa.String(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("actor_user_id", "request_id"),
    )
    op.create_index("ix_command_request_created_at", "command_request", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("command_request")
