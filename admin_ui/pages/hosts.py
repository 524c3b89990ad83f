"""The directory of host structures for immersions: searched by every partner, kept by the
partners who prospect employers, completed by the host itself through a one-time link (a page
without an account). The rules are in services/hosts.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from admin_ui.deps import Engine_, User, get_settings, verify_csrf
from admin_ui.web import PAGE_SIZE, basin_names, flash, form_text, mail_sent, page_number, posted_request_id, render
from services import hosts
from services.errors import ServiceError
from services.hosts import HostEntry, OfferEntry

router = APIRouter(include_in_schema=False)
TUTOR_ROWS = 3
Csrf = [Depends(verify_csrf)]


def host_entry(form: FormData) -> HostEntry:
    """The host form's fields (trades one per line, tutors in numbered rows)."""

    def text(name: str) -> str:
        return form_text(form, name)

    return HostEntry(
        name=text("name"),
        siret=text("siret"),
        address=text("address"),
        sector=text("sector"),
        trades=text("trades").splitlines(),
        accessibility=text("accessibility"),
        contact_name=text("contact_name"),
        contact_email=text("contact_email"),
        contact_phone=text("contact_phone"),
        tutors=[
            {"name": text(f"tutor_{i}_name"), "job": text(f"tutor_{i}_job"), "email": text(f"tutor_{i}_email")}
            for i in range(1, TUTOR_ROWS + 1)
        ],
    )


def form_values(entry: HostEntry) -> dict[str, str]:
    """An entry as the form's fields, to show it again (after a refusal, or to correct it)."""
    values = {
        name: str(getattr(entry, name))
        for name in (
            "name",
            "siret",
            "address",
            "sector",
            "accessibility",
            "contact_name",
            "contact_email",
            "contact_phone",
        )
    }
    values["trades"] = "\n".join(entry.trades)
    for i, tutor in enumerate(entry.tutors[:TUTOR_ROWS], start=1):
        for key in ("name", "job", "email"):
            values[f"tutor_{i}_{key}"] = tutor.get(key, "")
    return values


def _entry_of(host: Any) -> HostEntry:
    return HostEntry(**{name: getattr(host, name) for name in HostEntry.__dataclass_fields__})


def _form_page(
    request: Request,
    engine: Any,
    *,
    title: str,
    action: str,
    values: dict[str, str],
    errors: dict[str, str],
    alert: str | None = None,
    basin: str | None = None,
    status_code: int = 200,
    public: bool = False,
) -> Response:
    return render(
        request,
        "hosts/form.html",
        status_code=status_code,
        title=title,
        nav="hosts",
        action=action,
        values=values,
        errors=errors,
        alert=alert,
        basins=basin_names(engine),
        basin=basin,
        tutor_rows=TUTOR_ROWS,
        public=public,
    )


@router.get("/accueil")
def directory(
    request: Request,
    engine: Engine_,
    user: User,
    bassin: str | None = None,
    metier: str | None = None,
    page: int | None = None,
) -> Response:
    basin = bassin if bassin is not None else (user.basin_id or "")
    found = hosts.search(engine, basin_id=basin or None, trade=metier, page=page_number(page), size=PAGE_SIZE)
    return render(
        request,
        "hosts/directory.html",
        title="Structures d'accueil",
        nav="hosts",
        page=found,
        basins=basin_names(engine),
        filters={"bassin": basin, "metier": metier or ""},
        may_keep=hosts.may_keep(engine, user.actor),
    )


@router.get("/accueil/nouvelle")
def new_host(request: Request, engine: Engine_, user: User, bassin: str | None = None) -> Response:
    if not hosts.may_keep(engine, user.actor):
        flash(request, "Votre organisation ne tient pas l'annuaire des structures d'accueil.", "error")
        return RedirectResponse("/accueil", status_code=303)
    return _form_page(
        request,
        engine,
        title="Ajouter une structure d'accueil",
        action="/accueil/nouvelle",
        values={},
        errors={},
        basin=bassin or user.basin_id,
    )


@router.post("/accueil/nouvelle", dependencies=Csrf)
async def create_host(request: Request, engine: Engine_, user: User) -> Response:
    form = await request.form()
    entry, basin = host_entry(form), str(form.get("basin", ""))
    try:
        host = hosts.add_host(engine, actor=user.actor, basin_id=basin, entry=entry)
    except ServiceError as error:
        return _form_page(
            request,
            engine,
            title="Ajouter une structure d'accueil",
            action="/accueil/nouvelle",
            values=form_values(entry),
            errors=error.fields,
            alert=error.message,
            basin=basin,
            status_code=error.status,
        )
    flash(request, f"« {host.name} » est dans l'annuaire.")
    return RedirectResponse(f"/accueil/{host.id}", status_code=303)


@router.get("/accueil/lien/{token}")
def link_page(request: Request, engine: Engine_, token: str) -> Response:
    """The host's own page, opened from its link (no account): its entry, to complete."""
    try:
        host = hosts.host_for_link(engine, token=token)
    except ServiceError as error:
        return render(
            request, "hosts/link_refused.html", status_code=error.status, title="Lien non valide", message=error.message
        )
    return _form_page(
        request,
        engine,
        title=f"Votre fiche : {host.name}",
        action=f"/accueil/lien/{token}",
        values=form_values(_entry_of(host)),
        errors={},
        public=True,
    )


