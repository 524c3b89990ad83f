"""Exchange sessions and cross-trainings (`/rencontres`): every signed-in user sees them and
registers; GTO leads and the direction organise and correct them, invite employers, record
attendance; an employer registers through a one-time link (a page without an account). The same,
but the invitation, as a JSON API (`/api/sessions`). The rules are in services/exchanges.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as ApiPath
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from admin_ui.access import CurrentUser
from admin_ui.api import REFUSED, UNKNOWN, ErrorOut, IdempotencyKey, Page, bearer, signed_in_as
from admin_ui.deps import Engine_, User, get_settings, verify_csrf
from admin_ui.web import attachment, basin_names, flash, form_text, mail_sent, page_number, posted_request_id, render
from definitions.durations import PARIS
from parcours.presenters import aware
from services import exchanges
from services.administration import ROLES
from services.errors import ServiceError, quoted
from services.exchanges import KINDS, Registrant, SessionEntry
from store import models, views

router = APIRouter(include_in_schema=False)
Csrf = [Depends(verify_csrf)]
ICAL = "text/calendar; charset=utf-8"


@router.get("/rencontres")
def listing(
    request: Request,
    engine: Engine_,
    user: User,
    bassin: str = "",
    type: str = "",
    passees: bool = False,
    page: int | None = None,
) -> Response:
    found = exchanges.listing(
        engine,
        user.email,
        basin_id=bassin or None,
        kind=type or None,
        past=passees,
        page=page_number(page),
    )
    return render(
        request,
        "exchanges/list.html",
        title="Rencontres passées" if passees else "Rencontres à venir",
        nav="exchanges",
        page=found,
        basins=basin_names(engine),
        kinds=KINDS,
        filters={"bassin": bassin, "type": type, "passees": "1" if passees else ""},
        may_organise=exchanges.may_organise(user),
    )


@router.get("/rencontres.ics")
def calendar(request: Request, engine: Engine_, user: User, bassin: str = "") -> Response:
    """Every session to come (of a basin), for a calendar application."""
    if bassin and bassin not in basin_names(engine):
        raise ServiceError(f"Bassin inconnu : {quoted(bassin, 40)}.", "not_found")
    settings = get_settings(request)
    content = exchanges.ical(
        exchanges.upcoming_sessions(engine, basin_id=bassin or None), public_url=settings.public_url
    )
    return attachment(content, ICAL, f"rencontres{'-' + bassin if bassin else ''}.ics")


def _form_page(
    request: Request,
    engine: Engine_,
    user: User,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    alert: str | None = None,
    status_code: int = 200,
    session: models.ExchangeSession | None = None,
) -> Response:
    """The form that plans a session, or corrects `session` (its basin then stays)."""
    basins = basin_names(engine)
    if user.role != "direction" and session is None:
        basins = {k: v for k, v in basins.items() if k == user.basin_id}
    return render(
        request,
        "exchanges/form.html",
        status_code=status_code,
        title=f"Modifier « {session.title} »" if session else "Organiser une rencontre",
        nav="exchanges",
        values=values,
        errors=errors,
        alert=alert,
        basins=basins,
        kinds=KINDS,
        session=session,
        action=f"/rencontres/{session.id}/modifier" if session else "/rencontres/nouvelle",
    )


FIELDS = ("kind", "title", "basin", "day", "start", "end", "place", "capacity", "description")
"""The session form's fields (`basin` is the entry's `basin_id`)."""


def _entry(values: dict[str, str]) -> SessionEntry:
    return SessionEntry(**{("basin_id" if k == "basin" else k): v for k, v in values.items()})


@router.get("/rencontres/nouvelle")
def new_session(request: Request, engine: Engine_, user: User, type: str = "") -> Response:
    if not exchanges.may_organise(user):
        flash(request, "Les rencontres sont organisées par les animateurs de GTO et la direction du SPIE.", "error")
        return RedirectResponse("/rencontres", status_code=303)
    values = {"kind": type if type in KINDS else "", "basin": user.basin_id or "", "capacity": "30"}
    return _form_page(request, engine, user, values=values, errors={})


@router.post("/rencontres/nouvelle", dependencies=Csrf)
async def create_session(request: Request, engine: Engine_, user: User) -> Response:
    form = await request.form()
    values = {name: form_text(form, name) for name in FIELDS}
    request_id = posted_request_id(request, "exchange", form.get("request_id"))
    try:
        row = exchanges.create(engine, user, _entry(values), request_id=request_id)
    except ServiceError as error:
        return _form_page(
            request, engine, user, values=values, errors=error.fields, alert=error.message, status_code=error.status
        )
    flash(request, f"La rencontre « {row.title} » est programmée.")
    return RedirectResponse(f"/rencontres/{row.id}", status_code=303)


@router.get("/rencontres/lien/{token}")
def link_page(request: Request, engine: Engine_, token: str) -> Response:
    """The employer's page, opened from its link (no account): the session, and a form."""
    try:
        row, sent_to = exchanges.session_for_link(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    return _link_form(request, row, sent_to, token, values={}, errors={})


def _refused(request: Request, error: ServiceError) -> Response:
    return render(
        request, "hosts/link_refused.html", status_code=error.status, title="Lien non valide", message=error.message
    )


def _link_form(
    request: Request,
    row: models.ExchangeSession,
    sent_to: str,
    token: str,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "exchanges/link.html",
        status_code=status_code,
        title=f"Inscription : {row.title}",
        session=row,
        kind=exchanges.kind_label(row.kind),
        sent_to=sent_to,
        token=token,
        values=values,
        errors=errors,
        alert=alert,
    )


@router.post("/rencontres/lien/{token}", dependencies=Csrf)
async def link_register(request: Request, engine: Engine_, token: str) -> Response:
    form = await request.form()
    values = {"name": form_text(form, "name"), "organisation": form_text(form, "organisation")}
    settings = get_settings(request)
    try:
        registration = exchanges.register_through_link(engine, token, public_url=settings.public_url, **values)
    except ServiceError as error:
        if error.kind != "invalid":  # the link or the session refuses: say so, nothing else
            return _refused(request, error)
        row, sent_to = exchanges.session_for_link(engine, token)
        return _link_form(
            request,
            row,
            sent_to,
            token,
            values=values,
            errors=error.fields,
            alert=error.message,
            status_code=error.status,
        )
    row = exchanges.session_row(engine, registration.session_id)
    return render(request, "exchanges/link_done.html", title="Inscription enregistrée", session=row, token=token)


@router.get("/rencontres/lien/{token}/rencontre.ics")
def link_calendar(request: Request, engine: Engine_, token: str) -> Response:
    """The session an employer registered to, for their calendar (the spent link still reads it)."""
    try:
        row, _ = exchanges.session_for_link(engine, token, used_ok=True)
    except ServiceError as error:
        return _refused(request, error)
    return attachment(exchanges.ical([row], public_url=get_settings(request).public_url), ICAL, "rencontre.ics")


@router.get("/rencontres/{session_id}.ics")
def session_calendar(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    row = exchanges.session_row(engine, session_id)
    return attachment(exchanges.ical([row], public_url=get_settings(request).public_url), ICAL, f"{row.id}.ics")


@router.get("/rencontres/{session_id}")
def session_page(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    found = exchanges.detail(engine, user, user.email, session_id)
    row = found.session
    mine = row.kind == "gto" and user.role == "gto_lead" and user.basin_id == row.basin_id
    agenda = views.escalation_list(engine, basin_id=row.basin_id, status="open", size=1).total if mine else None
    return render(
        request,
        "exchanges/session.html",
        title=row.title,
        nav="exchanges",
        found=found,
        kind=exchanges.kind_label(row.kind),
        basin=basin_names(engine).get(row.basin_id, row.basin_id),
        agenda=agenda,
        started=exchanges.started(row),
        invitation=request.session.pop("exchange_invitation", None),
    )


def _back(session_id: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/rencontres/{session_id}{anchor}", status_code=303)


def _act(request: Request, session_id: str, act: Callable[[], object], done: str, anchor: str = "") -> Response:
    """A session's action, its refusal or its success said on the session's page."""
    try:
        act()
    except ServiceError as error:
        flash(request, error.message, "error")
    else:
        flash(request, done)
    return _back(session_id, anchor)


@router.post("/rencontres/{session_id}/inscription", dependencies=Csrf)
def register(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    registrant = Registrant(name=user.name, email=user.email, organisation=user.organisation_name, user_id=user.id)
    public_url = get_settings(request).public_url
    try:
        done = exchanges.register(engine, session_id, registrant, public_url=public_url, viewer=user)
    except ServiceError as error:
        flash(request, error.message, "error")
        return _back(session_id)
    flash(
        request,
        "Vous êtes inscrit. Une confirmation vous est envoyée par e-mail, et un rappel la veille."
        if done.new
        else "Vous étiez déjà inscrit à cette rencontre.",
    )
    return _back(session_id)


@router.post("/rencontres/{session_id}/desinscription", dependencies=Csrf)
def unregister(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    return _act(
        request,
        session_id,
        lambda: exchanges.unregister(engine, session_id, user.email, viewer=user),
        "Votre inscription est retirée.",
    )


@router.post("/rencontres/{session_id}/invitation", dependencies=Csrf)
async def invite(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    """A one-time link for an employer: e-mailed, and shown once to the organiser (to give it by
    other means if the e-mail does not arrive)."""
    form = await request.form()
    settings = get_settings(request)
    try:
        invitation = exchanges.invite_employer(
            engine,
            user,
            session_id,
            form_text(form, "email"),
            public_url=settings.public_url,
            request_id=posted_request_id(request, "invitation", form.get("request_id")),
        )
    except ServiceError as error:
        flash(request, error.message, "error")
        return _back(session_id, "#inviter")
    if invitation is None:
        flash(request, "Cette invitation est déjà partie : aucun second lien n'a été envoyé.")
        return _back(session_id, "#inviter")
    row = invitation.session
    body = (
        f"Bonjour,\n\n{user.name} ({user.organisation_name}) vous invite à une rencontre du service public de "
        f"l'insertion et de l'emploi :\n\n{exchanges.kind_label(row.kind)} : {row.title}\n"
        f"{exchanges.when_label(row)}\nLieu : {row.place}\n\n"
        f"Pour vous inscrire, ouvrez ce lien (une seule inscription, valable jusqu'à la rencontre) :\n{invitation.url}\n\n"
        "Si vous n'attendiez pas ce message, ignorez-le.\n"
    )
    sent = await mail_sent(settings, to=invitation.email, subject=f"[Parcours] Invitation : {row.title}", body=body)
    request.session["exchange_invitation"] = {"url": invitation.url, "sent": sent, "to": invitation.email}
    return _back(session_id, "#inviter")


@router.get("/rencontres/{session_id}/modifier")
def change_form(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    row = exchanges.session_row(engine, session_id)
    if not exchanges.may_organise(user, row.basin_id) or row.cancelled_at or exchanges.started(row):
        flash(request, "Seuls ses organisateurs modifient une rencontre, et avant qu'elle commence.", "error")
        return _back(session_id)
    starts, ends = (aware(moment).astimezone(PARIS) for moment in (row.starts_at, row.ends_at))
    values = {
        "kind": row.kind,
        "title": row.title,
        "basin": row.basin_id,
        "day": starts.date().isoformat(),
        "start": starts.strftime("%H:%M"),
        "end": ends.strftime("%H:%M"),
        "place": row.place,
        "capacity": str(row.capacity),
        "description": row.description,
    }
    return _form_page(request, engine, user, values=values, errors={}, session=row)


@router.post("/rencontres/{session_id}/modifier", dependencies=Csrf)
async def change(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    form = await request.form()
    row = exchanges.session_row(engine, session_id)
    values = {name: form_text(form, name) for name in FIELDS} | {"basin": row.basin_id}
    try:
        changed = exchanges.change(
            engine, user, session_id, _entry(values), public_url=get_settings(request).public_url
        )
    except ServiceError as error:
        if error.kind != "invalid":
            flash(request, error.message, "error")
            return _back(session_id)
        return _form_page(
            request,
            engine,
            user,
            values=values,
            errors=error.fields,
            alert=error.message,
            status_code=error.status,
            session=row,
        )
    if not changed.changes:
        flash(request, "Rien n'a changé : la rencontre est telle quelle.")
    else:
        told = f" ; {changed.told} inscrit(s) prévenu(s) par e-mail" if changed.told else ""
        flash(request, f"Rencontre modifiée ({', '.join(changed.changes)}){told}.")
    return _back(session_id)


@router.post("/rencontres/{session_id}/annulation", dependencies=Csrf)
async def cancel(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    if form_text(await request.form(), "confirme") != "oui":
        flash(request, "Rencontre non annulée : cochez la case qui confirme l'annulation.", "error")
        return _back(session_id, "#annuler")
    return _act(
        request,
        session_id,
        lambda: exchanges.cancel(engine, user, session_id),
        "La rencontre est annulée ; les inscrits en sont prévenus par e-mail.",
    )


@router.post("/rencontres/{session_id}/presences", dependencies=Csrf)
async def attendance(request: Request, engine: Engine_, user: User, session_id: str) -> Response:
    present = {str(value) for value in (await request.form()).getlist("present")}
    return _act(
        request,
        session_id,
        lambda: exchanges.record_attendance(engine, user, session_id, present),
        f"Présences enregistrées : {len(present)} présent(s).",
        "#presences",
    )


# --- JSON API ---------------------------------------------------------------------------------
# The same rules as the pages (services/exchanges.py), for a partner's own tools: list and read the
# sessions, organise them, register. Inviting an employer stays a page (it e-mails a link).


class SessionIn(BaseModel):
    """A session as an organiser plans it (a day and times of day in Paris)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40, description="gto, employeurs, formation_croisee or echange")
    title: str = Field(max_length=exchanges.TITLE_MAX)
    basin: str = Field(max_length=100)
    day: str = Field(max_length=10, description="AAAA-MM-JJ")
    start: str = Field(max_length=5, description="HH:MM, Paris")
    end: str = Field(max_length=5, description="HH:MM, Paris")
    place: str = Field(max_length=exchanges.PLACE_MAX)
    capacity: int = Field(ge=1, le=exchanges.MAX_CAPACITY)
    description: str = Field("", max_length=exchanges.DESCRIPTION_MAX)

    def entry(self) -> SessionEntry:
        return SessionEntry(**self.model_dump(exclude={"basin"}), basin_id=self.basin)


class SessionChangeIn(SessionIn):
    """A session corrected: every field again (its basin stays the same whatever is sent)."""

    basin: str = Field("", max_length=100, description="ignored: a session stays in its basin")


class RegistrationOut(models.Public):
    id: str
    name: str
    organisation: str
    email: str
    employer: bool
    registered_at: datetime | None
    cancelled_at: datetime | None
    attended: bool | None


class SessionOut(models.Public):
    id: str
    kind: str
    kind_label: str
    title: str
    basin: str
    starts_at: datetime
    ends_at: datetime
    place: str
    capacity: int
    description: str
    registered: int = Field(description="active registrations")
    mine: bool = Field(description="whether you are registered")
    cancelled_at: datetime | None
    revision: int = Field(description="how many times it was corrected (its iCalendar SEQUENCE)")


class SessionDetailOut(SessionOut):
    registrations: list[RegistrationOut] | None = Field(description="for its organisers only; null for the others")


class ChangedOut(BaseModel):
    session: SessionOut
    changes: list[str] = Field(description="what changed, in French; empty: nothing did")
    told: int = Field(description="registrants e-mailed about the change")


class AttendanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    present: list[str] = Field(max_length=exchanges.MAX_CAPACITY, description="the registrations present (ids)")


Reading = Annotated[CurrentUser, Depends(signed_in_as(*ROLES))]
Acting = Annotated[CurrentUser, Depends(signed_in_as(*ROLES, change=True))]
SESSION_ID = ApiPath(max_length=100, description="the session's id")
api = APIRouter(
    dependencies=[Depends(bearer)],
    responses={401: {"model": ErrorOut, "description": "not signed in"}},
    tags=["Rencontres"],
)


def _session_out(listing: exchanges.Listing) -> SessionOut:
    row = listing.session
    return SessionOut(
        id=row.id,
        kind=row.kind,
        kind_label=exchanges.kind_label(row.kind),
        title=row.title,
        basin=row.basin_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        place=row.place,
        capacity=row.capacity,
        description=row.description,
        registered=listing.registered,
        mine=listing.mine,
        cancelled_at=row.cancelled_at,
        revision=row.revision,
    )


def _registration_out(registration: models.ExchangeRegistration) -> RegistrationOut:
    return RegistrationOut.model_validate({**registration.model_dump(), "employer": registration.user_id is None})


def _detail_out(found: exchanges.Detail) -> SessionDetailOut:
    registrations = [_registration_out(r) for r in found.registrations]
    return SessionDetailOut(
        **_session_out(found).model_dump(), registrations=registrations if found.may_organise else None
    )


@api.get("/sessions", response_model=Page[SessionOut])
def list_sessions(
    user: Reading,
    engine: Engine_,
    basin: Annotated[str | None, Query(max_length=100, description="a basin id")] = None,
    kind: Annotated[str | None, Query(max_length=40, description="a kind of session")] = None,
    past: Annotated[bool, Query(description="past sessions, latest first (else those to come, soonest first)")] = False,
    page: Annotated[int, Query(ge=1, le=views.MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Exchange sessions and cross-trainings (every signed-in user), with their registrations
    counted and whether you are registered."""
    found = exchanges.listing(engine, user.email, basin_id=basin, kind=kind, past=past, page=page, size=size)
    return found.as_dict([_session_out(listing) for listing in found.items])


@api.post("/sessions", response_model=SessionDetailOut, status_code=201, responses=REFUSED)
def create_session_api(
    body: SessionIn, response: Response, user: Acting, engine: Engine_, key: IdempotencyKey
) -> SessionDetailOut:
    """Plan a session (a GTO lead in their basin, the direction in any). The same request again
    with the same Idempotency-Key answers the session already planned."""
    row = exchanges.create(engine, user, body.entry(), request_id=key)
    response.headers["Location"] = f"/api/sessions/{row.id}"
    return _detail_out(exchanges.detail(engine, user, user.email, row.id))


@api.get("/sessions/{session_id}", response_model=SessionDetailOut, responses=UNKNOWN)
def get_session(session_id: Annotated[str, SESSION_ID], user: Reading, engine: Engine_) -> SessionDetailOut:
    """A session; its registrations (contacts) for its organisers only."""
    return _detail_out(exchanges.detail(engine, user, user.email, session_id))


@api.put("/sessions/{session_id}", response_model=ChangedOut, responses=REFUSED)
def change_session_api(
    request: Request, session_id: Annotated[str, SESSION_ID], body: SessionChangeIn, user: Acting, engine: Engine_
) -> ChangedOut:
    """Correct a session to come (its organisers): its registrants are e-mailed when its title,
    date, times or place change. The same values again change nothing."""
    changed = exchanges.change(engine, user, session_id, body.entry(), public_url=get_settings(request).public_url)
    found = exchanges.detail(engine, user, user.email, session_id)
    return ChangedOut(session=_session_out(found), changes=changed.changes, told=changed.told)


@api.post("/sessions/{session_id}/registration", response_model=RegistrationOut, status_code=201, responses=REFUSED)
def register_api(
    request: Request, response: Response, session_id: Annotated[str, SESSION_ID], user: Acting, engine: Engine_
) -> RegistrationOut:
    """Register yourself (201); already registered: 200 with the same registration."""
    registrant = Registrant(name=user.name, email=user.email, organisation=user.organisation_name, user_id=user.id)
    done = exchanges.register(engine, session_id, registrant, public_url=get_settings(request).public_url, viewer=user)
    if not done.new:
        response.status_code = 200
    return _registration_out(done.registration)


@api.delete("/sessions/{session_id}/registration", response_model=RegistrationOut, responses=REFUSED)
def unregister_api(session_id: Annotated[str, SESSION_ID], user: Acting, engine: Engine_) -> RegistrationOut:
    """Withdraw your registration before the session (its reminder is withdrawn too)."""
    return _registration_out(exchanges.unregister(engine, session_id, user.email, viewer=user))


@api.post("/sessions/{session_id}/cancel", response_model=SessionDetailOut, responses=REFUSED)
def cancel_api(session_id: Annotated[str, SESSION_ID], user: Acting, engine: Engine_) -> SessionDetailOut:
    """Cancel a session to come (its organisers): every registrant is e-mailed."""
    exchanges.cancel(engine, user, session_id)
    return _detail_out(exchanges.detail(engine, user, user.email, session_id))


@api.post("/sessions/{session_id}/attendance", response_model=SessionDetailOut, responses=REFUSED)
def attendance_api(
    session_id: Annotated[str, SESSION_ID], body: AttendanceIn, user: Acting, engine: Engine_
) -> SessionDetailOut:
    """Who came, once the session has begun (its organisers; sent again to correct it)."""
    exchanges.record_attendance(engine, user, session_id, set(body.present))
    return _detail_out(exchanges.detail(engine, user, user.email, session_id))
