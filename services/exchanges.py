"""Exchange sessions and cross-trainings (issue 12 §7, interconnaissance): GTO meetings, employer
breakfasts, cross-trainings between professionals, exchange sessions. A GTO lead organises them
in their basin, the direction in any basin, with a date, a place and a capacity.

Partners' users register themselves; employers register through a one-time link sent by the
organiser (no account). Registering twice never duplicates (one row per session and e-mail).
Each registrant gets a confirmation and a reminder the working day before at 9:00, as e-mails of
the outbox that every worker's relay sends and retries; cancelling withdraws those not yet sent,
correcting the date or the place tells each registrant and moves their reminder. After the
session the organiser records who attended. Every session exports to iCalendar.

Registrations hold professionals' and employers' contact details, never a person accompanied:
the list is shown to the organisers only, the others see the count and their own registration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
from sqlalchemy import and_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from definitions.durations import PARIS, add_working_days
from parcours.presenters import aware, french_datetime, french_time
from services import links
from services.errors import ServiceError, quoted
from services.hosts import checked_email, checked_text
from services.reading import Viewer
from services.requests import open_request
from store import models, views
from store import queries as q
from store.db import session_scope
from store.views import Paged

KINDS = {
    "gto": "Réunion du GTO",
    "employeurs": "Rencontre employeurs",
    "formation_croisee": "Formation croisée",
    "echange": "Séance d'échange",
}
INVITATION = "exchange_registration"
"""The purpose of an employer's one-time link: register to one session."""
MAX_CAPACITY = 500
TITLE_MAX, PLACE_MAX, DESCRIPTION_MAX = 200, 500, 4000
REMINDER_HOUR = time(9, 0)
"""Registrants are reminded at 9:00 (Paris), the working day before the session."""


@dataclass(frozen=True)
class SessionEntry:
    """A session as typed in a form or an API call (a day, times of day in Paris)."""

    kind: str
    title: str
    basin_id: str
    day: str  # AAAA-MM-JJ
    start: str  # HH:MM
    end: str  # HH:MM
    place: str
    capacity: str | int
    description: str = ""


@dataclass(frozen=True)
class Registrant:
    name: str
    email: str
    organisation: str
    user_id: str | None = None


@dataclass(frozen=True)
class Listing:
    """A session with its count of registrations, and whether the viewer is registered."""

    session: models.ExchangeSession
    registered: int
    mine: bool

    @property
    def full(self) -> bool:
        return self.registered >= self.session.capacity


@dataclass(frozen=True)
class Detail(Listing):
    registrations: list[models.ExchangeRegistration]  # the organisers' view; empty for the others
    may_organise: bool


@dataclass(frozen=True)
class Invitation:
    session: models.ExchangeSession
    email: str
    url: str


def kind_label(kind: str) -> str:
    return KINDS.get(kind, kind)


def started(row: models.ExchangeSession) -> bool:
    return aware(row.starts_at) <= q.now()


def when_label(row: models.ExchangeSession) -> str:
    """« Le 3 décembre 2026 à 9 h 00, jusqu'à 11 h 30 »."""
    return f"Le {french_datetime(row.starts_at)}, jusqu'à {french_time(row.ends_at)}"


def may_organise(viewer: Viewer, basin_id: str | None = None) -> bool:
    """The direction organises in every basin, a GTO lead in their own (without a basin: in one)."""
    return viewer.role == "direction" or (
        viewer.role == "gto_lead" and viewer.basin_id is not None and basin_id in (None, viewer.basin_id)
    )


def _require_organiser(viewer: Viewer, basin_id: str) -> None:
    if not may_organise(viewer, basin_id):
        raise ServiceError(
            "Les rencontres d'un bassin sont organisées par les animateurs de son GTO ou par la direction du SPIE.",
            "forbidden",
        )


# --- Creating and cancelling ----------------------------------------------------------------


