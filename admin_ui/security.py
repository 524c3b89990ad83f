"""Sign-in lives in services.identity (written once for the pages, the API and the CLI); these
names stay importable from here for scripts written against release 1."""

from __future__ import annotations

from services.identity import (
    API_TOKEN_SECONDS,
    LOGIN_LINK_MINUTES,
    MIN_PASSWORD_LENGTH,
    authenticate,
    consume_login_token,
    create_login_token,
    hash_password,
    set_password,
    verify_password,
)

__all__ = [
    "API_TOKEN_SECONDS",
    "LOGIN_LINK_MINUTES",
    "MIN_PASSWORD_LENGTH",
    "authenticate",
    "consume_login_token",
    "create_login_token",
    "hash_password",
    "set_password",
    "verify_password",
]
