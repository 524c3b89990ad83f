"""read_model_at_scale: indexes the list pages need at a million pathways (bench/million.py).

- ix_task_org_status_sla: an organisation's open tasks counted by deadline state (the inbox's
  counters) and counted under any of the inbox's filters (basin, definition, state), from the
  index alone instead of one table row per open task;
- ix_task_status_step: open tasks per step over the whole territory or one definition (the
  statistics), from the index alone (ix_task_basin_status_step needs a basin first);
- ix_pathway_basin_stuck: a basin's stuck pathways in the list's order (longest stuck first), so
  that a page reads its 25 rows instead of sorting every stuck pathway of the basin;
- on PostgreSQL, statistics on how a task's organisation, basin and definition go together: an
  organisation serves few basins and definitions, and without them the planner expects a filtered
  inbox (a Mission Locale's RSA tasks: none) to be found early in deadline order and reads the
  organisation's whole inbox before answering an empty page (0.1 to 0.2 s at a million pathways).

Additive only (three indexes, one statistics object); written out here, not imported from store.models. PostgreSQL
builds each one in a single pass that blocks writes to its table meanwhile (about ten seconds per
index at five million tasks, measured by bench/million.py): run it with the workers stopped, as
every revision (`parcours setup`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

STATISTICS = "st_task_org_basin_definition"

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_task_org_status_sla",
        "task",
        ["organisation_id", "status", "sla", "basin_id", "definition_id"],
        unique=False,
    )
    op.create_index(
        "ix_task_status_step",
        "task",
        ["status", "definition_id", "step_id", "sla"],
        unique=False,
    )
    op.create_index(
        "ix_pathway_basin_stuck",
        "pathway",
        ["basin_id", "stuck_since", "last_progress_at", "id"],
        unique=False,
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (dependencies, mcv) "
            "ON organisation_id, basin_id, definition_id FROM task"
        )
        op.execute("ANALYZE task")  # the statistics exist once the table is analysed


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    op.drop_index("ix_pathway_basin_stuck", table_name="pathway")
    op.drop_index("ix_task_status_step", table_name="task")
    op.drop_index("ix_task_org_status_sla", table_name="task")
