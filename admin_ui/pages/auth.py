"""Sign-in by password or one-time link, sign-out, and the home redirect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, client_of, get_settings, optional_user, verify_csrf
from admin_ui.web import ROLE_HOME, flash, render
from parcours.settings import Settings
from services import identity
from services.identity import SignInRefused
from store import models

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str | None:
    """Only local paths: never an open redirect. Browsers read a backslash as a slash, so
    `/\\evil.example` would leave the site as `//evil.example` does."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    return target


def _sign_in(request: Request, user: models.User, target: str | None) -> Response:
    identity.open_session(request.session, user)
    return RedirectResponse(_safe_next(target) or ROLE_HOME.get(user.role, "/"), status_code=303)


@router.get("/")
def home(user: Annotated[CurrentUser | None, Depends(optional_user)]) -> Response:
    return RedirectResponse(ROLE_HOME.get(user.role, "/connexion") if user else "/connexion", status_code=303)


@router.get("/connexion")
def sign_in_page(request: Request, suivant: str | None = None) -> Response:
    optional_user(request)
    return render(request, "sign_in.html", title="Connexion", next=_safe_next(suivant) or "")


@router.post("/connexion", dependencies=[Depends(verify_csrf)])
def sign_in(
    request: Request,
    engine: Engine_,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    suivant: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        user = identity.sign_in_with_password(
            engine, email=email, password=password, client=client_of(request), method="password"
        )
    except SignInRefused as refused:
        return render(
            request,
            "sign_in.html",
            status_code=refused.status,
            title="Connexion",
            next=suivant,
            email=email,
            error=refused.message,
        )
    return _sign_in(request, user, suivant)


@router.post("/connexion/lien", dependencies=[Depends(verify_csrf)])
def send_link(
    request: Request,
    engine: Engine_,
    settings: Annotated[Settings, Depends(get_settings)],
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    try:
        send = identity.request_link(engine, settings, email=email, client=client_of(request))
    except SignInRefused as refused:
        return render(
            request, "sign_in.html", status_code=refused.status, title="Connexion", email=email, error=refused.message
        )
    if send is not None:
        background.add_task(send)  # after the answer: known and unknown addresses answer alike
    # The same answer whether or not the address is known: no account enumeration.
    flash(request, "Si cette adresse correspond à un compte, un lien de connexion vient de lui être envoyé.", "info")
    return RedirectResponse("/connexion", status_code=303)


@router.get("/connexion/lien/{token}")
def use_link(request: Request, engine: Engine_, token: str) -> Response:
    user = identity.sign_in_with_link(engine, token=token)
    if user is None:
        flash(request, "Ce lien de connexion est invalide, expiré ou déjà utilisé : demandez-en un nouveau.", "error")
        return RedirectResponse("/connexion", status_code=303)
    return _sign_in(request, user, None)


@router.post("/deconnexion", dependencies=[Depends(verify_csrf)])
def sign_out(request: Request, engine: Engine_) -> Response:
    identity.sign_out(engine, request.session)  # this session and the user's others, API tokens too
    flash(request, "Vous êtes déconnecté·e.", "info")
    return RedirectResponse("/connexion", status_code=303)