def check_session(engine: Engine, entry: SessionEntry, *, now: datetime) -> dict[str, Any]:
    """The session's columns, or a French refusal naming each field that is wrong."""
    errors: dict[str, str] = {}
    if entry.kind not in KINDS:
        errors["kind"] = "Type de rencontre : à choisir dans la liste."
    if entry.basin_id not in {b.id for b in views.list_basins(engine)}:
        errors["basin"] = f"Bassin inconnu : {quoted(entry.basin_id, 40) or 'vide'}."
    title = checked_text(
        entry.title, field_name="title", label="Intitulé", errors=errors, required=True, limit=TITLE_MAX
    )
    place = checked_text(entry.place, field_name="place", label="Lieu", errors=errors, required=True, limit=PLACE_MAX)
    description = checked_text(
        entry.description,
        field_name="description",
        label="Programme",
        errors=errors,
        required=False,
        limit=DESCRIPTION_MAX,
    )
    starts_at = ends_at = None
    try:
        day = date.fromisoformat(entry.day.strip())
    except ValueError:
        errors["day"] = f"Date : à donner au format AAAA-MM-JJ ({quoted(entry.day, 20) or 'vide'})."
    else:
        try:
            starts_at = datetime.combine(day, time.fromisoformat(entry.start.strip()), tzinfo=PARIS)
        except ValueError:
            errors["start"] = f"Heure de début : à donner au format HH:MM ({quoted(entry.start, 10) or 'vide'})."
        try:
            ends_at = datetime.combine(day, time.fromisoformat(entry.end.strip()), tzinfo=PARIS)
        except ValueError:
            errors["end"] = f"Heure de fin : à donner au format HH:MM ({quoted(entry.end, 10) or 'vide'})."
    if starts_at and starts_at <= now:
        errors["day"] = "Date : la rencontre doit être à venir."
    if starts_at and ends_at and ends_at <= starts_at:
        errors["end"] = "Heure de fin : après l'heure de début."
    try:
        capacity = int(str(entry.capacity).strip())
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError
    except ValueError:
        errors["capacity"] = f"Nombre de places : un nombre entier de 1 à {MAX_CAPACITY}."
        capacity = 0
    if errors:
        raise ServiceError("La rencontre n'est pas enregistrée : " + " ".join(errors.values()), "invalid", errors)
    assert starts_at and ends_at
    return {
        "kind": entry.kind,
        "title": title,
        "basin_id": entry.basin_id,
        "starts_at": starts_at.astimezone(UTC),
        "ends_at": ends_at.astimezone(UTC),
        "place": place,
        "capacity": capacity,
        "description": description,
    }


def create(
    engine: Engine, viewer: Viewer, entry: SessionEntry, *, request_id: str | None = None
) -> models.ExchangeSession:
    """A new session. With a request id (the form's token), a retry answers the session already
    created instead of a second one."""
    _require_organiser(viewer, entry.basin_id)
    values = check_session(engine, entry, now=q.now())
    request = open_request(
        engine,
        actor_user_id=viewer.id,
        request_id=request_id,
        kind="create_exchange_session",
        target=entry.basin_id,
        inputs={k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()},
    )

    def write(session: Session, session_id: str) -> models.ExchangeSession:
        row = models.ExchangeSession(id=session_id, created_by=viewer.id, created_at=q.now(), **values)
        session.add(row)
        _audit(session, viewer, "exchange_session_created", row, {"kind": row.kind})
        return row

    return request.create_once(models.ExchangeSession, "rencontre", write)


CHANGEABLE = {
    "kind": "type",
    "title": "intitulé",
    "starts_at": "date et heure de début",
    "ends_at": "heure de fin",
    "place": "lieu",
    "capacity": "nombre de places",
    "description": "programme",
}
"""What an organiser may correct in a session to come (its basin stays), with its French name."""
TOLD = ("title", "starts_at", "ends_at", "place")
"""The changes each registrant is e-mailed about (their reminder is written again)."""


