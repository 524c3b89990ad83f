"""The directory of host structures for immersions (PMSMP) and their offers, per basin: written
once for the pages, the API and the host's own one-time link. Partners whose organisation type
may keep the directory add and correct entries; a host completes its own entry through a link,
without an account. The directory holds no personal data about people in insertion: only the
host's own contact and tutors. Every change is audited in the transaction that makes it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select
from stdnum.exceptions import ValidationError as NumberInvalid
from stdnum.fr import siret as siret_number

from services import links
from services.errors import ServiceError, quoted
from services.requests import open_request
from store import models, views
from store import queries as q
from store.db import session_scope
from store.views import DEFAULT_PAGE_SIZE, Paged
from workflows.contract import Actor

DIRECTORY_KEEPERS = ("employer_federation", "france_travail", "cap_emploi", "mission_locale", "departement", "siae")
"""Organisation types whose users keep the directory: the employers' federation and France
Travail's company advisers first, and the other partners that prospect employers."""

HOST_LINK = "host_entry"
HOST_LINK_DAYS = 14
"""A host's link to complete its entry is valid this many days, once."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NAME_MAX, TEXT_MAX, LIST_MAX = 200, 2000, 30
MAX_PLACES = 50


@dataclass
class HostEntry:
    """What a form, an API call or a host's link says about a host (free text, checked here)."""

    name: str = ""
    siret: str = ""
    address: str = ""
    sector: str = ""
    trades: list[str] = field(default_factory=list)
    accessibility: str = ""
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    tutors: list[dict[str, str]] = field(default_factory=list)  # name, job, email


@dataclass
class OfferEntry:
    trade: str = ""
    places: str | int = 1
    periods: list[dict[str, str]] = field(default_factory=list)  # start, end: ISO dates


