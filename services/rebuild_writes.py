"""Rebuild the read model of one running pathway from what Temporal holds: its input (definition
snapshot, basin, referent, person ref) and its state (open items, open escalations, follow-up
group). A pure function builds the same ProjectionBatch the workflow's commit writes; the write
upserts it with the definition version and a placeholder person if they are missing. Never deletes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from definitions.loader import content_hash
from store import models
from store.projection import apply_batch_in
from workflows.contract import ItemRow, ProjectionBatch
from workflows.model import PathwayInput, PathwayState
from workflows.projection import pathway_row

PUBLISHED_BY = "rebuild"
PLACEHOLDER_FIRST_NAME = "Personne"
PLACEHOLDER_LAST_NAME = "à ré-identifier"


class Superseded(Exception):
    """The workflow committed a newer revision while we rebuilt: query its state again."""


@dataclass
class Written:
    """What one pathway's rebuild wrote (counts) and what it found stale."""

    tasks: int = 0
    escalations: int = 0
    definition_restored: bool = False
    person_placeholder: bool = False
    stale_tasks: list[str] = field(default_factory=list)


def projection_for(input: PathwayInput, state: PathwayState, *, now: datetime) -> ProjectionBatch:
    """The batch `PathwayWorkflow._commit` would write if every open item had changed. SLA states
    are computed at `now`, or when the clocks stopped for a paused pathway."""
    clock = state.paused_since or now
    row = pathway_row(input, state, now=now, at=clock)
    return ProjectionBatch(
        pathway=row,
        items=[
            ItemRow(pathway_id=row.id, item=i, sla=i.sla(clock) if i.kind == "task" and i.status == "open" else None)
            for i in sorted(state.items.values(), key=lambda i: i.id)
        ],
        escalations=[state.escalations[e] for e in sorted(state.escalations)],
    )


def definition_source(input: PathwayInput) -> str:
    """The snapshot as YAML (the original text is lost with the database)."""
    body = input.definition.model_dump(mode="json", exclude_none=True)
    return "# Reconstituée depuis Temporal par `parcours rebuild`.\n" + yaml.safe_dump(
        body, allow_unicode=True, sort_keys=False
    )


def has_data(engine: Engine) -> bool:
    """Whether the read model already holds a pathway or a task."""
    with engine.connect() as connection:
        for model in (models.Pathway, models.Task):
            if connection.execute(select(func.count()).select_from(_table(model))).scalar_one():
                return True
    return False


def write_pathway(engine: Engine, input: PathwayInput, state: PathwayState, *, now: datetime) -> Written:
    """Upsert one pathway's rows in one transaction. Raises Superseded (nothing written) if the
    workflow committed a newer revision meanwhile."""
    batch = projection_for(input, state, now=now)
    written = Written(
        tasks=sum(1 for r in batch.items if r.item.kind == "task"),
        escalations=sum(1 for e in batch.escalations if e.status == "open"),
    )
    with engine.begin() as connection:
        written.definition_restored = _restore_definition(connection, input, now=now)
        written.person_placeholder = _placeholder_person(connection, input.person_ref, now=now)
        _follow_up(connection, input, state)
        apply_batch_in(connection, batch)
        pathway, task = _table(models.Pathway), _table(models.Task)
        revision = connection.execute(select(pathway.c.revision).where(pathway.c.id == input.pathway_id)).scalar_one()
        if revision > state.revision:
            raise Superseded(input.pathway_id)
        open_rows = connection.execute(
            select(task.c.id).where(task.c.pathway_id == input.pathway_id, task.c.status == "open")
        ).scalars()
        written.stale_tasks = sorted(set(open_rows) - set(state.items))
    return written


# --- Helpers ---------------------------------------------------------------------------------


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _insert_missing(connection: Connection, model: Any, row: dict[str, Any], *, keys: list[str]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True if the row was new."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_table(model)).values(row).on_conflict_do_nothing(index_elements=keys)
    return bool(connection.execute(statement).rowcount)


def _restore_definition(connection: Connection, input: PathwayInput, *, now: datetime) -> bool:
    definition = input.definition
    return _insert_missing(
        connection,
        models.DefinitionVersion,
        {
            "id": definition.id,
            "version": definition.version or 0,
            "title": definition.title,
            "status": definition.status,
            "basins": list(definition.basins),
            "content_hash": content_hash(definition),
            "body": definition.model_dump(mode="json"),
            "source": definition_source(input),
            "published_at": now,
            "published_by": PUBLISHED_BY,
        },
        keys=["id", "version"],
    )


def _placeholder_person(connection: Connection, person_ref: str, *, now: datetime) -> bool:
    """Only the opaque id survives in Temporal: a row without personal data, so pages work."""
    return _insert_missing(
        connection,
        models.Person,
        {"id": person_ref, "first_name": PLACEHOLDER_FIRST_NAME, "last_name": PLACEHOLDER_LAST_NAME, "created_at": now},
        keys=["id"],
    )


def _follow_up(connection: Connection, input: PathwayInput, state: PathwayState) -> None:
    """Follow-up members with the earliest date Temporal still shows (the start for the referent,
    the oldest open task otherwise); apply_batch_in then keeps these rows."""
    for organisation_id in state.follow_up:
        opened = [i.opened_at for i in state.items.values() if i.organisation_id == organisation_id]
        since = state.started_at if organisation_id == input.referent_org or not opened else min(opened)
        _insert_missing(
            connection,
            models.FollowUpMember,
            {"pathway_id": input.pathway_id, "organisation_id": organisation_id, "since": since, "until": None},
            keys=["pathway_id", "organisation_id"],
        )
