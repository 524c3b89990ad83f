"""Read-model queries and writes outside workflows (territory, definitions, persons, notes).
Module-level functions with keyword-only arguments."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from definitions.loader import content_hash
from definitions.schema import Definition
from definitions.territory import Territory
from store import models, views
from store.db import session_scope

DIRECTION_EMAIL = "direction_email"
IMMERSION_PRESCRIBERS = "immersion_prescribers"
TERRITORY_NAME = "territory_name"


def now() -> datetime:
    return datetime.now(UTC)


def new_user_id() -> str:
    """Opaque, random user id: workflows and audit refer to users by it. Never derived from the
    e-mail (it would let anyone who knows an address compute the id, and break on a change)."""
    return "u-" + uuid.uuid4().hex


def user_id_of(engine: Engine, *, email: str) -> str | None:
    """The id of the user with this e-mail, if any."""
    user = get_user_by_email(engine, email=email)
    return user.id if user else None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- Territory ----------------------------------------------------------------------------


def load_territory(engine: Engine, *, territory: Territory) -> dict[str, int]:
    """Upsert basins, organisations and users (passwords are kept). Returns counts."""
    with session_scope(engine) as session:
        for basin in territory.basins:
            session.merge(models.Basin(id=basin.id, name=basin.name, gto_email=basin.gto_email))
        session.merge(models.Setting(key=DIRECTION_EMAIL, value=territory.direction_email))
        session.merge(models.Setting(key=TERRITORY_NAME, value=territory.name))
        session.merge(models.Setting(key=IMMERSION_PRESCRIBERS, value=json.dumps(territory.immersion_prescribers)))
        session.flush()
        for org in territory.organisations:
            session.merge(
                models.Organisation(
                    id=org.id,
                    name=org.name,
                    type=org.type,
                    email=org.email,
                    basins=list(org.basins),
                    retention_days=org.retention_days,
                )
            )
        session.flush()
        for spec in territory.users:
            # A known e-mail keeps its id, password, activation and session version.
            existing = session.exec(select(models.User).where(models.User.email == spec.email.lower())).first()
            if existing is None:
                session.add(
                    models.User(
                        id=new_user_id(),
                        email=spec.email.lower(),
                        name=spec.name,
                        organisation_id=spec.organisation,
                        role=spec.role,
                        basin_id=spec.basin,
                    )
                )
            else:
                existing.name, existing.organisation_id = spec.name, spec.organisation
                existing.role, existing.basin_id = spec.role, spec.basin
                session.add(existing)
    return {
        "basins": len(territory.basins),
        "organisations": len(territory.organisations),
        "users": len(territory.users),
    }


def get_setting(engine: Engine, *, key: str) -> str | None:
    with session_scope(engine) as session:
        setting = session.get(models.Setting, key)
        return setting.value if setting else None


def get_user_by_email(engine: Engine, *, email: str) -> models.User | None:
    with session_scope(engine) as session:
        return session.exec(select(models.User).where(models.User.email == email.strip().lower())).first()


def get_organisation(engine: Engine, *, organisation_id: str) -> models.Organisation | None:
    with session_scope(engine) as session:
        return session.get(models.Organisation, organisation_id)


def get_basin(engine: Engine, *, basin_id: str) -> models.Basin | None:
    with session_scope(engine) as session:
        return session.get(models.Basin, basin_id)


def list_organisations(engine: Engine) -> list[models.Organisation]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.Organisation).order_by(models.Organisation.id)))


def serving_by_type(organisations: list[models.Organisation], *, basin_id: str) -> dict[str, models.Organisation]:
    """For each organisation type, the one serving a basin (first by id, for a stable choice)."""
    serving: dict[str, models.Organisation] = {}
    for org in sorted(organisations, key=lambda o: o.id):
        if basin_id in org.basins or "all" in org.basins:
            serving.setdefault(org.type, org)
    return serving


def organisation_serving(engine: Engine, *, org_type: str, basin_id: str) -> models.Organisation | None:
    return serving_by_type(list_organisations(engine), basin_id=basin_id).get(org_type)


# --- Definitions --------------------------------------------------------------------------


def publish_definition(
    engine: Engine, *, definition: Definition, source: str, published_by: str | None
) -> tuple[int, bool]:
    """Store a new version (n+1), or return the latest if its content is the same.
    Returns (version, created)."""
    digest = content_hash(definition)
    with session_scope(engine) as session:
        latest = session.exec(
            select(models.DefinitionVersion)
            .where(models.DefinitionVersion.id == definition.id)
            .order_by(col(models.DefinitionVersion.version).desc())
        ).first()
        if latest is not None and latest.content_hash == digest:
            return latest.version, False
        version = (latest.version + 1) if latest else 1
        snapshot = definition.model_copy(update={"version": version})
        session.add(
            models.DefinitionVersion(
                id=definition.id,
                version=version,
                title=definition.title,
                status=definition.status,
                basins=list(definition.basins),
                content_hash=digest,
                body=snapshot.model_dump(mode="json"),
                source=source,
                published_at=now(),
                published_by=published_by,
            )
        )
        return version, True


def latest_definition(engine: Engine, *, definition_id: str) -> Definition | None:
    with session_scope(engine) as session:
        row = session.exec(
            select(models.DefinitionVersion)
            .where(models.DefinitionVersion.id == definition_id)
            .order_by(col(models.DefinitionVersion.version).desc())
        ).first()
        return Definition.model_validate(row.body) if row else None


def list_definitions(engine: Engine) -> list[models.DefinitionVersion]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(models.DefinitionVersion).order_by(
                    col(models.DefinitionVersion.id), col(models.DefinitionVersion.version)
                )
            )
        )


# --- Persons, notes, submissions ------------------------------------------------------------


def _insert_if_absent(engine: Engine, row: Any) -> None:
    """Add `row` unless a row with its key exists (a retried request writes its side rows once,
    under ids derived from its request id); a concurrent twin inserting first is no error."""
    with session_scope(engine) as session:
        if session.get(type(row), row.id) is not None:
            return
    try:
        with session_scope(engine) as session:
            session.add(row)
    except IntegrityError:
        with session_scope(engine) as session:
            if session.get(type(row), row.id) is None:
                raise


def create_person(engine: Engine, *, data: dict[str, Any], created_by: str, person_id: str | None = None) -> str:
    """A new person; with `person_id` (derived from a request id), kept as is when it exists."""
    person_id = person_id or new_id("pers")
    _insert_if_absent(engine, models.Person(id=person_id, created_at=now(), consent_by=created_by, **data))
    return person_id


def save_note(
    engine: Engine, *, text: str | None, author_user_id: str, pathway_id: str | None, note_id: str | None = None
) -> str | None:
    """A note (None for an empty text); with `note_id` (derived from a request id), written once."""
    if not text or not text.strip():
        return None
    note_id = note_id or new_id("note")
    _insert_if_absent(
        engine,
        models.Note(
            id=note_id, pathway_id=pathway_id, author_user_id=author_user_id, text=text.strip(), created_at=now()
        ),
    )
    return note_id


def save_submission(
    engine: Engine,
    *,
    pathway_id: str,
    task_id: str,
    data: dict[str, Any],
    submitted_by: str,
    submission_id: str | None = None,
) -> str:
    """A form's answers; with `submission_id` (derived from a request id), written once."""
    submission_id = submission_id or new_id("sub")
    _insert_if_absent(
        engine,
        models.Submission(
            id=submission_id,
            pathway_id=pathway_id,
            task_id=task_id,
            data=data,
            submitted_by=submitted_by,
            created_at=now(),
        ),
    )
    return submission_id


