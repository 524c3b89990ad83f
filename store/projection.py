"""Apply a workflow's ProjectionBatch to the read model, idempotently: one transaction of
dialect upserts (INSERT … ON CONFLICT) keyed by the workflow's own ids; a late, older batch never
overwrites a newer pathway row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from store import models
from workflows.contract import ProjectionBatch


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _upsert(
    connection: Connection,
    model: Any,
    rows: list[dict[str, Any]],
    *,
    keys: list[str],
    update_where: Any = None,
    ignore: bool = False,
) -> None:
    if not rows:
        return
    table = _table(model)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # The rows go to execute() (executemany), not into the statement: a statement without values
    # is compiled once and cached by SQLAlchemy; one with them was compiled on every write (a
    # tenth of the worker's CPU in bench/engine.py's profile).
    statement = dialect.insert(table)
    if ignore:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    else:
        columns = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
        statement = statement.on_conflict_do_update(index_elements=keys, set_=columns, where=update_where)
    connection.execute(statement, rows)


def apply_batch_in(connection: Connection, batch: ProjectionBatch) -> None:
    """Apply within the caller's transaction."""
    row = batch.pathway
    pathway = _table(models.Pathway)
    _upsert(
        connection,
        models.Pathway,
        [
            {
                "id": row.id,
                "definition_id": row.definition_id,
                "definition_version": row.definition_version,
                "basin_id": row.basin_id,
                "referent_org": row.referent_org,
                "person_id": row.person_ref,
                "status": row.status,
                "current_steps": row.current_steps,
                "sla": row.sla,
                "stuck_since": row.stuck_since,
                "started_at": row.started_at,
                "updated_at": row.updated_at,
                "last_progress_at": row.last_progress_at,
                "closed_at": row.closed_at,
                "exit_reason": row.exit_reason,
                "revision": row.revision,
            }
        ],
        keys=["id"],
        update_where=pathway.c.revision <= row.revision,
    )
    _upsert(
        connection,
        models.FollowUpMember,
        [
            {"pathway_id": row.id, "organisation_id": organisation_id, "since": row.updated_at, "until": None}
            for organisation_id in row.organisations
        ],
        keys=["pathway_id", "organisation_id"],
        ignore=True,
    )
    if row.status == "closed":
        members = _table(models.FollowUpMember)
        connection.execute(
            update(members)
            .where(and_(members.c.pathway_id == row.id, members.c.until.is_(None)))
            .values(until=row.closed_at)
        )
    moved_away = _organisations_losing_a_task(connection, batch)
    items = [r.item for r in batch.items]
    _upsert(
        connection,
        models.PathwayStep,
        [
            {
                "id": i.id,
                "pathway_id": row.id,
                "step_id": i.step_id,
                "title": i.title,
                "kind": i.kind,
                "track": i.track,
                "status": i.status,
                "opened_at": i.opened_at,
                "closed_at": i.closed_at,
                "outcome": i.outcome,
            }
            for i in items
        ],
        keys=["id"],
    )
    _upsert(
        connection,
        models.Task,
        [
            {
                "id": r.item.id,
                "pathway_id": row.id,
                "step_id": r.item.step_id,
                "title": r.item.title,
                "definition_id": row.definition_id,
                "basin_id": row.basin_id,
                "organisation_id": r.item.organisation_id,
                "status": r.item.status,
                "sla": r.sla,
                "due_at": r.item.due_at,
                "opened_at": r.item.opened_at,
                "closed_at": r.item.closed_at,
                "generation": r.item.generation,
                "escalation_level": r.item.escalation_level,
                "outcome": r.item.outcome,
                "submission_id": r.item.submission_id,
            }
            for r in batch.items
            if r.item.kind == "task"
        ],
        keys=["id"],
    )
    if row.status != "closed":
        _update_follow_up(connection, batch, moved_away)
    _upsert(
        connection,
        models.Escalation,
        [
            {
                "id": e.id,
                "pathway_id": row.id,
                "task_id": e.item_id,
                "step_id": e.step_id,
                "basin_id": row.basin_id,
                "level": e.level,
                "to": e.to,
                "status": e.status,
                "opened_at": e.opened_at,
                "decided_at": e.decided_at,
                "decided_by": e.decided_by,
                "action": e.action,
                "note_id": e.note_id,
            }
            for e in batch.escalations
        ],
        keys=["id"],
    )
    _upsert(
        connection,
        models.AuditEvent,
        [
            {
                "id": a.id,
                "at": a.at,
                "pathway_id": a.pathway_id,
                "actor_user_id": a.actor.user_id,
                "actor_org_id": a.actor.organisation_id,
                "action": a.action,
                "task_id": a.item_id,
                "detail": a.detail,
            }
            for a in batch.audit
        ],
        keys=["id"],
        ignore=True,
    )


def _organisations_losing_a_task(connection: Connection, batch: ProjectionBatch) -> set[str]:
    """The organisations that held, before this batch, a task the batch gives to another one
    (a reassignment), read before the tasks are upserted."""
    assigned = {r.item.id: r.item.organisation_id for r in batch.items if r.item.kind == "task"}
    if not assigned:
        return set()
    tasks = _table(models.Task)
    held = connection.execute(select(tasks.c.id, tasks.c.organisation_id).where(tasks.c.id.in_(list(assigned)))).all()
    return {organisation for task_id, organisation in held if organisation != assigned[task_id]}


def _update_follow_up(connection: Connection, batch: ProjectionBatch, moved_away: set[str]) -> None:
    """An organisation whose last open task moved to another one leaves the follow-up group
    (`until`); one given an open task again rejoins it. The referent organisation always stays."""
    row = batch.pathway
    members, tasks = _table(models.FollowUpMember), _table(models.Task)
    for organisation_id in sorted(moved_away - {row.referent_org}):
        still_open = connection.execute(
            select(func.count())
            .select_from(tasks)
            .where(
                tasks.c.pathway_id == row.id,
                tasks.c.organisation_id == organisation_id,
                tasks.c.status == "open",
            )
        ).scalar_one()
        if not still_open:
            connection.execute(
                update(members)
                .where(
                    members.c.pathway_id == row.id,
                    members.c.organisation_id == organisation_id,
                    members.c.until.is_(None),
                )
                .values(until=row.updated_at)
            )
    holders = {
        r.item.organisation_id
        for r in batch.items
        if r.item.kind == "task" and r.item.status == "open" and r.item.organisation_id
    }
    if holders:
        connection.execute(
            update(members)
            .where(
                members.c.pathway_id == row.id,
                members.c.organisation_id.in_(sorted(holders)),
                members.c.until.is_not(None),
            )
            .values(since=row.updated_at, until=None)
        )
