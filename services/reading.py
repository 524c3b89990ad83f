"""Need-to-know, written once for the pages, the API and the CLI: who may read which pathway and
why, which person fields (NIR masked), the audit of every view of personal data, and the list
queries (inbox, followed pathways, the GTO's stuck pathways and escalations) with their filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from definitions.durations import add_working_days
from parcours.presenters import aware
from services.errors import ServiceError, quoted
from store import models, views
from store import queries as q
from store.db import session_scope

STUCK_AFTER_WORKING_DAYS = 10
"""A pathway with no progress for this many working days counts as stuck on the GTO dashboard."""

NIR_READERS = {"departement", "caf", "msa", "france_travail"}
"""Organisation types that may read a person's social security number (NIR); others see it masked."""

FOLLOW_UP = "groupe de suivi"
FOLLOW_UP_CLOSED = "groupe de suivi (parcours clos)"
GTO = "GTO du bassin"
DIRECTION = "direction du SPIE (parcours bloqué)"


class Viewer(Protocol):
    """Who reads: the signed-in user of a page or the API, or the CLI's operator."""

    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def organisation_id(self) -> str: ...
    @property
    def basin_id(self) -> str | None: ...


# --- Stuck pathways ---------------------------------------------------------------------------


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
    return aware(progress) < stuck_since_cutoff(now)


# --- Who may read which pathway -------------------------------------------------------------


def follows(engine: Engine, pathway: models.Pathway, organisation_id: str) -> bool:
    """The follow-up rule, one for the detail pages and the lists (store.views.followed_by): an
    open pathway while the organisation is active in its follow-up group; a closed pathway, until
    its person is anonymised, for its referent organisation and the organisations still in its
    follow-up group when it closed."""
    return views.follows(engine, pathway_id=pathway.id, organisation_id=organisation_id)


def access_reason(engine: Engine, user: Viewer, pathway: models.Pathway) -> str | None:
    """Why this user may see this pathway's personal data, or None: caseworkers while their
    organisation is in the follow-up group (and once closed, see `follows`); GTO leads for
    their basin's stuck pathways; the SPIE direction for the stuck pathways of every basin."""
    if user.role == "caseworker" and follows(engine, pathway, user.organisation_id):
        return FOLLOW_UP_CLOSED if pathway.status == "closed" else FOLLOW_UP
    if user.role == "gto_lead" and user.basin_id == pathway.basin_id and is_stuck(pathway):
        return GTO
    if user.role == "direction" and is_stuck(pathway):
        return DIRECTION
    return None


NO_ACCESS = (
    "Vous n'avez pas accès à ce parcours : il est réservé aux organisations de son groupe "
    "de suivi et, tant qu'il est bloqué, à l'animateur·rice du GTO de son bassin."
)


def readable_pathway(engine: Engine, user: Viewer, pathway_id: str) -> tuple[models.Pathway, str]:
    """The pathway and why this user may read it; 404 unknown, 403 not theirs to read."""
    pathway = q.get_pathway(engine, pathway_id=pathway_id)
    if pathway is None:
        raise ServiceError(f"Parcours inconnu : « {quoted(pathway_id)} ».", "not_found")
    reason = access_reason(engine, user, pathway)
    if reason is None:
        raise ServiceError(NO_ACCESS, "forbidden")
    return pathway, reason


def gto_basin(user: Viewer, basin: str | None = None) -> str:
    """A GTO lead's basin, refusing any other one (the basin rule, written once)."""
    if user.basin_id is None:
        raise ServiceError("Aucun bassin n'est rattaché à votre compte d'animateur·rice GTO.", "forbidden")
    if basin is not None and basin != user.basin_id:
        raise ServiceError(
            f"Vous animez le GTO du bassin « {user.basin_id} » : le bassin « {quoted(basin)} » ne vous est pas ouvert.",
            "forbidden",
        )
    return user.basin_id


