"""Apply a workflow's ProjectionBatch to the read model, idempotently (upserts keyed by the
workflow's own ids; a late, older batch never overwrites a newer pathway row)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store import models
from store.db import session_scope
from workflows.model import ProjectionBatch


def apply_batch(engine: Engine, batch: ProjectionBatch) -> None:
    with session_scope(engine) as session:
        _apply_pathway(session, batch)
        for row in batch.items:
            item = row.item
            session.merge(models.PathwayStep(
                id=item.id, pathway_id=row.pathway_id, step_id=item.step_id, title=item.title,
                kind=item.kind, track=item.track, status=item.status, opened_at=item.opened_at,
                closed_at=item.closed_at, outcome=item.outcome,
            ))
            if item.kind == "task":
                assert item.organisation_id is not None
                session.merge(models.Task(
                    id=item.id, pathway_id=row.pathway_id, step_id=item.step_id, title=item.title,
                    definition_id=batch.pathway.definition_id, basin_id=batch.pathway.basin_id,
                    organisation_id=item.organisation_id, status=item.status, sla=row.sla,
                    due_at=item.due_at, opened_at=item.opened_at, closed_at=item.closed_at,
                    generation=item.generation, escalation_level=item.escalation_level,
                    outcome=item.outcome, submission_id=item.submission_id,
                ))
        for escalation in batch.escalations:
            session.merge(models.Escalation(
                id=escalation.id, pathway_id=batch.pathway.id, task_id=escalation.item_id,
                step_id=escalation.step_id, basin_id=batch.pathway.basin_id, level=escalation.level,
                to=escalation.to, status=escalation.status, opened_at=escalation.opened_at,
                decided_at=escalation.decided_at, decided_by=escalation.decided_by,
                action=escalation.action, note_id=escalation.note_id,
            ))
        for entry in batch.audit:
            if session.get(models.AuditEvent, entry.id) is None:
                session.add(models.AuditEvent(
                    id=entry.id, at=entry.at, pathway_id=entry.pathway_id, actor_user_id=entry.actor.user_id,
                    actor_org_id=entry.actor.organisation_id, action=entry.action, task_id=entry.item_id,
                    detail=entry.detail,
                ))


def _apply_pathway(session: Session, batch: ProjectionBatch) -> None:
    row = batch.pathway
    existing = session.get(models.Pathway, row.id)
    if existing is not None and existing.revision > row.revision:
        return
    session.merge(models.Pathway(
        id=row.id, definition_id=row.definition_id, definition_version=row.definition_version,
        basin_id=row.basin_id, referent_org=row.referent_org, person_id=row.person_ref, status=row.status,
        current_steps=row.current_steps, sla=row.sla, stuck_since=row.stuck_since, started_at=row.started_at,
        updated_at=row.updated_at, last_progress_at=row.last_progress_at, closed_at=row.closed_at,
        exit_reason=row.exit_reason, revision=row.revision,
    ))
    members = {
        m.organisation_id: m
        for m in session.exec(select(models.FollowUpMember).where(models.FollowUpMember.pathway_id == row.id))
    }
    for organisation_id in row.organisations:
        if organisation_id not in members:
            session.add(models.FollowUpMember(pathway_id=row.id, organisation_id=organisation_id, since=row.updated_at))
    if row.status == "closed":
        for member in members.values():
            if member.until is None:
                member.until = row.closed_at
                session.add(member)
