"""Sign-in by password or one-time link, sign-out, and the home redirect."""

from __future__ import annotations

from typing import Annotated

import aiosmtplib
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from activities.mailer import send_email
from admin_ui.access import CurrentUser, record_action
from admin_ui.deps import Engine_, get_settings, optional_user, verify_csrf
from admin_ui.security import LOGIN_LINK_MINUTES, authenticate, consume_login_token, create_login_token
from admin_ui.web import ROLE_HOME, flash, render
from parcours.settings import Settings
from store import queries as q

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str | None:
    """Only local paths: never an open redirect. Browsers read a backslash as a slash, so
    `/\\evil.example` would leave the site as `//evil.example` does."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    return target


def _sign_in(request: Request, user_id: str, role: str, target: str | None) -> Response:
    csrf = request.session.get("csrf")
    request.session.clear()
    if csrf:
        request.session["csrf"] = csrf
    request.session["user_id"] = user_id
    return RedirectResponse(_safe_next(target) or ROLE_HOME.get(role, "/"), status_code=303)


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
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    suivant: Annotated[str, Form()] = "",
) -> Response:
    limiter = request.app.state.sign_in_limiter
    key = f"{email.strip().lower()}|{request.client.host if request.client else ''}"
    if limiter.blocked(key):
        return render(
            request,
            "sign_in.html",
            status_code=429,
            title="Connexion",
            next=suivant,
            email=email,
            error="Trop de tentatives : réessayez dans 15 minutes, ou demandez un lien de connexion par e-mail.",
        )
    user = authenticate(engine, email=email, password=password)
    if user is None:
        limiter.failed(key)
        return render(
            request,
            "sign_in.html",
            status_code=401,
            title="Connexion",
            next=suivant,
            email=email,
            error="Adresse e-mail ou mot de passe incorrect.",
        )
    limiter.succeeded(key)
    record_action(engine, user, "signed_in", detail={"method": "password"})
    return _sign_in(request, user.id, user.role, suivant)


@router.post("/connexion/lien", dependencies=[Depends(verify_csrf)])
async def send_link(
    request: Request,
    engine: Engine_,
    settings: Annotated[Settings, Depends(get_settings)],
    email: Annotated[str, Form()] = "",
) -> Response:
    user = q.get_user_by_email(engine, email=email)
    if user is not None and user.active:
        token = create_login_token(engine, user_id=user.id)
        body = (
            f"Bonjour {user.name},\n\nPour vous connecter à Parcours, ouvrez ce lien (valable {LOGIN_LINK_MINUTES} minutes, une seule fois) :\n"
            f"{settings.public_url}/connexion/lien/{token}\n\nSi vous n'êtes pas à l'origine de cette demande, ignorez ce message.\n"
        )
        try:
            await send_email(settings, to=[user.email], subject="[Parcours] Votre lien de connexion", body=body)
        except (aiosmtplib.SMTPException, OSError):
            return render(
                request,
                "sign_in.html",
                status_code=503,
                title="Connexion",
                email=email,
                error="L'envoi de l'e-mail a échoué : réessayez dans un instant.",
            )
    # The same answer whether or not the address is known: no account enumeration.
    flash(request, "Si cette adresse correspond à un compte, un lien de connexion vient de lui être envoyé.", "info")
    return RedirectResponse("/connexion", status_code=303)


@router.get("/connexion/lien/{token}")
def use_link(request: Request, engine: Engine_, token: str) -> Response:
    user = consume_login_token(engine, token=token)
    if user is None:
        flash(request, "Ce lien de connexion est invalide, expiré ou déjà utilisé : demandez-en un nouveau.", "error")
        return RedirectResponse("/connexion", status_code=303)
    record_action(engine, user, "signed_in", detail={"method": "link"})
    return _sign_in(request, user.id, user.role, None)


@router.post("/deconnexion", dependencies=[Depends(verify_csrf)])
def sign_out(request: Request) -> Response:
    request.session.clear()
    flash(request, "Vous êtes déconnecté·e.", "info")
    return RedirectResponse("/connexion", status_code=303)
