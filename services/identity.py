"""Identity, written once for the pages, the JSON API and the CLI: passwords (argon2), one-time
sign-in links, browser sessions and API tokens that can be revoked, and sign-in rate limits
shared by every UI process (kept in the read model, not in a process's memory).

A user's `session_version` is carried in every session and API token and checked on every
request: bumping it (sign-out, password change, deactivation) ends them all at once."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from activities.mailer import send_email
from parcours.presenters import aware
from parcours.settings import Settings
from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import session_scope

log = logging.getLogger(__name__)

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
LOGIN_LINK_MINUTES = 15
API_TOKEN_SECONDS = 12 * 3600
SESSION_IDLE_SECONDS = 8 * 3600
"""A browser session unused for this long ends (the signed cookie's max age)."""
SESSION_ABSOLUTE_SECONDS = 12 * 3600
"""A browser session ends this long after signing in, however busy."""

SIGN_IN_FAILURES = 5
"""Failed passwords for one address from one client before sign-in is refused for the window."""
LINK_REQUESTS_PER_ADDRESS = 3
LINK_REQUESTS_PER_CLIENT = 10
RATE_WINDOW = timedelta(minutes=15)

PASSWORD_FAILURE = "password_failure"
LINK_REQUEST = "link_request"


class SignInRefused(ServiceError):
    """Sign-in refused: wrong credentials (401) or too many attempts (429, with Retry-After)."""

    STATUS = {**ServiceError.STATUS, "unauthorized": 401, "rate_limited": 429}

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, kind)
        self.retry_after = int(RATE_WINDOW.total_seconds()) if kind == "rate_limited" else None


# --- Passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"le mot de passe doit compter au moins {MIN_PASSWORD_LENGTH} caractères")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        _hasher.hash("timing-equaliser")  # same cost whether or not the user exists
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(engine: Engine, *, email: str, password: str) -> None:
    """A new password; the user's open sessions and API tokens end (CLI `users set-password`)."""
    password_hash = hash_password(password)
    with session_scope(engine) as session:
        row = session.exec(select(models.User).where(models.User.email == email.strip().lower())).first()
        if row is None:
            raise ValueError(f"utilisateur inconnu : {email}")
        row.password_hash = password_hash
        revoke(row)
        session.add(row)


def authenticate(engine: Engine, *, email: str, password: str) -> models.User | None:
    """The active user with this e-mail and password, or None (same cost either way)."""
    user = q.get_user_by_email(engine, email=email)
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.active:
        return None
    return user


# --- Revocation -----------------------------------------------------------------------------


def revoke(user: models.User) -> None:
    """End every session and API token of this user (the caller saves the row): sign-out,
    password change, deactivation."""
    user.session_version = (user.session_version or 1) + 1


def revoke_sessions(engine: Engine, *, user_id: str) -> None:
    with session_scope(engine) as session:
        row = session.get(models.User, user_id)
        if row is not None:
            revoke(row)
            session.add(row)


def _live_user_id(engine: Engine, user_id: Any, version: Any) -> str | None:
    """The id if the user exists, is active and still at this session version."""
    if not isinstance(user_id, str) or not isinstance(version, int):
        return None
    with session_scope(engine) as session:
        row = session.get(models.User, user_id)
        if row is None or not row.active or row.session_version != version:
            return None
        return row.id


# --- Client address and rate limits ----------------------------------------------------------


def client_address(peer: str | None, headers: Mapping[str, str], trusted_header: str | None) -> str:
    """The client's address: the socket peer, or, behind a reverse proxy, only the header the
    settings name (PARCOURS_TRUSTED_PROXY_HEADER; the last address, the one the proxy added).
    X-Forwarded-For is never read otherwise: anyone can send it."""
    if trusted_header:
        value = headers.get(trusted_header.lower()) or headers.get(trusted_header)
        if value:
            candidate = value.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return peer or "inconnu"


