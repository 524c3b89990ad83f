"""immersions: the immersions (PMSMP) of people with hosts, their conventions and the parties'
signatures (services/immersions.py).

Additive only (two new tables); written out here, not imported from store.models.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "immersion",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("pathway_id", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("host_id", sa.String(), nullable=False),
        sa.Column("host_siret", sa.String(), nullable=False),
        sa.Column("prescriber_org", sa.String(), nullable=False),
        sa.Column("prescriber_user", sa.String(), nullable=False),
        sa.Column("accompanying_org", sa.String(), nullable=True),
        sa.Column("renewal_of", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("weekly_hours", sa.Integer(), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("convention", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_immersion_pathway_id", "immersion", ["pathway_id"], unique=False)
    op.create_index("ix_immersion_person_id", "immersion", ["person_id"], unique=False)
    op.create_index("ix_immersion_host_id", "immersion", ["host_id"], unique=False)
    op.create_table(
        "immersion_signature",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("immersion_id", sa.String(), nullable=False),
        sa.Column("party", sa.String(), nullable=False),
        sa.Column("signer_name", sa.String(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("document_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_immersion_signature_immersion_id", "immersion_signature", ["immersion_id"], unique=False)


def downgrade() -> None:
    op.drop_table("immersion_signature")
    op.drop_table("immersion")
