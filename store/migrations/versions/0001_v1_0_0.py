"""v1.0.0: the read model exactly as release 1.0.0 created it with `SQLModel.metadata.create_all`.

Written out table by table (not imported from store.models) so that later model changes never
alter it; a database made by release 1.0.0 is stamped at this revision, not re-created.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=False)


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=False)


def _long(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False)


def _indexes(table: str, *columns: str) -> None:
    """The single-column indexes SQLModel names ix_<table>_<column>."""
    for column in columns:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        _id(),
        _when("at"),
        _text("pathway_id", nullable=True),
        _text("actor_user_id"),
        _text("actor_org_id"),
        _text("action"),
        _text("task_id", nullable=True),
        _json("detail"),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("audit_event", "at", "pathway_id")

    op.create_table(
        "basin",
        _id(),
        _text("name"),
        _text("gto_email"),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "captured_email",
        sa.Column("id", sa.Integer(), nullable=False),  # SERIAL on PostgreSQL, rowid on SQLite
        _when("received_at"),
        _text("mail_from"),
        _json("recipients"),
        _text("subject"),
        _long("body"),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "definition",
        _id(),
        _int("version"),
        _text("title"),
        _text("status"),
        _json("basins"),
        _text("content_hash"),
        _json("body"),
        _long("source"),
        _when("published_at"),
        _text("published_by", nullable=True),
        sa.PrimaryKeyConstraint("id", "version"),
    )
    _indexes("definition", "content_hash")

    op.create_table(
        "escalation",
        _id(),
        _text("pathway_id"),
        _text("task_id"),
        _text("step_id"),
        _text("basin_id"),
        _int("level"),
        _text("to"),
        _text("status"),
        _when("opened_at"),
        _when("decided_at"),
        _text("decided_by", nullable=True),
        _text("action", nullable=True),
        _text("note_id", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("escalation", "basin_id", "pathway_id", "status")
    op.create_index("ix_escalation_basin_opened", "escalation", ["basin_id", "opened_at"], unique=False)
    op.create_index("ix_escalation_basin_status", "escalation", ["basin_id", "status", "opened_at"], unique=False)

    op.create_table(
        "follow_up_member",
        _id("pathway_id"),
        _id("organisation_id"),
        _when("since"),
        _when("until"),
        sa.PrimaryKeyConstraint("pathway_id", "organisation_id"),
    )
    _indexes("follow_up_member", "organisation_id")

    op.create_table(
        "login_token",
        _id("token_hash"),
        _text("user_id"),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    _indexes("login_token", "user_id")

    op.create_table(
        "note",
        _id(),
        _text("pathway_id", nullable=True),
        _text("author_user_id"),
        _long("text"),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("note", "pathway_id")

    op.create_table(
        "notification",
        _id("key"),
        _text("kind"),
        _text("pathway_id"),
        _text("task_id"),
        _json("recipients"),
        _text("subject"),
        _long("body"),
        _text("status"),
        _int("attempts"),
        _text("last_error", nullable=True),
        _when("created_at"),
        _when("sent_at"),
        sa.PrimaryKeyConstraint("key"),
    )
    _indexes("notification", "pathway_id")

    op.create_table(
        "organisation",
        _id(),
        _text("name"),
        _text("type"),
        _text("email"),
        _json("basins"),
        _int("retention_days"),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("organisation", "type")

    op.create_table(
        "pathway",
        _id(),
        _text("definition_id"),
        _int("definition_version"),
        _text("basin_id"),
        _text("referent_org"),
        _text("person_id"),
        _text("status"),
        _json("current_steps"),
        _text("sla", nullable=True),
        _when("stuck_since"),
        _when("started_at"),
        _when("updated_at"),
        _when("last_progress_at"),
        _when("closed_at"),
        _text("exit_reason", nullable=True),
        _int("revision"),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes(
        "pathway",
        "basin_id",
        "definition_id",
        "last_progress_at",
        "person_id",
        "referent_org",
        "sla",
        "status",
        "stuck_since",
    )
    op.create_index("ix_pathway_basin_closed", "pathway", ["basin_id", "closed_at"], unique=False)
    op.create_index("ix_pathway_basin_started", "pathway", ["basin_id", "started_at"], unique=False)
    op.create_index(
        "ix_pathway_basin_status_sla", "pathway", ["basin_id", "status", "sla", "last_progress_at"], unique=False
    )

    op.create_table(
        "pathway_step",
        _id(),
        _text("pathway_id"),
        _text("step_id"),
        _text("title"),
        _text("kind"),
        _text("track"),
        _text("status"),
        _when("opened_at"),
        _when("closed_at"),
        _text("outcome", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("pathway_step", "pathway_id")

    op.create_table(
        "person",
        _id(),
        _text("first_name"),
        _text("last_name"),
        sa.Column("birth_date", sa.Date(), nullable=True),
        _text("email", nullable=True),
        _text("phone", nullable=True),
        _text("nir", nullable=True),
        _text("france_travail_id", nullable=True),
        _when("consent_at"),
        _text("consent_by", nullable=True),
        _when("created_at"),
        _when("anonymised_at"),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "setting",
        _id("key"),
        _text("value"),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "submission",
        _id(),
        _text("pathway_id"),
        _text("task_id"),
        _json("data"),
        _text("submitted_by"),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("submission", "pathway_id", "task_id")

    op.create_table(
        "task",
        _id(),
        _text("pathway_id"),
        _text("step_id"),
        _text("title"),
        _text("definition_id"),
        _text("basin_id"),
        _text("organisation_id"),
        _text("status"),
        _text("sla", nullable=True),
        _when("due_at"),
        _when("opened_at"),
        _when("closed_at"),
        _int("generation"),
        _int("escalation_level"),
        _text("outcome", nullable=True),
        _text("submission_id", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("task", "basin_id", "definition_id", "due_at", "organisation_id", "pathway_id")
    op.create_index(
        "ix_task_basin_status_step", "task", ["basin_id", "status", "definition_id", "step_id", "sla"], unique=False
    )
    op.create_index("ix_task_org_status_due", "task", ["organisation_id", "status", "due_at"], unique=False)
    op.create_index("ix_task_pathway_status", "task", ["pathway_id", "status"], unique=False)

    op.create_table(
        "user",
        _id(),
        _text("email"),
        _text("name"),
        _text("organisation_id"),
        _text("role"),
        _text("basin_id", nullable=True),
        _text("password_hash", nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["basin_id"], ["basin.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_email", "user", ["email"], unique=True)
    _indexes("user", "organisation_id")


def downgrade() -> None:
    for table in (
        "user",
        "task",
        "submission",
        "setting",
        "person",
        "pathway_step",
        "pathway",
        "organisation",
        "notification",
        "note",
        "login_token",
        "follow_up_member",
        "escalation",
        "definition",
        "captured_email",
        "basin",
        "audit_event",
    ):
        op.drop_table(table)  # its indexes go with it
