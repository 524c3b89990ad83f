"""evaluation_facts: the evaluation's counts per definition, version, basin and month of start,
computed again from the read model by `evaluation_facts.refresh`, and the calendar of working days
the database counts delays with (services/evaluation_facts.py).

Additive only (two new tables, filled by the first refresh); written out here, not imported from
store.models.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "working_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "evaluation_fact",
        sa.Column("definition_id", sa.String(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("basin_id", sa.String(), nullable=False),
        sa.Column("start_month", sa.String(), nullable=False),
        sa.Column("measure", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "definition_id", "definition_version", "basin_id", "start_month", "measure", "key", "value"
        ),
    )
    op.create_index(
        "ix_evaluation_fact_cohort", "evaluation_fact", ["definition_id", "basin_id", "start_month"], unique=False
    )


def downgrade() -> None:
    op.drop_table("evaluation_fact")
    op.drop_table("working_day")