def delete_submission(engine: Engine, *, submission_id: str) -> None:
    """Undo a submission whose update the workflow rejected."""
    with session_scope(engine) as session:
        row = session.get(models.Submission, submission_id)
        if row is not None:
            session.delete(row)


def record_access(
    engine: Engine,
    *,
    actor_user_id: str,
    actor_org_id: str,
    action: str,
    pathway_id: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Trace a read or a change made outside workflows (e.g. a view of personal data)."""
    with session_scope(engine) as session:
        session.add(
            audit_event(
                actor_user_id=actor_user_id,
                actor_org_id=actor_org_id,
                action=action,
                pathway_id=pathway_id,
                detail=detail,
            )
        )


def audit_event(
    *,
    actor_user_id: str,
    actor_org_id: str,
    action: str,
    pathway_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> models.AuditEvent:
    """An audit row, for a write to add in its own transaction (it is audited, or neither is)."""
    return models.AuditEvent(
        id=new_id("acc"),
        at=now(),
        pathway_id=pathway_id,
        actor_user_id=actor_user_id,
        actor_org_id=actor_org_id,
        action=action,
        detail=detail or {},
    )


# --- Pathways, tasks, escalations ------------------------------------------------------------


def get_pathway(engine: Engine, *, pathway_id: str) -> models.Pathway | None:
    with session_scope(engine) as session:
        return session.get(models.Pathway, pathway_id)


def get_task(engine: Engine, *, task_id: str) -> models.Task | None:
    with session_scope(engine) as session:
        return session.get(models.Task, task_id)


def pathway_detail(engine: Engine, *, pathway_id: str) -> dict[str, Any] | None:
    """A pathway with its timeline, tasks, escalations, follow-up group and audit history."""
    with session_scope(engine) as session:
        pathway = session.get(models.Pathway, pathway_id)
        if pathway is None:
            return None

        def rows(model: Any, order: Any) -> list[dict[str, Any]]:
            query = select(model).where(model.pathway_id == pathway_id).order_by(order)
            return [r.model_dump(mode="json") for r in session.exec(query)]

        return {
            "pathway": pathway.model_dump(mode="json"),
            "steps": rows(models.PathwayStep, models.PathwayStep.opened_at),
            "tasks": rows(models.Task, models.Task.opened_at),
            "escalations": rows(models.Escalation, models.Escalation.opened_at),
            "follow_up": rows(models.FollowUpMember, models.FollowUpMember.since),
            "audit": rows(models.AuditEvent, models.AuditEvent.at),
        }


def list_tasks(
    engine: Engine,
    *,
    organisation_id: str | None = None,
    status: str | None = "open",
    pathway_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[models.Task]:
    where = views.task_filters(organisation_id=organisation_id, status=status, pathway_id=pathway_id)
    with session_scope(engine) as session:
        query = select(models.Task).where(*where).order_by(*views.tasks_by_deadline()).offset(offset).limit(limit)
        return list(session.exec(query))


def list_escalations(
    engine: Engine,
    *,
    basin_id: str | None = None,
    status: str | None = "open",
    pathway_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[models.Escalation]:
    where = views.escalation_filters(basin_id=basin_id, status=status, pathway_id=pathway_id)
    with session_scope(engine) as session:
        query = (
            select(models.Escalation)
            .where(*where)
            .order_by(*views.escalations_oldest_first())
            .offset(offset)
            .limit(limit)
        )
        return list(session.exec(query))


def list_notifications(engine: Engine, *, pathway_id: str | None = None) -> list[models.Notification]:
    with session_scope(engine) as session:
        query = select(models.Notification)
        if pathway_id:
            query = query.where(models.Notification.pathway_id == pathway_id)
        return list(session.exec(query.order_by(col(models.Notification.created_at))))


def count_pathways(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(models.Pathway)).one())
