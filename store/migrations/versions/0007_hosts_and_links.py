"""hosts_and_links: the directory of host structures for immersions (PMSMP), their offers, and
one-time links for people without an account (a host completing its entry).

Additive only (three new tables); written out here, not imported from store.models.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("basin_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("siret", sa.String(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("trades", sa.JSON(), nullable=False),
        sa.Column("accessibility", sa.Text(), nullable=False),
        sa.Column("contact_name", sa.String(), nullable=False),
        sa.Column("contact_email", sa.String(), nullable=False),
        sa.Column("contact_phone", sa.String(), nullable=False),
        sa.Column("tutors", sa.JSON(), nullable=False),
        sa.Column("added_by_org", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_host_basin_id", "host", ["basin_id"], unique=False)
    op.create_index("ix_host_siret", "host", ["siret"], unique=False)
    op.create_index("ux_host_basin_siret", "host", ["basin_id", "siret"], unique=True)
    op.create_table(
        "immersion_offer",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("host_id", sa.String(), nullable=False),
        sa.Column("trade", sa.String(), nullable=False),
        sa.Column("places", sa.Integer(), nullable=False),
        sa.Column("periods", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_text", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_immersion_offer_host_id", "immersion_offer", ["host_id"], unique=False)
    op.create_table(
        "access_link",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("subject_id", sa.String(), nullable=False),
        sa.Column("sent_to", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_access_link_subject_id", "access_link", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_table("access_link")
    op.drop_table("immersion_offer")
    op.drop_table("host")