@dataclass(frozen=True)
class Changed:
    session: models.ExchangeSession
    changes: list[str]  # the French names of what changed; empty: nothing did (nothing written)
    told: int  # registrants e-mailed


def change(engine: Engine, viewer: Viewer, session_id: str, entry: SessionEntry, *, public_url: str) -> Changed:
    """Correct a session to come, checked as at its creation; its places never fall below its
    registrations. When its title, date, times or place change, each registrant is e-mailed and
    their reminder moves to the new eve; its calendar event is revised (SEQUENCE). Sending the
    same values again changes nothing and e-mails nobody."""
    with session_scope(engine) as session:
        row = _locked(session, session_id)
        _require_organiser(viewer, row.basin_id)
        if row.cancelled_at is not None:
            raise ServiceError("Cette rencontre est annulée : elle ne se modifie plus.", "conflict")
        if started(row):
            raise ServiceError("Cette rencontre a commencé : elle ne se modifie plus.", "conflict")
        values = check_session(engine, replace(entry, basin_id=row.basin_id), now=q.now())
        registrations = _active(session, row.id)
        if values["capacity"] < len(registrations):
            message = f"Nombre de places : au moins {len(registrations)}, le nombre d'inscrits."
            raise ServiceError(f"La rencontre n'est pas enregistrée : {message}", "invalid", {"capacity": message})
        changed = [name for name in CHANGEABLE if _stored(getattr(row, name)) != _stored(values[name])]
        if not changed:
            return Changed(row, [], 0)
        for name in changed:
            setattr(row, name, values[name])
        row.revision += 1
        session.add(row)
        told = registrations if any(name in TOLD for name in changed) else []
        if told:
            _withdraw_reminders(
                session,
                and_(
                    col(models.Notification.pathway_id) == _outbox_group(row),
                    col(models.Notification.kind) == "exchange_rappel",
                ),
            )
        labels = [CHANGEABLE[name] for name in changed]
        intro = f"La rencontre à laquelle vous êtes inscrit a changé ({', '.join(labels)}). La voici à jour."
        now = q.now()
        for registration in told:
            agenda = _agenda_line_sent(session, row, registration, public_url)
            session.add(_mail(row, registration, "modification", now, _text(row, intro, agenda), stamp=now))
            session.add_all(_reminder(row, registration, agenda, stamp=now))
        _audit(session, viewer, "exchange_session_changed", row, {"changed": changed, "told": len(told)})
        return Changed(row, labels, len(told))


def _stored(value: Any) -> Any:
    """A value as it compares once stored (the database gives datetimes back naive on SQLite)."""
    return aware(value) if isinstance(value, datetime) else value


def cancel(engine: Engine, viewer: Viewer, session_id: str) -> models.ExchangeSession:
    """Cancel a session to come: its reminders are withdrawn and every registrant is told."""
    with session_scope(engine) as session:
        row = _locked(session, session_id)
        _require_organiser(viewer, row.basin_id)
        if row.cancelled_at is None:
            if started(row):
                raise ServiceError("Cette rencontre a déjà eu lieu : elle ne s'annule plus.", "conflict")
            row.cancelled_at = q.now()
            session.add(row)
            _withdraw_reminders(session, models.Notification.pathway_id == _outbox_group(row))
            for registration in _active(session, row.id):
                session.add(_mail(row, registration, "annulation", q.now(), _cancelled_text(row)))
            _audit(session, viewer, "exchange_session_cancelled", row, {})
        return row


def _locked(session: Session, session_id: str) -> models.ExchangeSession:
    """The session's row, locked until the transaction ends: an UPDATE that changes nothing takes
    the row's lock on PostgreSQL and the database's write lock on SQLite (where a SELECT takes
    none), so the writes to one session run one after the other: two registrations for the last
    place never both get it, a registration never slips past a cancellation."""
    table = models.ExchangeSession
    session.execute(update(table).where(col(table.id) == session_id).values(id=col(table.id)))
    return _session(session, session_id)