def _key(*parts: str) -> str:
    """Rate-limit keys are hashed: no e-mail or address is kept in the table."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _count(engine: Engine, kind: str, key: str, now: datetime) -> int:
    with session_scope(engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(models.SignInAttempt)
                .where(
                    models.SignInAttempt.kind == kind,
                    models.SignInAttempt.key == key,
                    col(models.SignInAttempt.at) > now - RATE_WINDOW,
                )
            ).one()
        )


def _record(engine: Engine, kind: str, *keys: str) -> None:
    now = q.now()
    with session_scope(engine) as session:
        # Forget what has left every window, so the table stays small.
        session.exec(delete(models.SignInAttempt).where(col(models.SignInAttempt.at) <= now - RATE_WINDOW))
        for key in keys:
            session.add(models.SignInAttempt(kind=kind, key=key, at=now))


def _forget(engine: Engine, kind: str, key: str) -> None:
    with session_scope(engine) as session:
        session.exec(
            delete(models.SignInAttempt).where(
                col(models.SignInAttempt.kind) == kind, col(models.SignInAttempt.key) == key
            )
        )


# --- Signing in -----------------------------------------------------------------------------


def _audit_sign_in(engine: Engine, user: models.User, method: str) -> None:
    q.record_access(
        engine,
        actor_user_id=user.id,
        actor_org_id=user.organisation_id,
        action="signed_in",
        pathway_id=None,
        detail={"method": method},
    )


def sign_in_with_password(engine: Engine, *, email: str, password: str, client: str, method: str) -> models.User:
    """The user behind an e-mail and password, or SignInRefused. After SIGN_IN_FAILURES failures
    for one address from one client, refused for RATE_WINDOW (every UI process sees the count)."""
    key = _key(email.strip().lower(), client)
    if _count(engine, PASSWORD_FAILURE, key, q.now()) >= SIGN_IN_FAILURES:
        raise SignInRefused(
            "Trop de tentatives de connexion : réessayez dans 15 minutes, ou demandez un lien de connexion par e-mail.",
            "rate_limited",
        )
    user = authenticate(engine, email=email, password=password)
    if user is None:
        _record(engine, PASSWORD_FAILURE, key)
        raise SignInRefused("Adresse e-mail ou mot de passe incorrect.", "unauthorized")
    _forget(engine, PASSWORD_FAILURE, key)
    _audit_sign_in(engine, user, method)
    return user


def request_link(
    engine: Engine, settings: Settings, *, email: str, client: str
) -> Callable[[], Awaitable[None]] | None:
    """Ask for a one-time sign-in link. Rate-limited per address and per client whether or not
    the address is known; returns the e-mail to send in the background (None for an unknown or
    inactive address) so both answers are the same, in about the same time."""
    address = email.strip().lower()
    now = q.now()
    by_address, by_client = _key("address", address), _key("client", client)
    if (
        _count(engine, LINK_REQUEST, by_address, now) >= LINK_REQUESTS_PER_ADDRESS
        or _count(engine, LINK_REQUEST, by_client, now) >= LINK_REQUESTS_PER_CLIENT
    ):
        raise SignInRefused("Trop de demandes de lien de connexion : réessayez dans 15 minutes.", "rate_limited")
    _record(engine, LINK_REQUEST, by_address, by_client)
    user = q.get_user_by_email(engine, email=address) if address else None
    if user is None or not user.active:
        return None
    token = create_login_token(engine, user_id=user.id)
    name, to = user.name, user.email
    body = (
        f"Bonjour {name},\n\nPour vous connecter à Parcours, ouvrez ce lien (valable {LOGIN_LINK_MINUTES} minutes, "
        f"une seule fois) :\n{settings.public_url}/connexion/lien/{token}\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message.\n"
    )

    async def send() -> None:
        try:
            await send_email(settings, to=[to], subject="[Parcours] Votre lien de connexion", body=body)
        except (aiosmtplib.SMTPException, OSError):
            log.exception("sign-in link e-mail not sent")

    return send


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_login_token(engine: Engine, *, user_id: str) -> str:
    token = secrets.token_urlsafe(32)
    now = q.now()
    with session_scope(engine) as session:
        session.add(
            models.LoginToken(
                token_hash=_digest(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(minutes=LOGIN_LINK_MINUTES),
            )
        )
    return token


def consume_login_token(engine: Engine, *, token: str) -> models.User | None:
    """The user behind a valid, unused, unexpired link; the link is spent."""
    with session_scope(engine) as session:
        row = session.get(models.LoginToken, _digest(token))
        if row is None or row.used_at is not None or row.expires_at is None:
            return None
        expires = aware(row.expires_at)
        if expires < q.now():
            return None
        row.used_at = q.now()
        session.add(row)
        user = session.get(models.User, row.user_id)
        return user if user is not None and user.active else None


def sign_in_with_link(engine: Engine, *, token: str) -> models.User | None:
    user = consume_login_token(engine, token=token)
    if user is not None:
        _audit_sign_in(engine, user, "link")
    return user


# --- Browser sessions -----------------------------------------------------------------------

SESSION_KEYS = ("user_id", "session_version", "signed_in_at")


@dataclass(frozen=True)
class SessionClaims:
    """What a browser session carries about who signed in."""

    user_id: str
    session_version: int
    signed_in_at: float


def open_session(session: MutableMapping[str, Any], user: models.User) -> None:
    """Write a fresh session for this user (keeping only its CSRF token: no session fixation)."""
    csrf = session.get("csrf")
    session.clear()
    if csrf:
        session["csrf"] = csrf
    session["user_id"] = user.id
    session["session_version"] = user.session_version
    session["signed_in_at"] = time.time()


def user_id_from_session(engine: Engine, session: MutableMapping[str, Any]) -> str | None:
    """The signed-in user's id, if the session is younger than SESSION_ABSOLUTE_SECONDS and the
    user is active at the same session version; otherwise the session forgets them."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    signed_in_at = session.get("signed_in_at")
    fresh = isinstance(signed_in_at, int | float) and 0 <= time.time() - signed_in_at < SESSION_ABSOLUTE_SECONDS
    live = _live_user_id(engine, user_id, session.get("session_version")) if fresh else None
    if live is None:
        for key in SESSION_KEYS:
            session.pop(key, None)
    return live


def sign_out(engine: Engine, session: MutableMapping[str, Any]) -> None:
    """End this session, and every other session and token of the same user."""
    user_id = session.get("user_id")
    if isinstance(user_id, str) and user_id_from_session(engine, session) is not None:
        revoke_sessions(engine, user_id=user_id)
    session.clear()


# --- API tokens -----------------------------------------------------------------------------


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="parcours-api")


def api_token(secret: str, user: models.User) -> str:
    return _serializer(secret).dumps({"u": user.id, "v": user.session_version})


def user_id_from_api_token(engine: Engine, secret: str, token: str) -> str | None:
    """The user's id if the token is signed, younger than API_TOKEN_SECONDS, and the user is
    active at the token's session version."""
    try:
        value = _serializer(secret).loads(token, max_age=API_TOKEN_SECONDS)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(value, dict):
        return None
    return _live_user_id(engine, value.get("u"), value.get("v"))


def sign_in_for_api(engine: Engine, settings: Settings, *, email: str, password: str, client: str) -> str:
    """A bearer token for an e-mail and password (same checks and limits as the sign-in page)."""
    user = sign_in_with_password(engine, email=email, password=password, client=client, method="api_token")
    return api_token(settings.secret_key, user)
