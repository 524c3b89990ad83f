"""The person's own space (`/mon-espace`): opened from a one-time link e-mailed by the referent,
for an hour in that browser, showing only that person's data (services/person_space.py). It
shares nothing with the staff's sign-in: a person's session never reads a staff page."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from admin_ui.deps import Engine_, User, get_settings, verify_csrf
from admin_ui.web import attachment, flash, mail_sent, render
from services import passport, person_space
from services.errors import ServiceError

router = APIRouter(include_in_schema=False)
Csrf = [Depends(verify_csrf)]
SESSION_KEY = "person_space"


def _refused(request: Request, error: ServiceError) -> Response:
    return render(
        request, "person/refused.html", status_code=error.status, title="Lien non valide", message=error.message
    )


def _person_id(request: Request) -> str | None:
    """The person whose space this browser opened, while it is open."""
    opened = request.session.get(SESSION_KEY)
    if not isinstance(opened, dict) or float(opened.get("until", 0)) < time.time():
        request.session.pop(SESSION_KEY, None)
        return None
    person_id = opened.get("person_id")
    return person_id if isinstance(person_id, str) else None


def _closed(request: Request) -> Response:
    return render(
        request,
        "person/refused.html",
        status_code=401,
        title="Votre espace est fermé",
        message="Votre espace s'ouvre avec le lien reçu par e-mail. Il se ferme au bout d'une heure : "
        "pour y revenir, demandez un nouveau lien à votre référent.",
    )


@router.get("/mon-espace/lien/{token}")
def link_page(request: Request, engine: Engine_, token: str) -> Response:
    try:
        person_space.check_link(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    return render(request, "person/link.html", title="Mon espace", token=token)


@router.post("/mon-espace/lien/{token}", dependencies=Csrf)
def open_space(request: Request, engine: Engine_, token: str) -> Response:
    try:
        person_id = person_space.open_space(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    request.session.pop("user_id", None)  # a person's session is never a staff one
    request.session[SESSION_KEY] = {"person_id": person_id, "until": person_space.session_until()}
    return RedirectResponse("/mon-espace", status_code=303)


@router.get("/mon-espace")
def space_page(request: Request, engine: Engine_) -> Response:
    person_id = _person_id(request)
    if person_id is None:
        return _closed(request)
    try:
        found = person_space.space(engine, person_id)
    except ServiceError as error:
        return _refused(request, error)
    return render(request, "person/space.html", title="Mon espace", space=found, person_area=True)


@router.get("/mon-espace/donnees.json")
def my_data_json(request: Request, engine: Engine_) -> Response:
    person_id = _person_id(request)
    if person_id is None:
        return _closed(request)
    data = person_space.export_by_the_person(engine, person_id)
    return attachment(json.dumps(data, ensure_ascii=False, indent=2), "application/json", "mes-donnees-parcours.json")


@router.get("/mon-espace/donnees.pdf")
def my_data_pdf(request: Request, engine: Engine_) -> Response:
    person_id = _person_id(request)
    if person_id is None:
        return _closed(request)
    data = person_space.export_by_the_person(engine, person_id)
    return attachment(person_space.export_pdf(data), "application/pdf", "mes-donnees-parcours.pdf")


@router.get("/mon-espace/passeport/{pathway_id}.pdf")
def my_passport(request: Request, engine: Engine_, pathway_id: str) -> Response:
    person_id = _person_id(request)
    if person_id is None:
        return _closed(request)
    try:
        found = person_space.own_passport(engine, person_id, pathway_id)
    except ServiceError as error:
        return _refused(request, error)
    return attachment(passport.pdf(found), "application/pdf", "mon-passeport-savoir-etre.pdf")


@router.post("/mon-espace/accords/passeport", dependencies=Csrf)
def withdraw(request: Request, engine: Engine_) -> Response:
    person_id = _person_id(request)
    if person_id is None:
        return _closed(request)
    if person_space.withdraw_passport_sharing(engine, person_id):
        flash(request, "Votre accord est retiré : votre passeport n'est plus visible que de votre référent.")
    return RedirectResponse("/mon-espace#accords", status_code=303)


@router.post("/mon-espace/fermer", dependencies=Csrf)
def close(request: Request) -> Response:
    request.session.pop(SESSION_KEY, None)
    return render(request, "person/refused.html", title="Espace fermé", message="Votre espace est fermé. À bientôt.")


# --- For the referent organisation ------------------------------------------------------------


@router.post("/parcours/{pathway_id}/espace-personne", dependencies=Csrf)
async def send_link(request: Request, engine: Engine_, user: User, pathway_id: str) -> Response:
    settings = get_settings(request)
    try:
        invitation = person_space.invite(engine, user, pathway_id, public_url=settings.public_url)
    except ServiceError as error:
        flash(request, error.message, "error")
        return RedirectResponse(f"/parcours/{pathway_id}", status_code=303)
    body = (
        f"Bonjour {invitation.person_name},\n\n{user.organisation_name} vous ouvre votre espace Parcours : "
        "votre parcours, vos prochaines étapes et qui contacter, votre passeport savoir-être, vos accords "
        f"et toutes vos données.\n\nOuvrez ce lien (valable {person_space.LINK_DAYS} jours, une seule fois) :\n"
        f"{invitation.url}\n\nSi vous n'attendiez pas ce message, ignorez-le.\n"
    )
    if await mail_sent(settings, to=invitation.email, subject="[Parcours] Votre espace", body=body):
        flash(request, f"Lien vers son espace envoyé à {invitation.email}.")
    else:
        flash(request, f"Le lien n'a pas pu être envoyé à {invitation.email} : réessayez plus tard.", "error")
    return RedirectResponse(f"/parcours/{pathway_id}", status_code=303)


@router.get("/parcours/{pathway_id}/donnees-personne.json")
def referent_export(engine: Engine_, user: User, pathway_id: str) -> Response:
    data = person_space.export_for_the_referent(engine, user, pathway_id)
    return attachment(
        json.dumps(data, ensure_ascii=False, indent=2), "application/json", f"donnees-personne-{pathway_id}.json"
    )
