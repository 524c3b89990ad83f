"""definition_migration: running pathways moved to a newer version of their definition.

A new table only (models change additively); written out here, not imported from store.models.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "definition_migration",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("definition_id", sa.String(), nullable=False),
        sa.Column("from_versions", sa.JSON(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("step_map", sa.JSON(), nullable=False),
        sa.Column("basin_id", sa.String(), nullable=True),
        sa.Column("prepared_by", sa.String(), nullable=False),
        sa.Column("prepared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("confirmed_by", sa.String(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_definition_migration_definition_id", "definition_migration", ["definition_id"], unique=False)
    op.create_index("ix_definition_migration_status", "definition_migration", ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("definition_migration")