def _session(session: Session, session_id: str) -> models.ExchangeSession:
    row = session.get(models.ExchangeSession, session_id)
    if row is None:
        raise ServiceError(f"Rencontre inconnue : {quoted(session_id, 40)}.", "not_found")
    return row


def _audit(
    session: Session, viewer: Viewer | None, action: str, row: models.ExchangeSession, detail: dict[str, Any]
) -> None:
    session.add(
        q.audit_event(
            actor_user_id=viewer.id if viewer else links.LINK_ACTOR,
            actor_org_id=viewer.organisation_id if viewer else f"{INVITATION}:{row.id}",
            action=action,
            detail={"session": row.id, "basin": row.basin_id, **detail},
        )
    )


# --- Reading ----------------------------------------------------------------------------------


def listing(
    engine: Engine,
    viewer_email: str,
    *,
    basin_id: str | None = None,
    kind: str | None = None,
    past: bool = False,
    page: int = 1,
    size: int = views.DEFAULT_PAGE_SIZE,
) -> Paged[Listing]:
    """Sessions to come (soonest first), or past ones (latest first), of a basin or all."""
    now = q.now()
    where: list[Any] = [
        col(models.ExchangeSession.starts_at) < now if past else col(models.ExchangeSession.starts_at) >= now
    ]
    if basin_id:
        where.append(models.ExchangeSession.basin_id == basin_id)
    if kind:
        where.append(models.ExchangeSession.kind == kind)
    order = col(models.ExchangeSession.starts_at).desc() if past else col(models.ExchangeSession.starts_at)
    with session_scope(engine) as session:
        rows, total = views.page_rows(
            select(models.ExchangeSession).where(*where).order_by(order, models.ExchangeSession.id),
            select(func.count()).select_from(models.ExchangeSession).where(*where),
            session,
            page,
            size,
        )
        items = _listings(session, rows, viewer_email)
    return Paged(items, max(1, page), size, total)


def _listings(session: Session, rows: list[models.ExchangeSession], viewer_email: str) -> list[Listing]:
    ids = [r.id for r in rows]
    counts: dict[str, int] = {}
    mine: set[str] = set()
    if ids:
        active = col(models.ExchangeRegistration.cancelled_at).is_(None)
        in_sessions = col(models.ExchangeRegistration.session_id).in_(ids)
        counts = dict(
            session.exec(
                select(models.ExchangeRegistration.session_id, func.count())
                .where(in_sessions, active)
                .group_by(models.ExchangeRegistration.session_id)
            ).all()
        )
        mine = set(
            session.exec(
                select(models.ExchangeRegistration.session_id).where(
                    in_sessions, active, models.ExchangeRegistration.email == viewer_email.lower()
                )
            )
        )
    return [Listing(r, counts.get(r.id, 0), r.id in mine) for r in rows]


def detail(engine: Engine, viewer: Viewer, viewer_email: str, session_id: str) -> Detail:
    with session_scope(engine) as session:
        row = _session(session, session_id)
        (found,) = _listings(session, [row], viewer_email)
        organiser = may_organise(viewer, row.basin_id)
        registrations = (
            list(
                session.exec(
                    select(models.ExchangeRegistration)
                    .where(models.ExchangeRegistration.session_id == row.id)
                    .order_by(
                        col(models.ExchangeRegistration.cancelled_at).is_not(None), models.ExchangeRegistration.name
                    )
                )
            )
            if organiser
            else []
        )
    return Detail(found.session, found.registered, found.mine, registrations, organiser)


def next_gto_meeting(engine: Engine, basin_id: str) -> Listing | None:
    """The basin's next GTO meeting not cancelled, if one is planned (the GTO agenda's date)."""
    with session_scope(engine) as session:
        row = session.exec(
            select(models.ExchangeSession)
            .where(
                models.ExchangeSession.basin_id == basin_id,
                models.ExchangeSession.kind == "gto",
                col(models.ExchangeSession.cancelled_at).is_(None),
                col(models.ExchangeSession.ends_at) >= q.now(),
            )
            .order_by(col(models.ExchangeSession.starts_at))
        ).first()
        return _listings(session, [row], "")[0] if row else None