def folded(text: str) -> str:
    """Lower case without accents: what a search compares ("Boulangère" finds "boulangere")."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def checked_text(value: str, *, field_name: str, label: str, errors: dict[str, str], required: bool, limit: int) -> str:
    value = (value or "").strip()
    if required and not value:
        errors[field_name] = f"{label} : à renseigner."
    elif len(value) > limit:
        errors[field_name] = f"{label} : {limit} caractères au plus."
    return value


def checked_email(value: str, *, field_name: str, label: str, errors: dict[str, str], required: bool) -> str:
    value = (value or "").strip().lower()
    if (required or value) and (not _EMAIL.match(value) or len(value) > 254):
        errors[field_name] = f"{label} : adresse e-mail invalide ({quoted(value, 60) or 'vide'})."
    return value


def check_host(entry: HostEntry) -> HostEntry:
    """The entry cleaned, or a French refusal naming each field that is wrong."""
    errors: dict[str, str] = {}

    def text(name: str, label: str, required: bool = True, limit: int = NAME_MAX) -> str:
        return checked_text(
            getattr(entry, name), field_name=name, label=label, errors=errors, required=required, limit=limit
        )

    clean = HostEntry(
        name=text("name", "Raison sociale"),
        address=text("address", "Adresse", limit=TEXT_MAX),
        sector=text("sector", "Secteur d'activité"),
        accessibility=text("accessibility", "Accessibilité", required=False, limit=TEXT_MAX),
        contact_name=text("contact_name", "Nom du contact"),
        contact_phone=text("contact_phone", "Téléphone du contact", required=False, limit=30),
        contact_email=checked_email(
            entry.contact_email, field_name="contact_email", label="E-mail du contact", errors=errors, required=True
        ),
    )
    raw_siret = re.sub(r"[\s.]", "", entry.siret or "")
    try:
        clean.siret = siret_number.validate(raw_siret)
    except NumberInvalid:
        errors["siret"] = (
            f"SIRET invalide ({quoted(entry.siret, 30) or 'vide'}) : 14 chiffres dont la clé de contrôle "
            "(SIREN de 9 chiffres suivi du numéro d'établissement)."
        )
    trades = [t.strip() for t in entry.trades if t and t.strip()]
    if not trades:
        errors["trades"] = "Métiers proposés : au moins un métier."
    elif len(trades) > LIST_MAX or any(len(t) > NAME_MAX for t in trades):
        errors["trades"] = f"Métiers proposés : {LIST_MAX} au plus, de {NAME_MAX} caractères au plus chacun."
    clean.trades = list(dict.fromkeys(trades))
    tutors: list[dict[str, str]] = []
    for i, tutor in enumerate(entry.tutors[: LIST_MAX + 1], start=1):
        name = checked_text(
            tutor.get("name", ""),
            field_name=f"tutors.{i}",
            label=f"Tuteur {i}",
            errors=errors,
            required=False,
            limit=NAME_MAX,
        )
        if not name and not tutor.get("email") and not tutor.get("job"):
            continue  # an empty row of the form
        if not name:
            errors[f"tutors.{i}"] = f"Tuteur {i} : le nom est à renseigner."
        job = checked_text(
            tutor.get("job", ""),
            field_name=f"tutors.{i}.job",
            label=f"Fonction du tuteur {i}",
            errors=errors,
            required=False,
            limit=NAME_MAX,
        )
        email = checked_email(
            tutor.get("email", ""),
            field_name=f"tutors.{i}.email",
            label=f"E-mail du tuteur {i}",
            errors=errors,
            required=False,
        )
        tutors.append({"name": name, "job": job, "email": email})
    if len(tutors) > LIST_MAX:
        errors["tutors"] = f"Tuteurs : {LIST_MAX} au plus."
    clean.tutors = tutors
    if errors:
        raise ServiceError(
            "La fiche de la structure d'accueil contient des erreurs : " + " ".join(errors.values()), "invalid", errors
        )
    return clean


def check_offer(entry: OfferEntry, *, today: date) -> OfferEntry:
    errors: dict[str, str] = {}
    trade = checked_text(entry.trade, field_name="trade", label="Métier", errors=errors, required=True, limit=NAME_MAX)
    try:
        places = int(str(entry.places).strip())
        if not 1 <= places <= MAX_PLACES:
            raise ValueError
    except ValueError:
        places = 0
        errors["places"] = f"Nombre de places : un nombre entier de 1 à {MAX_PLACES} ({quoted(entry.places, 20)})."
    periods: list[dict[str, str]] = []
    for i, period in enumerate(entry.periods, start=1):
        start_text, end_text = (period.get("start") or "").strip(), (period.get("end") or "").strip()
        if not start_text and not end_text:
            continue
        try:
            start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
        except ValueError:
            errors[f"periods.{i}"] = f"Période {i} : dates de début et de fin attendues (AAAA-MM-JJ)."
            continue
        if end < start:
            errors[f"periods.{i}"] = f"Période {i} : la fin ({end:%d/%m/%Y}) précède le début ({start:%d/%m/%Y})."
        elif end < today:
            errors[f"periods.{i}"] = f"Période {i} : elle est déjà passée (fin le {end:%d/%m/%Y})."
        else:
            periods.append({"start": start.isoformat(), "end": end.isoformat()})
    if not periods and not any(k.startswith("periods") for k in errors):
        errors["periods"] = "Périodes d'accueil : au moins une période (début et fin)."
    if errors:
        raise ServiceError("L'offre d'immersion contient des erreurs : " + " ".join(errors.values()), "invalid", errors)
    return OfferEntry(trade=trade, places=places, periods=periods)


# --- Who may keep the directory ---------------------------------------------------------------


def may_keep(engine: Engine, actor: Actor) -> bool:
    if actor.role == "admin":
        return True
    organisation = q.get_organisation(engine, organisation_id=actor.organisation_id)
    return actor.role == "caseworker" and organisation is not None and organisation.type in DIRECTORY_KEEPERS


def _require_keeper(engine: Engine, actor: Actor) -> None:
    if not may_keep(engine, actor):
        raise ServiceError(
            "L'annuaire des structures d'accueil est tenu par les partenaires qui prospectent les employeurs "
            "(fédération d'employeurs, conseillers entreprise de France Travail, Cap emploi, Missions locales, "
            "Département, SIAE) : votre organisation ne peut pas le modifier.",
            "forbidden",
        )


def _basin(engine: Engine, basin_id: str) -> str:
    if basin_id not in {b.id for b in views.list_basins(engine)}:
        raise ServiceError(f"Bassin inconnu : {quoted(basin_id, 40)}.", "invalid", {"basin": "Bassin inconnu."})
    return basin_id


def _audit(session: Session, actor: Actor | None, action: str, host_id: str, detail: dict[str, Any]) -> None:
    session.add(
        q.audit_event(
            actor_user_id=actor.user_id if actor else links.LINK_ACTOR,
            actor_org_id=actor.organisation_id if actor else f"{HOST_LINK}:{host_id}",
            action=action,
            detail={"host": host_id, **detail},
        )
    )


_ENTRY_FIELDS = tuple(HostEntry.__dataclass_fields__)


def _fields(entry: HostEntry) -> dict[str, Any]:
    """The columns an entry sets, with what the search reads."""
    return {
        **{name: getattr(entry, name) for name in _ENTRY_FIELDS},
        "search_text": folded(" | ".join([entry.name, entry.sector, *entry.trades])),
        "updated_at": q.now(),
    }


def _fill(row: models.Host, entry: HostEntry) -> None:
    for name, value in _fields(entry).items():
        setattr(row, name, value)


# --- Writes -----------------------------------------------------------------------------------


def add_host(engine: Engine, *, actor: Actor, basin_id: str, entry: HostEntry) -> models.Host:
    """A new host in a basin's directory. The same SIRET twice in a basin is refused, so a retried
    request never adds the host twice."""
    _require_keeper(engine, actor)
    basin_id = _basin(engine, basin_id)
    entry = check_host(entry)
    row = models.Host(
        id=q.new_id("hote"), basin_id=basin_id, added_by_org=actor.organisation_id, created_at=q.now(), **_fields(entry)
    )
    try:
        with session_scope(engine) as session:
            existing = session.exec(
                select(models.Host).where(models.Host.basin_id == basin_id, models.Host.siret == entry.siret)
            ).first()
            if existing is not None:
                raise _already_listed(existing)
            session.add(row)
            _audit(session, actor, "host_added", row.id, {"basin": basin_id, "siret": entry.siret})
    except IntegrityError as error:  # the twin of a double submit won the race
        existing = _by_siret(engine, basin_id, entry.siret)
        if existing is None:
            raise
        raise _already_listed(existing) from error
    return row


def _by_siret(engine: Engine, basin_id: str, siret: str) -> models.Host | None:
    with session_scope(engine) as session:
        return session.exec(
            select(models.Host).where(models.Host.basin_id == basin_id, models.Host.siret == siret)
        ).first()


def _already_listed(host: models.Host) -> ServiceError:
    return ServiceError(
        f"Cette structure (SIRET {host.siret}) est déjà dans l'annuaire de ce bassin : « {quoted(host.name, 60)} ».",
        "conflict",
        {"siret": "Déjà dans l'annuaire de ce bassin."},
    )


def update_host(engine: Engine, *, actor: Actor, host_id: str, entry: HostEntry) -> models.Host:
    _require_keeper(engine, actor)
    entry = check_host(entry)
    with session_scope(engine) as session:
        row = _host(session, host_id)
        if (
            row.siret != entry.siret
            and session.exec(
                select(models.Host).where(models.Host.basin_id == row.basin_id, models.Host.siret == entry.siret)
            ).first()
        ):
            raise ServiceError(
                f"Le SIRET {entry.siret} est déjà celui d'une autre structure de ce bassin.",
                "conflict",
                {"siret": "Déjà dans l'annuaire de ce bassin."},
            )
        _fill(row, entry)
        session.add(row)
        _audit(session, actor, "host_updated", host_id, {})
    return row


def _host(session: Session, host_id: str) -> models.Host:
    row = session.get(models.Host, host_id)
    if row is None:
        raise ServiceError(f"Structure d'accueil inconnue : {quoted(host_id, 40)}.", "not_found")
    return row


def add_offer(
    engine: Engine, *, actor: Actor, host_id: str, entry: OfferEntry, request_id: str | None = None
) -> models.ImmersionOffer:
    """A new immersion offer of a host. With a request id (a form token, an Idempotency-Key), a
    retry answers the offer already made instead of adding a second one."""
    _require_keeper(engine, actor)
    entry = check_offer(entry, today=q.now().date())
    request = open_request(
        engine,
        actor_user_id=actor.user_id,
        request_id=request_id,
        kind="add_offer",
        target=host_id,
        inputs={"trade": entry.trade, "places": entry.places, "periods": entry.periods},
    )
    with session_scope(engine) as session:
        _host(session, host_id)
    return request.create_once(
        models.ImmersionOffer, "offre", lambda session, offer_id: _new_offer(session, actor, host_id, offer_id, entry)
    )


def _new_offer(session: Session, actor: Actor, host_id: str, offer_id: str, entry: OfferEntry) -> models.ImmersionOffer:
    row = models.ImmersionOffer(
        id=offer_id,
        host_id=host_id,
        trade=entry.trade,
        places=int(entry.places),
        periods=entry.periods,
        search_text=folded(entry.trade),
        created_at=q.now(),
    )
    session.add(row)
    _audit(session, actor, "offer_added", host_id, {"offer": offer_id, "trade": entry.trade})
    return row


def close_offer(engine: Engine, *, actor: Actor, offer_id: str) -> models.ImmersionOffer:
    _require_keeper(engine, actor)
    with session_scope(engine) as session:
        row = session.get(models.ImmersionOffer, offer_id)
        if row is None:
            raise ServiceError(f"Offre inconnue : {quoted(offer_id, 40)}.", "not_found")
        if row.active:
            row.active = False
            session.add(row)
            _audit(session, actor, "offer_closed", row.host_id, {"offer": offer_id})
    return row


# --- The host's own link ----------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    host: models.Host
    token: str
    url: str


def invite_host(engine: Engine, *, actor: Actor, host_id: str, public_url: str) -> Invitation:
    """A one-time link (valid HOST_LINK_DAYS days) for the host's contact to complete its entry."""
    _require_keeper(engine, actor)
    with session_scope(engine) as session:
        host = _host(session, host_id)
        token = links.create(
            session,
            purpose=HOST_LINK,
            subject_id=host_id,
            sent_to=host.contact_email,
            created_by=actor.user_id,
            valid_for=timedelta(days=HOST_LINK_DAYS),
        )
        _audit(session, actor, "host_link_created", host_id, {"sent_to": host.contact_email})
    return Invitation(host, token, f"{public_url.rstrip('/')}/accueil/lien/{token}")


