"""The person's own space (issue 11 §4): with their consent, the referent organisation e-mails
the person a one-time link; opening it (a button, so a mail client's preview spends nothing)
starts a short session that shows only that person's pathways as a timeline, the next steps and
whom to contact, their savoir-être passport, their consents with the right to withdraw, and an
export of all their data (the RGPD right of access) as JSON and as a readable PDF. The referent
organisation produces the same export to answer a subject-access request. Every step is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from parcours.presenters import STATUS_LABELS, aware, french_datetime
from services import immersions, links, passport
from services.documents import Document
from services.errors import ServiceError
from services.reading import Viewer, readable_pathway
from store import models, views
from store import queries as q
from store.db import session_scope

PURPOSE = "person_space"
LINK_DAYS = 7
"""The e-mailed link is valid this many days, once."""
SESSION_MINUTES = 60
"""A space opened from the link stays open this long in that browser."""


# --- The link ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    url: str
    email: str
    person_name: str


def invite(engine: Engine, user: Viewer, pathway_id: str, *, public_url: str) -> Invitation:
    """A link to the person's space, for the referent organisation, to a person who consented and
    has an e-mail address."""
    pathway, _ = readable_pathway(engine, user, pathway_id)
    if user.organisation_id != pathway.referent_org:
        raise ServiceError("Seule la structure référente envoie à la personne le lien vers son espace.", "forbidden")
    person = views.get_person(engine, person_id=pathway.person_id)
    if person is None or person.anonymised_at is not None:
        raise ServiceError("Cette personne a été anonymisée : elle n'a plus d'espace.", "conflict")
    if person.consent_at is None:
        raise ServiceError("La personne n'a pas donné son accord : son espace ne peut pas lui être ouvert.", "conflict")
    if not person.email:
        raise ServiceError(
            "Aucune adresse e-mail n'est connue pour cette personne : renseignez-la pour lui envoyer le lien.",
            "invalid",
        )
    with session_scope(engine) as session:
        token = links.create(
            session,
            purpose=PURPOSE,
            subject_id=person.id,
            sent_to=person.email,
            created_by=user.id,
            valid_for=timedelta(days=LINK_DAYS),
        )
        session.add(
            q.audit_event(
                actor_user_id=user.id,
                actor_org_id=user.organisation_id,
                action="person_space_link_sent",
                pathway_id=pathway.id,
            )
        )
    return Invitation(
        f"{public_url.rstrip('/')}/mon-espace/lien/{token}", person.email, f"{person.first_name} {person.last_name}"
    )


def check_link(engine: Engine, token: str) -> links.Link:
    return links.open_link(engine, token=token, purpose=PURPOSE)


def open_space(engine: Engine, token: str) -> str:
    """Spend the link: the person whose space it opens."""
    with session_scope(engine) as session:
        return links.spend(session, token=token, purpose=PURPOSE).subject_id


def session_until() -> float:
    return (q.now() + timedelta(minutes=SESSION_MINUTES)).timestamp()


# --- What the space shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    organisation: str
    email: str


@dataclass(frozen=True)
class PathwayView:
    pathway: models.Pathway
    title: str
    steps: list[models.PathwayStep]
    next_tasks: list[tuple[models.Task, Contact]]
    referent: Contact
    passport: passport.Passport


@dataclass(frozen=True)
class Space:
    person: models.Person
    pathways: list[PathwayView]
    passport_shared: bool
    group_consent_at: datetime | None
    conventions: list[models.Immersion]  # accepted by the host, waiting for the person's signature


def _person(engine: Engine, person_id: str) -> models.Person:
    person = views.get_person(engine, person_id=person_id)
    if person is None or person.anonymised_at is not None:
        raise ServiceError("Cet espace n'existe plus.", "not_found")
    return person


def space(engine: Engine, person_id: str) -> Space:
    """The person's pathways, newest first, as the person sees them (audited)."""
    person = _person(engine, person_id)
    with session_scope(engine) as session:
        pathways = list(
            session.exec(
                select(models.Pathway)
                .where(models.Pathway.person_id == person_id)
                .order_by(col(models.Pathway.started_at).desc())
            )
        )
        organisations = {o.id: o for o in session.exec(select(models.Organisation))}
        titles = {d.id: d.title for d in session.exec(select(models.DefinitionVersion))}

    def contact(org_id: str) -> Contact:
        org = organisations.get(org_id)
        return Contact(org.name, org.email) if org else Contact(org_id, "")

    shown = []
    for pathway in pathways:
        history = views.pathway_history(engine, pathway_id=pathway.id)
        open_tasks = [t for t in history["tasks"] if t.status == "open"]
        shown.append(
            PathwayView(
                pathway=pathway,
                title=titles.get(pathway.definition_id, pathway.definition_id),
                steps=history["steps"],
                next_tasks=[(t, contact(t.organisation_id)) for t in open_tasks],
                referent=contact(pathway.referent_org),
                passport=passport.of_pathway(engine, pathway),
            )
        )
    consent = shown[0].passport.shared if shown else False
    _audit(engine, person_id, "person_space_viewed")
    return Space(person, shown, consent, person.consent_at, immersions.waiting_for_the_person(engine, person_id))