def _active(session: Session, session_id: str) -> list[models.ExchangeRegistration]:
    return list(
        session.exec(
            select(models.ExchangeRegistration).where(
                models.ExchangeRegistration.session_id == session_id,
                col(models.ExchangeRegistration.cancelled_at).is_(None),
            )
        )
    )


# --- Registering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    registration: models.ExchangeRegistration
    new: bool  # False: the registration was there already (nothing written, no e-mail)


def register(
    engine: Engine, session_id: str, registrant: Registrant, *, public_url: str, viewer: Viewer | None = None
) -> Registered:
    """A partner's user registers (their own name and e-mail, from their account)."""
    with session_scope(engine) as session:
        row = _locked(session, session_id)
        done = _register(session, row, registrant, public_url=public_url, calendar_url="")
        if done.new:
            _audit(session, viewer, "exchange_registered", row, {"registration": done.registration.id})
        return done


def _register(
    session: Session,
    row: models.ExchangeSession,
    registrant: Registrant,
    *,
    public_url: str,
    calendar_url: str,
) -> Registered:
    """The registration (an active one is answered as is: registering twice never duplicates),
    within the capacity, with its confirmation and reminder put in the outbox."""
    if row.cancelled_at is not None:
        raise ServiceError("Cette rencontre est annulée : les inscriptions sont closes.", "conflict")
    if started(row):
        raise ServiceError("Cette rencontre a commencé : les inscriptions sont closes.", "conflict")
    email = registrant.email.strip().lower()
    existing = session.exec(
        select(models.ExchangeRegistration).where(
            models.ExchangeRegistration.session_id == row.id, models.ExchangeRegistration.email == email
        )
    ).first()
    if existing is not None and existing.cancelled_at is None:
        return Registered(existing, new=False)
    if len(_active(session, row.id)) >= row.capacity:
        raise ServiceError(f"Cette rencontre est complète ({row.capacity} places).", "conflict")
    registration = existing or models.ExchangeRegistration(
        id=q.new_id("inscription"), session_id=row.id, email=email, name="", organisation=""
    )
    registration.name, registration.organisation = registrant.name.strip(), registrant.organisation.strip()
    registration.user_id = registrant.user_id
    registration.registered_at, registration.cancelled_at, registration.attended = q.now(), None, None
    session.add(registration)
    session.flush()
    for mail in _registration_mails(row, registration, public_url=public_url, calendar_url=calendar_url):
        session.add(mail)
    return Registered(registration, new=True)


def unregister(engine: Engine, session_id: str, email: str, *, viewer: Viewer) -> models.ExchangeRegistration:
    """Withdraw one's own registration before the session (its reminder is withdrawn too)."""
    with session_scope(engine) as session:
        row = _locked(session, session_id)
        registration = session.exec(
            select(models.ExchangeRegistration).where(
                models.ExchangeRegistration.session_id == row.id,
                models.ExchangeRegistration.email == email.strip().lower(),
                col(models.ExchangeRegistration.cancelled_at).is_(None),
            )
        ).first()
        if registration is None:
            raise ServiceError("Vous n'êtes pas inscrit à cette rencontre.", "not_found")
        if started(row):
            raise ServiceError("Cette rencontre a commencé : l'inscription ne se retire plus.", "conflict")
        registration.cancelled_at = q.now()
        session.add(registration)
        _withdraw_reminders(
            session,
            and_(
                col(models.Notification.pathway_id) == _outbox_group(row),
                col(models.Notification.key).startswith(f"rencontre:{registration.id}:", autoescape=True),
            ),
        )
        _audit(session, viewer, "exchange_unregistered", row, {"registration": registration.id})
        return registration


