"""Need-to-know: who may see which pathway, which person fields, and the trace of every view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from definitions.durations import add_working_days
from store import models
from store import queries as q
from store.db import session_scope
from workflows.contract import Actor

STUCK_AFTER_WORKING_DAYS = 10
"""A pathway with no progress for this many working days counts as stuck on the GTO dashboard."""

NIR_READERS = {"departement", "caf", "msa", "france_travail"}
"""Organisation types that may read a person's social security number (NIR); others see it masked."""


@dataclass(frozen=True)
class CurrentUser:
    id: str
    email: str
    name: str
    role: str
    organisation_id: str
    organisation_name: str
    organisation_type: str
    basin_id: str | None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.id, organisation_id=self.organisation_id, role=self.role, basin_id=self.basin_id)

    @property
    def role_label(self) -> str:
        return {
            "caseworker": "Conseiller·ère",
            "gto_lead": "Animateur·rice GTO",
            "designer": "Concepteur·rice de parcours",
            "admin": "Administrateur·rice",
        }.get(self.role, self.role)


def load_user(engine: Engine, user_id: str) -> CurrentUser | None:
    with session_scope(engine) as session:
        user = session.get(models.User, user_id)
        if user is None or not user.active:
            return None
        org = session.get(models.Organisation, user.organisation_id)
        return CurrentUser(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            organisation_id=user.organisation_id,
            organisation_name=org.name if org else user.organisation_id,
            organisation_type=org.type if org else "",
            basin_id=user.basin_id,
        )


def stuck_since_cutoff(now: datetime) -> datetime:
    return add_working_days(now, -STUCK_AFTER_WORKING_DAYS)


def is_stuck(pathway: models.Pathway, now: datetime | None = None) -> bool:
    """Escalated, overdue, or no progress for STUCK_AFTER_WORKING_DAYS working days."""
    if pathway.status == "closed":
        return False
    # An open escalation always shows as SLA "escalated" (the workflow's worst task state), so
    # this is the same rule as store.views.stuck_clause, which lists the stuck pathways.
    if pathway.sla in ("overdue", "escalated"):
        return True
    progress = pathway.last_progress_at
    if progress is None:
        return False
    now = now or q.now()
    if progress.tzinfo is None:
        progress = progress.replace(tzinfo=now.tzinfo)
    return progress < stuck_since_cutoff(now)


def in_follow_up(engine: Engine, *, pathway_id: str, organisation_id: str) -> bool:
    with session_scope(engine) as session:
        member = session.get(models.FollowUpMember, (pathway_id, organisation_id))
        return member is not None and member.until is None


def access_reason(engine: Engine, user: CurrentUser, pathway: models.Pathway) -> str | None:
    """Why this user may see this pathway's personal data, or None: caseworkers while their
    organisation is in the follow-up group; GTO leads for their basin's stuck pathways."""
    if user.role == "caseworker" and in_follow_up(engine, pathway_id=pathway.id, organisation_id=user.organisation_id):
        return "groupe de suivi"
    if user.role == "gto_lead" and user.basin_id == pathway.basin_id and is_stuck(pathway):
        return "GTO du bassin"
    return None


def record_action(
    engine: Engine,
    user: CurrentUser | models.User,
    action: str,
    *,
    pathway_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Trace in the audit log an action (or a read) of this user made outside workflows."""
    q.record_access(
        engine,
        actor_user_id=user.id,
        actor_org_id=user.organisation_id,
        action=action,
        pathway_id=pathway_id,
        detail=detail,
    )


def record_view(engine: Engine, user: CurrentUser, *, pathway_id: str | None, what: str, reason: str) -> None:
    """Every view of personal data is traced in the audit log."""
    detail = {"what": what, "reason": reason}
    record_action(engine, user, "personal_data_viewed", pathway_id=pathway_id, detail=detail)


def record_views(engine: Engine, user: CurrentUser, views: list[tuple[str, str, str]]) -> None:
    """Trace several views of personal data, (pathway id, what, reason) each, in one transaction."""
    if not views:
        return
    with session_scope(engine) as session:
        for pathway_id, what, reason in views:
            session.add(
                models.AuditEvent(
                    id=q.new_id("acc"),
                    at=q.now(),
                    pathway_id=pathway_id,
                    actor_user_id=user.id,
                    actor_org_id=user.organisation_id,
                    action="personal_data_viewed",
                    detail={"what": what, "reason": reason},
                )
            )


def mask_nir(nir: str | None) -> str | None:
    if not nir:
        return None
    return nir[:1] + " •• •• •• ••• ••• " + nir[-2:]


def person_view(person: models.Person, user: CurrentUser) -> dict[str, Any]:
    """The person's fields this viewer may read (NIR masked outside NIR_READERS)."""
    data = person.model_dump(mode="json")
    if person.anonymised_at is not None:
        return {"id": person.id, "first_name": "Personne", "last_name": "anonymisée", "anonymised": True}
    if user.organisation_type not in NIR_READERS:
        data["nir"] = mask_nir(person.nir)
    return data
