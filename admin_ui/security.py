"""Sign-in: argon2 password hashes, one-time links, signed API tokens, a sign-in rate limit."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import defaultdict, deque
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from store import models
from store import queries as q
from store.db import session_scope

_hasher = PasswordHasher()
API_TOKEN_SECONDS = 12 * 3600
LOGIN_LINK_MINUTES = 15
MIN_PASSWORD_LENGTH = 12


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
    user = q.get_user_by_email(engine, email=email)
    if user is None:
        raise ValueError(f"utilisateur inconnu : {email}")
    with session_scope(engine) as session:
        row = session.get(models.User, user.id)
        assert row is not None
        row.password_hash = hash_password(password)
        session.add(row)


def authenticate(engine: Engine, *, email: str, password: str) -> models.User | None:
    user = q.get_user_by_email(engine, email=email)
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.active:
        return None
    return user


# --- One-time links ------------------------------------------------------------------------


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
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=q.now().tzinfo)
        if expires < q.now():
            return None
        row.used_at = q.now()
        session.add(row)
        user = session.get(models.User, row.user_id)
        return user if user is not None and user.active else None


# --- API tokens ----------------------------------------------------------------------------


def api_token(secret: str, user_id: str) -> str:
    return URLSafeTimedSerializer(secret, salt="parcours-api").dumps(user_id)


def user_id_from_api_token(secret: str, token: str) -> str | None:
    try:
        value = URLSafeTimedSerializer(secret, salt="parcours-api").loads(token, max_age=API_TOKEN_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    return value if isinstance(value, str) else None


# --- Rate limit ----------------------------------------------------------------------------


class RateLimiter:
    """At most `attempts` failed sign-ins per key in a sliding window (per process)."""

    def __init__(self, attempts: int = 5, window_seconds: float = 900) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, key: str) -> bool:
        failures = self._failures[key]
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        return len(failures) >= self.attempts

    def failed(self, key: str) -> None:
        self._failures[key].append(time.monotonic())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