# --- Employers, through a one-time link -----------------------------------------------------


def invite_employer(
    engine: Engine, viewer: Viewer, session_id: str, email: str, *, public_url: str, request_id: str | None = None
) -> Invitation | None:
    """A one-time link for an employer to register (valid until the session starts). With a
    request id (the form's token), a retry, or the twin of a double click, makes no second link
    and sends nothing: None (the request is recorded in the link's transaction)."""
    errors: dict[str, str] = {}
    email = checked_email(email, field_name="email", label="E-mail de l'employeur", errors=errors, required=True)
    if errors:
        raise ServiceError(errors["email"], "invalid", errors)
    request = open_request(
        engine,
        actor_user_id=viewer.id,
        request_id=request_id,
        kind="invite_employer",
        target=session_id,
        inputs={"email": email},
    )
    try:
        with session_scope(engine) as session:
            row = _locked(session, session_id)
            _require_organiser(viewer, row.basin_id)
            if row.cancelled_at is not None or started(row):
                raise ServiceError("Cette rencontre est annulée ou passée : on n'y invite plus.", "conflict")
            token = links.create(
                session,
                purpose=INVITATION,
                subject_id=row.id,
                sent_to=email,
                created_by=viewer.id,
                valid_for=aware(row.starts_at) - q.now(),
            )
            _audit(session, viewer, "exchange_invitation_created", row, {"link": links.digest(token)[:12]})
            request.finish_in(session, {"session_id": row.id})
    except IntegrityError:
        if request.answered_by_twin():  # a double click: the first one's link went alone
            return None
        raise
    return Invitation(row, email, f"{public_url.rstrip('/')}/rencontres/lien/{token}")


def session_for_link(engine: Engine, token: str, *, used_ok: bool = False) -> tuple[models.ExchangeSession, str]:
    """The session a link opens and the address it was sent to (audited); refused when unknown,
    spent (unless `used_ok`: the calendar file after registering), expired, or its session
    cancelled (the calendar file still says so)."""
    link = links.open_link(engine, token=token, purpose=INVITATION, spent_ok=used_ok)
    with session_scope(engine) as session:
        row = _session(session, link.subject_id)
    if row.cancelled_at is not None and not used_ok:
        raise ServiceError("Cette rencontre est annulée : les inscriptions sont closes.", "conflict")
    return row, link.sent_to


def register_through_link(
    engine: Engine, token: str, *, name: str, organisation: str, public_url: str
) -> models.ExchangeRegistration:
    """The employer's registration and the link spent, in one transaction: a refused form leaves
    the link usable; a replayed one is refused."""
    errors: dict[str, str] = {}
    name = checked_text(name, field_name="name", label="Nom", errors=errors, required=True, limit=TITLE_MAX)
    organisation = checked_text(
        organisation, field_name="organisation", label="Entreprise", errors=errors, required=True, limit=TITLE_MAX
    )
    if errors:
        raise ServiceError("L'inscription n'est pas enregistrée : " + " ".join(errors.values()), "invalid", errors)
    with session_scope(engine) as session:
        link = links.spend(session, token=token, purpose=INVITATION)
        row = _locked(session, link.subject_id)
        done = _register(
            session,
            row,
            Registrant(name=name, email=link.sent_to, organisation=organisation),
            public_url=public_url,
            calendar_url=f"{public_url.rstrip('/')}/rencontres/lien/{token}/rencontre.ics",
        )
        _audit(session, None, "exchange_registered_by_link", row, {"registration": done.registration.id})
        return done.registration


# --- Attendance -------------------------------------------------------------------------------


