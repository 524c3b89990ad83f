"""The partner directory (issue 12 §7, interconnaissance): every organisation of the territory
with what it offers, the publics it serves, its conditions of access, its contacts and the basins
it serves, and the members of each basin's GTO. Searchable by every signed-in user; each
organisation keeps its own entry (audited)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import select

from parcours.presenters import organisation_type_label
from services.errors import ServiceError
from services.hosts import folded
from services.reading import Viewer
from store import models, views
from store import queries as q
from store.db import session_scope

TEXT_MAX, CONTACTS_MAX = 2000, 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class ProfileEntry:
    offer: str = ""
    publics: str = ""
    access_conditions: str = ""
    contacts: list[dict[str, str]] = field(default_factory=list)  # name, role, email, phone


@dataclass(frozen=True)
class Partner:
    organisation: models.Organisation
    profile: models.OrganisationProfile | None


@dataclass(frozen=True)
class Gto:
    basin: models.Basin
    leads: list[models.User]
    members: list[models.Organisation]


def directory(engine: Engine, *, words: str = "", basin_id: str | None = None) -> list[Partner]:
    """The organisations matching every word (name, type, offer, publics, conditions; any case or
    accents), serving the basin if given, by name."""
    with session_scope(engine) as session:
        organisations = list(session.exec(select(models.Organisation).order_by(models.Organisation.name)))
        profiles = {p.organisation_id: p for p in session.exec(select(models.OrganisationProfile))}
    wanted = folded(words).split()
    found = []
    for org in organisations:
        if basin_id and basin_id not in org.basins and "all" not in org.basins:
            continue
        profile = profiles.get(org.id)
        text = folded(
            " ".join(
                [
                    org.name,
                    org.type,
                    organisation_type_label(org.type),
                    *([profile.offer, profile.publics, profile.access_conditions] if profile else []),
                ]
            )
        )
        if all(word in text for word in wanted):
            found.append(Partner(org, profile))
    return found


def partner(engine: Engine, organisation_id: str) -> Partner:
    with session_scope(engine) as session:
        org = session.get(models.Organisation, organisation_id)
        if org is None:
            raise ServiceError(f"Organisation inconnue : « {organisation_id[:60]} ».", "not_found")
        return Partner(org, session.get(models.OrganisationProfile, organisation_id))


def gtos(engine: Engine) -> list[Gto]:
    """Each basin's GTO: its leads and the organisations serving the basin."""
    with session_scope(engine) as session:
        users = [u for u in session.exec(select(models.User).where(models.User.role == "gto_lead")) if u.active]
        organisations = list(session.exec(select(models.Organisation).order_by(models.Organisation.name)))
    return [
        Gto(
            basin,
            [u for u in users if u.basin_id == basin.id],
            [o for o in organisations if basin.id in o.basins or "all" in o.basins],
        )
        for basin in views.list_basins(engine)
    ]


def may_edit(user: Viewer, organisation_id: str) -> bool:
    return user.role == "admin" or user.organisation_id == organisation_id


def update(engine: Engine, user: Viewer, organisation_id: str, entry: ProfileEntry) -> models.OrganisationProfile:
    """An organisation's own entry, written by its users (or an admin); refused fields named."""
    if not may_edit(user, organisation_id):
        raise ServiceError("Chaque organisation tient sa propre fiche : celle-ci n'est pas la vôtre.", "forbidden")
    partner(engine, organisation_id)
    errors: dict[str, str] = {}
    for name, label in (
        ("offer", "Offre de services"),
        ("publics", "Publics"),
        ("access_conditions", "Conditions d'accès"),
    ):
        if len(getattr(entry, name)) > TEXT_MAX:
            errors[name] = f"{label} : {TEXT_MAX} caractères au plus."
    contacts: list[dict[str, str]] = []
    for i, contact in enumerate(entry.contacts[: CONTACTS_MAX + 1], start=1):
        values = {k: (contact.get(k) or "").strip()[:200] for k in ("name", "role", "email", "phone")}
        if not any(values.values()):
            continue
        if not values["name"]:
            errors[f"contacts.{i}"] = f"Contact {i} : le nom est à renseigner."
        if values["email"] and not _EMAIL.match(values["email"]):
            errors[f"contacts.{i}.email"] = f"Contact {i} : adresse e-mail invalide."
        contacts.append(values)
    if len(contacts) > CONTACTS_MAX:
        errors["contacts"] = f"Contacts : {CONTACTS_MAX} au plus."
    if errors:
        raise ServiceError("La fiche contient des erreurs : " + " ".join(errors.values()), "invalid", errors)
    with session_scope(engine) as session:
        row = session.get(models.OrganisationProfile, organisation_id) or models.OrganisationProfile(
            organisation_id=organisation_id
        )
        row.offer, row.publics, row.access_conditions = (
            entry.offer.strip(),
            entry.publics.strip(),
            entry.access_conditions.strip(),
        )
        row.contacts, row.updated_at, row.updated_by = contacts, q.now(), user.id
        session.add(row)
        session.add(
            q.audit_event(
                actor_user_id=user.id,
                actor_org_id=user.organisation_id,
                action="partner_profile_updated",
                detail={"organisation": organisation_id},
            )
        )
    return row
