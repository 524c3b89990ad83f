"""pathway_started_index: every pathway newest first, so that the list of an organisation that
follows many pathways (a Département) walks them by start date and stops at its page
(store/views.py, WALK_FROM) instead of reading all of them: at a million pathways, seconds become
milliseconds (bench/million.py, « page GET /parcours »).

Additive only (one index). PostgreSQL builds it in one pass that blocks writes to the table
meanwhile (about a second at a million pathways): run it with the workers stopped, as every
revision (`parcours setup`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_pathway_started", "pathway", ["started_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pathway_started", table_name="pathway")