def record_attendance(engine: Engine, viewer: Viewer, session_id: str, present: set[str]) -> models.ExchangeSession:
    """Who came, once the session has begun (recorded again to correct it; each time audited)."""
    with session_scope(engine) as session:
        row = _locked(session, session_id)
        _require_organiser(viewer, row.basin_id)
        if row.cancelled_at is not None:
            raise ServiceError("Cette rencontre est annulée : pas de présences à relever.", "conflict")
        if not started(row):
            raise ServiceError(
                f"Les présences se relèvent une fois la rencontre commencée ({french_datetime(aware(row.starts_at))}).",
                "conflict",
            )
        registrations = _active(session, row.id)
        unknown = present - {r.id for r in registrations}
        if unknown:
            raise ServiceError(
                f"Inscription inconnue pour cette rencontre : {quoted(sorted(unknown)[0], 40)}.", "invalid"
            )
        for registration in registrations:
            registration.attended = registration.id in present
            session.add(registration)
        row.attendance_recorded_at, row.attendance_recorded_by = q.now(), viewer.id
        session.add(row)
        _audit(
            session,
            viewer,
            "exchange_attendance_recorded",
            row,
            {"present": len(present), "registered": len(registrations)},
        )
        return row


# --- E-mails ----------------------------------------------------------------------------------


def _outbox_group(row: models.ExchangeSession) -> str:
    """The outbox groups a session's e-mails as it groups a pathway's (its `pathway_id`)."""
    return f"rencontre:{row.id}"


def reminder_moment(row: models.ExchangeSession) -> datetime:
    """9:00 (Paris) on the working day before the session."""
    day_before = add_working_days(aware(row.starts_at).astimezone(PARIS), -1).date()
    return datetime.combine(day_before, REMINDER_HOUR, tzinfo=PARIS).astimezone(UTC)


def _agenda_line(row: models.ExchangeSession, public_url: str, calendar_url: str) -> str:
    """The e-mails' last line: the employer's own calendar link, or the session's page."""
    if calendar_url:
        return f"Ajouter à votre agenda : {calendar_url}"
    return f"La rencontre dans Parcours : {public_url.rstrip('/')}/rencontres/{row.id}"


def _agenda_line_sent(
    session: Session, row: models.ExchangeSession, registration: models.ExchangeRegistration, public_url: str
) -> str:
    """The agenda line of the registrant's confirmation: an employer's calendar link is kept
    nowhere else (only its hash is), and it keeps serving the session as it is now."""
    confirmation = session.exec(
        select(models.Notification)
        .where(
            col(models.Notification.key).startswith(f"rencontre:{registration.id}:confirmation:", autoescape=True),
        )
        .order_by(col(models.Notification.created_at).desc())
    ).first()
    if confirmation is not None and confirmation.body.rstrip("\n").count("\n"):
        return confirmation.body.rstrip("\n").rsplit("\n", 1)[1]
    return _agenda_line(row, public_url, "")


def _text(row: models.ExchangeSession, intro: str, agenda_line: str) -> str:
    return (
        f"Bonjour,\n\n{intro}\n\n{kind_label(row.kind)} : {row.title}\n{when_label(row)}\nLieu : {row.place}\n\n"
        f"{agenda_line}\n"
    )


def _cancelled_text(row: models.ExchangeSession) -> str:
    return (
        f"Bonjour,\n\nLa rencontre à laquelle vous étiez inscrit est annulée.\n\n{kind_label(row.kind)} : {row.title}\n"
        f"Prévue le {french_datetime(aware(row.starts_at))}\nLieu : {row.place}\n"
    )


def _mail(
    row: models.ExchangeSession,
    registration: models.ExchangeRegistration,
    kind: str,
    due: datetime,
    body: str,
    *,
    stamp: datetime | None = None,
) -> models.Notification:
    """One e-mail to a registrant, keyed by the registration, its kind and `stamp` (by default
    the registration's moment: one of each kind per registration; a change gives its own)."""
    subjects = {
        "confirmation": f"[Parcours] Inscription confirmée : {row.title}",
        "rappel": f"[Parcours] Rappel : {row.title}, {french_datetime(aware(row.starts_at))}",
        "annulation": f"[Parcours] Rencontre annulée : {row.title}",
        "modification": f"[Parcours] Rencontre modifiée : {row.title}, {french_datetime(aware(row.starts_at))}",
    }
    moment = aware(stamp or registration.registered_at).strftime("%Y%m%d%H%M%S%f")  # type: ignore[arg-type]
    return models.Notification(
        key=f"rencontre:{registration.id}:{kind}:{moment}",
        kind=f"exchange_{kind}",
        pathway_id=_outbox_group(row),
        task_id=row.id,
        recipients=[registration.email],
        subject=subjects[kind],
        body=body,
        status="pending",
        created_at=q.now(),
        next_attempt_at=due,
    )