def escalation_for(engine: Engine, user: Viewer, escalation_id: str) -> models.Escalation:
    """One escalation, read once per request, for its basin's GTO lead or an admin."""
    with session_scope(engine) as session:
        escalation = session.get(models.Escalation, escalation_id)
    if escalation is None:
        raise ServiceError(f"Escalade inconnue : « {quoted(escalation_id)} ».", "not_found")
    direction = user.role == "direction" and escalation.level >= 2
    if user.role != "admin" and not direction and (user.role != "gto_lead" or user.basin_id != escalation.basin_id):
        raise ServiceError(
            "Cette escalade relève du GTO d'un autre bassin : seul son animateur·rice peut la consulter.",
            "forbidden",
        )
    return escalation


# --- Audit of actions and views ----------------------------------------------------------------


def record_action(
    engine: Engine,
    user: Viewer,
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


def record_view(engine: Engine, user: Viewer, *, pathway_id: str | None, what: str, reason: str) -> None:
    """Every view of personal data is traced in the audit log."""
    record_views(engine, user, [(pathway_id, what, reason)])


def record_views(engine: Engine, user: Viewer, views_: list[tuple[str | None, str, str]]) -> None:
    """Trace several views of personal data, (pathway id, what, reason) each, in one transaction."""
    if not views_:
        return
    with session_scope(engine) as session:
        for pathway_id, what, reason in views_:
            session.add(
                q.audit_event(
                    actor_user_id=user.id,
                    actor_org_id=user.organisation_id,
                    action="personal_data_viewed",
                    pathway_id=pathway_id,
                    detail={"what": what, "reason": reason},
                )
            )


# --- The person, as this viewer may read it ----------------------------------------------------


def mask_nir(nir: str | None) -> str | None:
    if not nir:
        return None
    return nir[:1] + " •• •• •• ••• ••• " + nir[-2:]


def organisation_type(engine: Engine, user: Viewer) -> str:
    known = getattr(user, "organisation_type", None)
    if isinstance(known, str):
        return known
    organisation = q.get_organisation(engine, organisation_id=user.organisation_id)
    return organisation.type if organisation else ""


def person_view(person: models.Person, user: Viewer, org_type: str | None = None) -> dict[str, Any]:
    """The person's fields this viewer may read (NIR masked outside NIR_READERS)."""
    if person.anonymised_at is not None:
        return {"id": person.id, "first_name": "Personne", "last_name": "anonymisée", "anonymised": True}
    data = person.model_dump(mode="json")
    if org_type is None:
        org_type = getattr(user, "organisation_type", "")
    if org_type not in NIR_READERS:
        data["nir"] = mask_nir(person.nir)
    return data


def read_person(
    engine: Engine, user: Viewer, pathway: models.Pathway, *, reason: str, what: str, audit: bool = True
) -> dict[str, Any] | None:
    """The person of a pathway as this viewer may read it, the view traced in the audit log
    (`audit=False` for a request that acts — a POST — rather than reads)."""
    person = views.get_person(engine, person_id=pathway.person_id)
    if person is None:
        return None
    if audit:
        record_view(engine, user, pathway_id=pathway.id, what=what, reason=reason)
    return person_view(person, user, organisation_type(engine, user))


# --- Lists ---------------------------------------------------------------------------------------


def inbox(
    engine: Engine,
    user: Viewer,
    *,
    status: str = "open",
    basin_id: str | None = None,
    definition_id: str | None = None,
    sla: str | None = None,
    page: int = 1,
    size: int = views.DEFAULT_PAGE_SIZE,
) -> views.Paged[models.Task]:
    """The tasks of the user's organisation, by deadline (the page past the end: the last one)."""

    def query(number: int) -> views.Paged[models.Task]:
        return views.task_inbox(
            engine,
            organisation_id=user.organisation_id,
            status=status,
            basin_id=basin_id,
            definition_id=definition_id,
            sla=sla,
            page=number,
            size=size,
        )

    return views.within_range(query, page)


def pathways(
    engine: Engine,
    user: Viewer,
    *,
    basin_id: str | None = None,
    stuck: bool | None = None,
    definition_id: str | None = None,
    status: str | None = None,
    page: int = 1,
    size: int = views.DEFAULT_PAGE_SIZE,
) -> views.Paged[models.Pathway]:
    """Caseworkers: the pathways their organisation may read (`follows`: open ones it follows,
    closed ones it followed when they closed, until anonymised; `status` filters). GTO leads:
    their basin's stuck pathways only. No personal data in this list."""
    follow_up_org: str | None = None
    if user.role == "gto_lead":
        basin_id = gto_basin(user, basin_id)
        if stuck is False:
            raise ServiceError("Le GTO ne voit que les parcours bloqués de son bassin.", "forbidden")
        stuck = True
    elif user.role == "caseworker":
        follow_up_org = user.organisation_id
    elif user.role != "admin":
        raise ServiceError("Votre rôle ne donne pas accès aux parcours.", "forbidden")
    cutoff = stuck_since_cutoff(q.now()) if stuck else None

    def query(number: int) -> views.Paged[models.Pathway]:
        return views.pathway_list(
            engine,
            basin_id=basin_id,
            definition_id=definition_id,
            status=status,
            stuck_cutoff=cutoff,
            follow_up_org=follow_up_org,
            page=number,
            size=size,
        )

    return views.within_range(query, page)


def escalations(
    engine: Engine,
    user: Viewer,
    *,
    basin_id: str | None = None,
    status: str | None = "open",
    page: int = 1,
    size: int = views.DEFAULT_PAGE_SIZE,
) -> views.Paged[models.Escalation]:
    """Escalations of a basin's GTO (GTO leads: their basin; admins: every basin)."""
    if user.role == "gto_lead":
        basin_id = gto_basin(user, basin_id)
    elif user.role != "admin":
        raise ServiceError("Seuls le GTO et l'administration voient les escalades.", "forbidden")
    return views.escalation_list(engine, basin_id=basin_id, status=status, page=max(1, page), size=size)


@dataclass(frozen=True)
class PathwayRead:
    """A pathway read by someone who needs to know: the why, the person (masked), the detail."""

    pathway: models.Pathway
    reason: str
    person: dict[str, Any] | None
    detail: dict[str, Any]


def pathway_detail(engine: Engine, user: Viewer, pathway_id: str, *, what: str = "pathway") -> PathwayRead:
    """GET /api/pathways/{id} and the CLI: the pathway with its steps, tasks, escalations and
    follow-up group, for those who need to know; the read is traced."""
    pathway, reason = readable_pathway(engine, user, pathway_id)
    detail = q.pathway_detail(engine, pathway_id=pathway_id)
    if detail is None:
        raise ServiceError(f"Parcours inconnu : « {quoted(pathway_id)} ».", "not_found")
    person = read_person(engine, user, pathway, reason=reason, what=what)
    return PathwayRead(pathway=pathway, reason=reason, person=person, detail=detail)


# --- The SPIE direction's view ------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionView:
    """Across every basin: stuck pathways per basin, and the level-2 escalations to decide."""

    stuck_per_basin: list[tuple[models.Basin, int]]
    escalations: views.Paged[models.Escalation]


def direction_view(engine: Engine, user: Viewer, *, page: int = 1) -> DirectionView:
    if user.role not in ("direction", "admin"):
        raise ServiceError("Cette vue est réservée à la direction du SPIE.", "forbidden")
    cutoff = stuck_since_cutoff(q.now())
    stuck = [
        (basin, views.pathway_list(engine, basin_id=basin.id, stuck_cutoff=cutoff, size=1).total)
        for basin in views.list_basins(engine)
    ]
    return DirectionView(stuck, views.escalation_list(engine, status="open", min_level=2, page=page))
