"""Administration: the territory (its YAML import, basins, organisations) and the user accounts,
written once for the admin pages and the CLI. Every change is audited; refusals are French."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import func, select

from definitions.territory import InvalidTerritory, Territory, load_territory
from parcours.settings import Settings
from services import identity
from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import session_scope
from store.views import Paged
from workflows.contract import Actor

ROLES = {
    "caseworker": "Conseiller·ère",
    "gto_lead": "Animateur·rice GTO",
    "designer": "Concepteur·rice",
    "admin": "Administrateur·rice",
    "direction": "Direction du SPIE",
}
# Who may act with `--by` (CLI) for each kind of command: the same rule as the pages'.
COMMAND_ROLES: dict[str, tuple[str, ...]] = {
    "tasks": ("caseworker", "admin"),
    "pathways": ("caseworker", "admin"),
    "escalations": ("gto_lead", "direction", "admin"),
    "definitions": ("designer", "admin"),
    "migrations": ("admin",),
    "incidents": ("admin",),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME = 200


# --- Who acts ---------------------------------------------------------------------------------


def actor_for(engine: Engine, *, email: str, command: str) -> Actor:
    """The known, active user behind `--by EMAIL`, refused unless their role may run `command`."""
    roles = COMMAND_ROLES[command]
    user = q.get_user_by_email(engine, email=email)
    if user is None:
        raise ServiceError(f"Utilisateur inconnu : {email}.", "forbidden")
    if not user.active:
        raise ServiceError(f"Le compte {user.email} est désactivé.", "forbidden")
    if user.role not in roles:
        allowed = " ou ".join(ROLES[r].lower() for r in roles)
        raise ServiceError(
            f"{user.email} est {ROLES.get(user.role, user.role).lower()} : cette commande est réservée "
            f"au rôle {allowed}.",
            "forbidden",
        )
    return Actor(user_id=user.id, organisation_id=user.organisation_id, role=user.role, basin_id=user.basin_id)


def _audit(engine: Engine, actor: Actor, action: str, detail: dict[str, Any]) -> None:
    q.record_access(
        engine,
        actor_user_id=actor.user_id,
        actor_org_id=actor.organisation_id,
        action=action,
        pathway_id=None,
        detail={k: str(v) for k, v in detail.items()},
    )


# --- The territory ----------------------------------------------------------------------------


@dataclass
class TerritoryOverview:
    basins: list[models.Basin]
    organisations: list[models.Organisation]
    users_per_org: dict[str, int]
    direction: str | None


def overview(engine: Engine) -> TerritoryOverview:
    with session_scope(engine) as session:
        basins = list(session.exec(select(models.Basin).order_by(models.Basin.name)))
        organisations = list(
            session.exec(select(models.Organisation).order_by(models.Organisation.type, models.Organisation.name))
        )
        users_per_org = {
            str(org): int(n)
            for org, n in session.exec(
                select(models.User.organisation_id, func.count()).group_by(models.User.organisation_id)
            ).all()
        }
    return TerritoryOverview(basins, organisations, users_per_org, q.get_setting(engine, key=q.DIRECTION_EMAIL))


def basins(engine: Engine) -> list[models.Basin]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.Basin).order_by(models.Basin.name)))


def organisations(engine: Engine) -> list[models.Organisation]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.Organisation).order_by(models.Organisation.name)))


def load_territory_file(engine: Engine, *, path: Path, actor: Actor) -> tuple[Territory, dict[str, int]]:
    """Upsert a territory YAML file (all or nothing: an invalid file changes nothing)."""
    try:
        territory = load_territory(path)
    except InvalidTerritory as error:
        raise ServiceError(f"Import refusé, rien n'a été modifié : {error}") from None
    counts = q.load_territory(engine, territory=territory)
    _audit(engine, actor, "territory_imported", {"name": territory.name, **counts})
    return territory, counts


def import_territory(
    engine: Engine, *, content: bytes, filename: str | None, actor: Actor
) -> tuple[Territory, dict[str, int]]:
    """An uploaded territory file: the same as loading it, its temporary path hidden from errors."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(filename or "territoire.yaml").name or "territoire.yaml")
        path.write_bytes(content)
        try:
            return load_territory_file(engine, path=path, actor=actor)
        except ServiceError as error:
            raise ServiceError(error.message.replace(str(path), path.name)) from None


# --- Users ------------------------------------------------------------------------------------


def list_users(
    engine: Engine, *, page: int, page_size: int, organisation: str | None = None, role: str | None = None
) -> Paged[models.User]:
    where: list[Any] = []
    if organisation:
        where.append(models.User.organisation_id == organisation)
    if role:
        where.append(models.User.role == role)
    with session_scope(engine) as session:
        total = int(session.exec(select(func.count()).select_from(models.User).where(*where)).one())
        rows = list(
            session.exec(
                select(models.User)
                .where(*where)
                .order_by(models.User.email)
                .offset((page - 1) * page_size)
                .limit(page_size)
            )
        )
    return Paged(rows, page, page_size, total)