def host_for_link(engine: Engine, *, token: str) -> models.Host:
    """The host a link opens (audited); refused when the link is unknown, spent or expired."""
    link = links.open_link(engine, token=token, purpose=HOST_LINK)
    with session_scope(engine) as session:
        return _host(session, link.subject_id)


def complete_through_link(engine: Engine, *, token: str, entry: HostEntry) -> models.Host:
    """The host's own corrections, and the link spent, in one transaction: a refused entry leaves
    the link usable; a replayed one is refused. The SIRET stays the one the partner checked."""
    entry = check_host(entry)
    with session_scope(engine) as session:
        link = links.spend(session, token=token, purpose=HOST_LINK)
        row = _host(session, link.subject_id)
        if entry.siret != row.siret:
            raise ServiceError(
                "Le SIRET ne se modifie pas par ce lien : demandez-le à votre contact.",
                "invalid",
                {"siret": "Ne se modifie pas par ce lien."},
            )
        _fill(row, entry)
        session.add(row)
        _audit(session, None, "host_completed_by_link", row.id, {})
    return row


# --- Reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostListing:
    host: models.Host
    offers: list[models.ImmersionOffer]


def search(
    engine: Engine,
    *,
    basin_id: str | None = None,
    trade: str | None = None,
    page: int = 1,
    size: int = DEFAULT_PAGE_SIZE,
) -> Paged[HostListing]:
    """Hosts of a basin (all basins without one) whose name, sector, trades or open offers match
    `trade` (any case, any accents), by name, with their open offers."""
    where: list[Any] = []
    if basin_id:
        where.append(models.Host.basin_id == basin_id)
    words = folded(trade or "").split()
    for word in words[:5]:
        pattern = f"%{word}%"
        offered = select(models.ImmersionOffer.host_id).where(
            col(models.ImmersionOffer.active).is_(True), col(models.ImmersionOffer.search_text).like(pattern)
        )
        where.append(col(models.Host.search_text).like(pattern) | col(models.Host.id).in_(offered))
    with session_scope(engine) as session:
        hosts, total = views.page_rows(
            select(models.Host).where(*where).order_by(models.Host.name, models.Host.id),
            select(func.count()).select_from(models.Host).where(*where),
            session,
            page,
            size,
        )
        offers = _open_offers(session, [h.id for h in hosts])
    return Paged([HostListing(h, offers.get(h.id, [])) for h in hosts], max(1, page), size, total)


def _open_offers(session: Session, host_ids: list[str]) -> dict[str, list[models.ImmersionOffer]]:
    found: dict[str, list[models.ImmersionOffer]] = {}
    if host_ids:
        for offer in session.exec(
            select(models.ImmersionOffer)
            .where(col(models.ImmersionOffer.host_id).in_(host_ids), col(models.ImmersionOffer.active).is_(True))
            .order_by(col(models.ImmersionOffer.created_at))
        ):
            found.setdefault(offer.host_id, []).append(offer)
    return found


def host_listing(engine: Engine, *, host_id: str) -> HostListing:
    with session_scope(engine) as session:
        host = _host(session, host_id)
        return HostListing(host, _open_offers(session, [host_id]).get(host_id, []))