def _registration_mails(
    row: models.ExchangeSession, registration: models.ExchangeRegistration, *, public_url: str, calendar_url: str
) -> list[models.Notification]:
    """The confirmation now, and the reminder."""
    agenda = _agenda_line(row, public_url, calendar_url)
    confirmation = _text(row, "Votre inscription à cette rencontre est enregistrée.", agenda)
    return [_mail(row, registration, "confirmation", q.now(), confirmation), *_reminder(row, registration, agenda)]


def _reminder(
    row: models.ExchangeSession,
    registration: models.ExchangeRegistration,
    agenda: str,
    *,
    stamp: datetime | None = None,
) -> list[models.Notification]:
    """The reminder at its moment, unless that moment has passed (then none)."""
    moment = reminder_moment(row)
    if moment <= q.now():
        return []
    body = _text(row, "Pour rappel, vous êtes inscrit à cette rencontre.", agenda)
    return [_mail(row, registration, "rappel", moment, body, stamp=stamp)]


def _withdraw_reminders(session: Session, which: Any) -> None:
    """Confirmations and reminders not sent yet are withdrawn (kept, marked `withdrawn`, for
    the record)."""
    session.execute(
        update(models.Notification)
        .where(
            which,
            col(models.Notification.status) == "pending",
            col(models.Notification.kind) != "exchange_annulation",
        )
        .values(status="withdrawn")
    )


# --- iCalendar ----------------------------------------------------------------------------


def ical(sessions: list[models.ExchangeSession], *, public_url: str) -> bytes:
    """The sessions as an iCalendar file (RFC 5545, by the `icalendar` library): one event each,
    with a stable UID so that a calendar updates the event instead of adding it twice."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Parcours//Rencontres du SPIE//FR")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Rencontres du SPIE")
    host = public_url.split("//", 1)[-1].split("/", 1)[0] or "parcours"
    for row in sessions:
        event = icalendar.Event()
        event.add("uid", f"{row.id}@{host}")
        event.add("dtstamp", q.now())  # when this copy was made (RFC 5545)
        event.add("dtstart", aware(row.starts_at))
        event.add("dtend", aware(row.ends_at))
        event.add("summary", f"{kind_label(row.kind)} : {row.title}")
        event.add("location", row.place)
        event.add("description", row.description)
        event.add("url", f"{public_url.rstrip('/')}/rencontres/{row.id}")
        event.add("status", "CANCELLED" if row.cancelled_at else "CONFIRMED")
        event.add("sequence", row.revision + (1 if row.cancelled_at else 0))
        calendar.add_component(event)
    return bytes(calendar.to_ical())


def upcoming_sessions(engine: Engine, *, basin_id: str | None = None) -> list[models.ExchangeSession]:
    """Every session to come or of the last day (cancelled ones included: a calendar learns they
    are off)."""
    where: list[Any] = [col(models.ExchangeSession.ends_at) >= q.now() - timedelta(days=1)]
    if basin_id:
        where.append(models.ExchangeSession.basin_id == basin_id)
    with session_scope(engine) as session:
        return list(
            session.exec(select(models.ExchangeSession).where(*where).order_by(col(models.ExchangeSession.starts_at)))
        )


def session_row(engine: Engine, session_id: str) -> models.ExchangeSession:
    with session_scope(engine) as session:
        return _session(session, session_id)