@router.post("/accueil/lien/{token}", dependencies=Csrf)
async def link_submit(request: Request, engine: Engine_, token: str) -> Response:
    entry = host_entry(await request.form())
    try:
        host = hosts.complete_through_link(engine, token=token, entry=entry)
    except ServiceError as error:
        if error.kind != "invalid":  # the link itself is refused: say so, show nothing of the entry
            return render(
                request,
                "hosts/link_refused.html",
                status_code=error.status,
                title="Lien non valide",
                message=error.message,
            )
        return _form_page(
            request,
            engine,
            title="Votre fiche",
            action=f"/accueil/lien/{token}",
            values=form_values(entry),
            errors=error.fields,
            alert=error.message,
            status_code=error.status,
            public=True,
        )
    return render(request, "hosts/link_done.html", title="Merci", host=host)


@router.get("/accueil/{host_id}")
def host_page(request: Request, engine: Engine_, user: User, host_id: str) -> Response:
    try:
        listing = hosts.host_listing(engine, host_id=host_id)
    except ServiceError as error:
        return render(request, "error.html", status_code=error.status, title="Introuvable", message=error.message)
    return render(
        request,
        "hosts/host.html",
        title=listing.host.name,
        nav="hosts",
        listing=listing,
        basins=basin_names(engine),
        may_keep=hosts.may_keep(engine, user.actor),
        values=form_values(_entry_of(listing.host)),
        errors={},
        tutor_rows=TUTOR_ROWS,
        invitation=request.session.pop("host_invitation", None),
    )


@router.get("/accueil/{host_id}/modifier")
def edit_host(request: Request, engine: Engine_, user: User, host_id: str) -> Response:
    try:
        listing = hosts.host_listing(engine, host_id=host_id)
    except ServiceError as error:
        return render(request, "error.html", status_code=error.status, title="Introuvable", message=error.message)
    return _form_page(
        request,
        engine,
        title=f"Corriger la fiche : {listing.host.name}",
        action=f"/accueil/{host_id}",
        values=form_values(_entry_of(listing.host)),
        errors={},
    )


@router.post("/accueil/{host_id}", dependencies=Csrf)
async def update_host(request: Request, engine: Engine_, user: User, host_id: str) -> Response:
    entry = host_entry(await request.form())
    try:
        host = hosts.update_host(engine, actor=user.actor, host_id=host_id, entry=entry)
    except ServiceError as error:
        return _form_page(
            request,
            engine,
            title="Corriger la fiche",
            action=f"/accueil/{host_id}",
            values=form_values(entry),
            errors=error.fields,
            alert=error.message,
            status_code=error.status,
        )
    flash(request, f"Fiche de « {host.name} » enregistrée.")
    return RedirectResponse(f"/accueil/{host_id}", status_code=303)


@router.post("/accueil/{host_id}/offres", dependencies=Csrf)
async def add_offer(request: Request, engine: Engine_, user: User, host_id: str) -> Response:
    form = await request.form()

    def text(name: str) -> str:
        return form_text(form, name)

    entry = OfferEntry(
        trade=text("trade"),
        places=text("places"),
        periods=[{"start": text(f"start_{i}"), "end": text(f"end_{i}")} for i in (1, 2)],
    )
    request_id = posted_request_id(request, "offer", form.get("request_id"))
    try:
        offer = hosts.add_offer(engine, actor=user.actor, host_id=host_id, entry=entry, request_id=request_id)
    except ServiceError as error:
        flash(request, f"Offre non ajoutée : {error.message}", "error")
        return RedirectResponse(f"/accueil/{host_id}#offres", status_code=303)
    flash(request, f"Offre « {offer.trade} » ajoutée ({offer.places} place(s)).")
    return RedirectResponse(f"/accueil/{host_id}#offres", status_code=303)


@router.post("/accueil/offres/{offer_id}/cloturer", dependencies=Csrf)
def close_offer(request: Request, engine: Engine_, user: User, offer_id: str) -> Response:
    try:
        offer = hosts.close_offer(engine, actor=user.actor, offer_id=offer_id)
    except ServiceError as error:
        flash(request, error.message, "error")
        return RedirectResponse("/accueil", status_code=303)
    flash(request, f"Offre « {offer.trade} » close.")
    return RedirectResponse(f"/accueil/{offer.host_id}#offres", status_code=303)


@router.post("/accueil/{host_id}/lien", dependencies=Csrf)
async def invite(request: Request, engine: Engine_, user: User, host_id: str) -> Response:
    """A one-time link for the host's contact: e-mailed, and shown once to the partner (to give it
    by other means if the e-mail does not arrive)."""
    settings = get_settings(request)
    try:
        invitation = hosts.invite_host(engine, actor=user.actor, host_id=host_id, public_url=settings.public_url)
    except ServiceError as error:
        flash(request, error.message, "error")
        return RedirectResponse(f"/accueil/{host_id}", status_code=303)
    host = invitation.host
    body = (
        f"Bonjour {host.contact_name},\n\n{user.name} ({user.organisation_name}) vous invite à compléter la fiche de "
        f"« {host.name} » dans l'annuaire des structures d'accueil en immersion professionnelle du territoire.\n\n"
        f"Ouvrez ce lien (valable {hosts.HOST_LINK_DAYS} jours, pour un seul enregistrement) :\n{invitation.url}\n\n"
        "Il ne donne accès qu'à votre fiche. Si vous n'attendiez pas ce message, ignorez-le.\n"
    )
    sent = await mail_sent(
        settings, to=host.contact_email, subject="[Parcours] Votre fiche de structure d'accueil", body=body
    )
    request.session["host_invitation"] = {"url": invitation.url, "sent": sent, "to": host.contact_email}
    return RedirectResponse(f"/accueil/{host_id}", status_code=303)
