"""partner_directory: what each partner organisation offers (services, publics, conditions of
access, contacts), kept by the organisation itself (services/partners.py).

Additive only (one new table).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organisation_profile",
        sa.Column("organisation_id", sa.String(), nullable=False),
        sa.Column("offer", sa.Text(), nullable=False),
        sa.Column("publics", sa.Text(), nullable=False),
        sa.Column("access_conditions", sa.Text(), nullable=False),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("organisation_id"),
    )


def downgrade() -> None:
    op.drop_table("organisation_profile")
