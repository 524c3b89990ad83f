"""Every response's security headers (a Content-Security-Policy with a per-request nonce, no
framing, no MIME sniffing, no referrer outside the site) and a request body size limit (413)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.db import shared_session

MAX_BODY_BYTES = 1024 * 1024
"""1 Mio: far above any form, definition or territory file; anything larger is refused (413)."""

SWAGGER_CDN = "https://cdn.jsdelivr.net"


def content_security_policy(nonce: str, path: str) -> str:
    """Scripts only from this site or carrying this request's nonce; /docs may load Swagger UI."""
    cdn = f" {SWAGGER_CDN}" if path == "/docs" else ""
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'{cdn}",
            f"style-src 'self' 'unsafe-inline'{cdn}",
            "img-src 'self' data:" + (" https://fastapi.tiangolo.com" if cdn else ""),
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityMiddleware:
    """Pure ASGI (streams are not buffered): headers on every HTTP response, 413 past the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        policy = content_security_policy(nonce, scope.get("path", ""))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send_with_headers)
            return
        received, too_large = 0, False

        async def limited_receive() -> Message:
            # Past the limit the application is told the client left; its answer is replaced.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if too_large and not started:
                return
            await send_with_headers(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large or started:
                raise
        if too_large and not started:
            await self._too_large(scope, receive, send_with_headers)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Requête trop volumineuse : {self.max_body_bytes // (1024 * 1024)} Mio au plus."
        response: Response
        if str(scope.get("path", "")).startswith("/api/"):
            response = Response(json.dumps({"detail": message}, ensure_ascii=False), 413, media_type="application/json")
        else:
            response = HTMLResponse(
                f'<!doctype html><html lang="fr"><title>Requête trop volumineuse</title><p>{message}</p></html>', 413
            )
        response.headers["connection"] = "close"
        await response(scope, receive, send)


class OneSessionPerRead:
    """GET and HEAD requests read the database through one session (store.db.shared_session):
    one connection and one transaction per page instead of one per query. Requests that change
    something keep a session per step, since they read the worker's writes after a Temporal call."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        # Entered here, not in a thread, so that the request's context carries it; its end only
        # returns the connection (a ROLLBACK of reads, as the pool does for every connection).
        with shared_session(self.engine):
            await self.app(scope, receive, send)


def docs_page(request: Request, openapi_url: str, title: str) -> Response:
    """Swagger UI, its inline script carrying this request's CSP nonce."""
    page = get_swagger_ui_html(openapi_url=openapi_url, title=title)
    nonce: Any = getattr(request.state, "csp_nonce", "")
    body = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
    return HTMLResponse(body)