def _checked(
    engine: Engine, *, name: str, organisation: str, role: str, basin: str | None
) -> tuple[str, str, str, str | None]:
    """The account's fields, refused with a French message per field."""
    name, organisation, role, basin = name.strip(), organisation.strip(), role.strip(), (basin or "").strip() or None
    fields: dict[str, str] = {}
    if not name:
        fields["name"] = "Le nom est obligatoire."
    elif len(name) > MAX_NAME:
        fields["name"] = f"Le nom dépasse {MAX_NAME} caractères."
    if role not in ROLES:
        fields["role"] = f"Rôle inconnu : {role} (attendu : {', '.join(ROLES)})."
    if q.get_organisation(engine, organisation_id=organisation) is None:
        fields["organisation"] = f"Organisation inconnue : {organisation}."
    if basin and q.get_basin(engine, basin_id=basin) is None:
        fields["basin"] = f"Bassin inconnu : {basin}."
    elif role == "gto_lead" and not basin:
        fields["basin"] = "Un·e animateur·rice de GTO doit avoir un bassin."
    if fields:
        raise ServiceError(" ".join(fields.values()), "invalid", fields)
    return name, organisation, role, basin if role == "gto_lead" else None


def create_user(
    engine: Engine,
    *,
    actor: Actor,
    email: str,
    name: str,
    organisation: str,
    role: str,
    basin: str | None = None,
    active: bool = True,
) -> models.User:
    """A new account (without a password: set one, or sign in by a link sent by e-mail)."""
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise ServiceError(f"Adresse e-mail invalide : {email}.", "invalid", {"email": "Adresse e-mail invalide."})
    name, organisation, role, basin = _checked(engine, name=name, organisation=organisation, role=role, basin=basin)
    if q.get_user_by_email(engine, email=email) is not None:
        raise ServiceError(f"Un compte existe déjà pour {email}.", "conflict", {"email": "Adresse déjà utilisée."})
    user = models.User(
        id=q.new_user_id(),
        email=email,
        name=name,
        organisation_id=organisation,
        role=role,
        basin_id=basin,
        active=active,
    )
    with session_scope(engine) as session:
        session.add(user)
    _audit(
        engine,
        actor,
        "user_created",
        {"user": user.id, "role": role, "organisation": organisation, "basin": basin or "", "active": active},
    )
    return user


def update_user(
    engine: Engine,
    *,
    actor: Actor,
    user_id: str,
    name: str | None,
    organisation: str,
    role: str,
    basin: str | None,
    active: bool,
) -> models.User:
    """Change an account's name, organisation, role, basin (GTO leads) or deactivate it."""
    with session_scope(engine) as session:
        row = session.get(models.User, user_id)
        if row is None:
            raise ServiceError("Utilisateur inconnu.", "not_found")
        current_name = row.name
    name, organisation, role, basin = _checked(
        engine, name=current_name if name is None else name, organisation=organisation, role=role, basin=basin
    )
    if user_id == actor.user_id and (not active or role != "admin"):
        raise ServiceError("Vous ne pouvez pas retirer votre propre rôle d'administrateur·rice ni vous désactiver.")
    with session_scope(engine) as session:
        row = session.get(models.User, user_id)
        assert row is not None
        if not active or (row.role, row.organisation_id, row.basin_id) != (role, organisation, basin):
            identity.revoke(row)  # deactivated, or new rights: open sessions and API tokens end at once
        row.name, row.role, row.organisation_id, row.basin_id, row.active = name, role, organisation, basin, active
        session.add(row)
    _audit(
        engine,
        actor,
        "user_changed",
        {
            "user": user_id,
            "name": name,
            "role": role,
            "organisation": organisation,
            "basin": basin or "",
            "active": active,
        },
    )
    return row


# --- Where e-mails go -------------------------------------------------------------------------


def emails_captured(settings: Settings) -> bool:
    """True when the dev stack's own SMTP capture receives the e-mails (no SMTP host configured;
    the stack then points the worker and the UI at its capture port)."""
    return settings.smtp_host is None or (
        settings.smtp_host in ("127.0.0.1", "localhost") and settings.smtp_port == settings.capture_smtp_port
    )


def where_emails_go(settings: Settings) -> str:
    """One sentence, the same at the dev stack's start-up and on /dev/emails."""
    if emails_captured(settings):
        return (
            f"E-mails capturés localement (SMTP 127.0.0.1:{settings.capture_smtp_port}) : aucun ne part vers "
            f"une vraie boîte ; les administrateurs les lisent sur {settings.public_url}/dev/emails."
        )
    return (
        f"E-mails envoyés au serveur SMTP {settings.smtp_host}:{settings.smtp_port or 25} (PARCOURS_SMTP_HOST) : "
        "ils partent vers les vraies adresses et ne sont pas capturés ici."
    )