def _audit(engine: Engine, person_id: str, action: str, pathway_id: str | None = None) -> None:
    q.record_access(
        engine,
        actor_user_id=passport.PERSON,
        actor_org_id=f"person:{person_id}",
        action=action,
        pathway_id=pathway_id,
    )


def own_passport(engine: Engine, person_id: str, pathway_id: str) -> passport.Passport:
    """One of the person's own pathways' passport: another person's is unknown here."""
    pathway = q.get_pathway(engine, pathway_id=pathway_id)
    if pathway is None or pathway.person_id != person_id:
        raise ServiceError("Parcours inconnu.", "not_found")
    _audit(engine, person_id, "person_passport_downloaded", pathway_id)
    return passport.of_pathway(engine, pathway)


# --- The export (RGPD right of access) ----------------------------------------------------------


def _json_row(row: Any, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    data: dict[str, Any] = row.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in without}


def export(engine: Engine, person_id: str) -> dict[str, Any]:
    """All the data Parcours holds about this person, and only theirs: identity, consents, each
    pathway with its steps, tasks, form answers, shared notes, follow-up group, immersions (their
    conventions, signatures and tutors' bilans) and the traces of who read or changed it."""
    person = _person(engine, person_id)
    with session_scope(engine) as session:
        pathways = list(session.exec(select(models.Pathway).where(models.Pathway.person_id == person_id)))
        ids = [p.id for p in pathways]

        def rows(model: Any) -> list[Any]:
            if not ids:
                return []
            return list(session.exec(select(model).where(col(model.pathway_id).in_(ids))))

        steps, tasks, answers = rows(models.PathwayStep), rows(models.Task), rows(models.Submission)
        notes, members, traces = rows(models.Note), rows(models.FollowUpMember), rows(models.AuditEvent)
        consents = list(session.exec(select(models.Consent).where(models.Consent.person_id == person_id)))
        immersions_ = list(session.exec(select(models.Immersion).where(models.Immersion.person_id == person_id)))
        signed = list(
            session.exec(
                select(models.ImmersionSignature).where(
                    col(models.ImmersionSignature.immersion_id).in_([i.id for i in immersions_] or [""])
                )
            )
        )
        organisations = {o.id: o.name for o in session.exec(select(models.Organisation))}

    def of(items: list[Any], pathway_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        return [_json_row(i, **kwargs) for i in items if i.pathway_id == pathway_id]

    return {
        "exported_at": q.now().isoformat(),
        "person": _json_row(person),
        "consents": [
            {
                "purpose": "follow_up_group",
                "given_at": aware(person.consent_at).isoformat() if person.consent_at else None,
            }
        ]
        + [_json_row(c) for c in consents],
        "pathways": [
            {
                **_json_row(p),
                "referent_organisation": organisations.get(p.referent_org, p.referent_org),
                "steps": of(steps, p.id),
                "tasks": of(tasks, p.id),
                "form_answers": of(answers, p.id),
                "notes": of(notes, p.id),
                "follow_up_group": [
                    {**m, "organisation": organisations.get(m["organisation_id"], m["organisation_id"])}
                    for m in of(members, p.id)
                ],
                "traces": of(traces, p.id),
                "immersions": [
                    {
                        **_json_row(i),
                        "signatures": [_json_row(sig) for sig in signed if sig.immersion_id == i.id],
                    }
                    for i in immersions_
                    if i.pathway_id == p.id
                ],
            }
            for p in pathways
        ],
    }


def export_by_the_person(engine: Engine, person_id: str) -> dict[str, Any]:
    data = export(engine, person_id)
    _audit(engine, person_id, "person_data_exported")
    return data


def export_for_the_referent(engine: Engine, user: Viewer, pathway_id: str) -> dict[str, Any]:
    """The same export, produced by the referent organisation for a subject-access request."""
    pathway, _ = readable_pathway(engine, user, pathway_id)
    if user.organisation_id != pathway.referent_org:
        raise ServiceError("Seule la structure référente produit l'export des données de la personne.", "forbidden")
    data = export(engine, pathway.person_id)
    q.record_access(
        engine,
        actor_user_id=user.id,
        actor_org_id=user.organisation_id,
        action="person_data_exported",
        pathway_id=pathway.id,
        detail={"for": "demande d'accès de la personne"},
    )
    return data


def export_pdf(data: dict[str, Any]) -> bytes:
    """The export as a readable PDF, in plain French."""
    document = Document("Mes données dans Parcours")
    line = document.line

    person = data["person"]
    line("Mes données dans Parcours", 18, "B", 10)
    line(f"Export du {french_datetime(datetime.fromisoformat(data['exported_at']))}.")
    line("")
    line("Mon identité", 13, "B", 8)
    for key, label in (
        ("first_name", "Prénom"),
        ("last_name", "Nom"),
        ("birth_date", "Date de naissance"),
        ("email", "E-mail"),
        ("phone", "Téléphone"),
        ("nir", "Numéro de sécurité sociale"),
        ("france_travail_id", "Identifiant France Travail"),
    ):
        line(f"{label} : {person.get(key) or '—'}")
    line("")
    line("Mes accords", 13, "B", 8)
    for consent in data["consents"]:
        what = (
            "partage entre les partenaires de mon groupe de suivi"
            if consent["purpose"] == "follow_up_group"
            else "partage de mon passeport savoir-être"
        )
        state = " (retiré)" if consent.get("withdrawn_at") else ""
        line(f"• {what} : donné le {consent.get('given_at') or '—'}{state}")
    for pathway in data["pathways"]:
        line("")
        line(f"Parcours {pathway['id']} ({STATUS_LABELS.get(pathway['status'], pathway['status'])})", 13, "B", 8)
        line(f"Structure référente : {pathway['referent_organisation']}. Commencé le {pathway['started_at']}.")
        line("Étapes :", 11, "B")
        for step in pathway["steps"]:
            line(f"• {step['title']} : {STATUS_LABELS.get(step['status'], step['status'])}")
        line("Réponses aux formulaires :", 11, "B")
        for answer in pathway["form_answers"]:
            line(f"• {answer['created_at']} : {answer['data']}")
        line("Organisations de mon groupe de suivi :", 11, "B")
        for member in pathway["follow_up_group"]:
            line(f"• {member['organisation']} depuis le {member['since']}")
        line(f"Notes partagées : {len(pathway['notes'])}. Traces d'accès et d'actions : {len(pathway['traces'])}.")
        for note in pathway["notes"]:
            line(f"• {note['created_at']} : {note['text']}")
    return document.bytes()


def withdraw_passport_sharing(engine: Engine, person_id: str) -> bool:
    _person(engine, person_id)
    return passport.withdraw_by_the_person(engine, person_id)
