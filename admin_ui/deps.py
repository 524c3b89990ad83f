"""Request dependencies: the read model, the pathway service, the signed-in user, roles, CSRF."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.engine import Engine

from admin_ui.access import CurrentUser, load_user
from parcours.settings import Settings
from services import identity
from services.pathways import PathwayService


class LoginRequired(Exception):
    """A page needs a signed-in user: redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_of(request: Request) -> str:
    """The client's address for rate limits: the socket peer, or the trusted proxy's header."""
    peer = request.client.host if request.client else None
    return identity.client_address(peer, request.headers, get_settings(request).trusted_proxy_header)


async def get_service(request: Request) -> PathwayService:
    factory: Callable[[], Awaitable[PathwayService]] = request.app.state.service_factory
    return await factory()


def optional_user(request: Request) -> CurrentUser | None:
    engine, settings = get_engine(request), get_settings(request)
    user_id: str | None = None
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        user_id = identity.user_id_from_api_token(engine, settings.secret_key, authorization[7:].strip())
    elif "session" in request.scope:
        user_id = identity.user_id_from_session(engine, request.session)
    user = load_user(engine, user_id) if user_id else None
    request.state.user = user
    return user


def current_user(request: Request, user: Annotated[CurrentUser | None, Depends(optional_user)]) -> CurrentUser:
    if user is None:
        if is_api(request):
            raise HTTPException(
                401,
                "Authentification requise (en-tête Authorization: Bearer <jeton>).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


def require_roles(*roles: str) -> Callable[[CurrentUser], CurrentUser]:
    labels = {
        "caseworker": "conseillers",
        "gto_lead": "animateurs de GTO",
        "direction": "la direction du SPIE",
        "designer": "concepteurs de parcours",
        "admin": "administrateurs",
    }

    def check(user: Annotated[CurrentUser, Depends(current_user)]) -> CurrentUser:
        if user.role not in roles:
            raise HTTPException(403, "Accès réservé aux " + " et ".join(labels[r] for r in roles) + ".")
        return user

    return check


async def verify_csrf(request: Request) -> None:
    """Every form posted with the session cookie carries the session's CSRF token (field `csrf`
    or header X-CSRF-Token, which htmx sends). API calls with a bearer token are exempt."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.headers.get("authorization", "").lower().startswith(
        "bearer "
    ):
        return
    expected = request.session.get("csrf") if "session" in request.scope else None
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise HTTPException(403, "Jeton de sécurité (CSRF) manquant ou expiré : rechargez la page et recommencez.")


Engine_ = Annotated[Engine, Depends(get_engine)]
Service = Annotated[PathwayService, Depends(get_service)]
User = Annotated[CurrentUser, Depends(current_user)]
