"""The admin UI (server-rendered Jinja2 + htmx, French State design system) and the JSON API,
both reading the read model and acting through workflow updates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response
from temporalio.client import Client

from admin_ui import api
from admin_ui.deps import LoginRequired, is_api, optional_user
from admin_ui.middleware import OneSessionPerRead, SecurityMiddleware, docs_page
from admin_ui.pages import (
    admin,
    auth,
    caseworker,
    designer,
    direction,
    evaluation,
    exchanges,
    gto,
    hosts,
    immersions,
    incidents,
    migrations,
    partners,
    person,
)
from admin_ui.web import render
from parcours.settings import Settings
from services.errors import ServiceError, french_validation_message
from services.identity import SESSION_IDLE_SECONDS
from services.pathways import PathwayService

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
DATABASE_DOWN = (
    "Service momentanément indisponible : la base de données ne répond pas. Réessayez dans quelques instants."
)
DATABASE_RETRY_AFTER_SECONDS = 10


def service_factory(
    settings: Settings, engine: Engine, client: Client | None = None
) -> Callable[[], Awaitable[PathwayService]]:
    """Connect to Temporal on first use (the UI starts even if Temporal is still starting)."""
    state: dict[str, PathwayService] = {}
    lock = asyncio.Lock()

    async def get() -> PathwayService:
        async with lock:
            if "service" not in state:
                from services.temporal import connect

                temporal = client or await connect(settings.temporal_address, settings.temporal_namespace)
                state["service"] = PathwayService.from_settings(temporal, engine, settings)
            return state["service"]

    return get


def create_app(
    engine: Engine, settings: Settings, *, client: Client | None = None, service: PathwayService | None = None
) -> FastAPI:
    app = FastAPI(
        title="Parcours",
        description="Parcours d'insertion multi-partenaires : API JSON",
        version="0.2.0",
        docs_url=None,  # served below, its inline script carrying the CSP nonce
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    if service is not None:

        async def fixed() -> PathwayService:
            return service

        app.state.service_factory = fixed
    else:
        app.state.service_factory = service_factory(settings, engine, client)

    app.add_middleware(OneSessionPerRead, engine=engine)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="parcours_session",
        max_age=SESSION_IDLE_SECONDS,  # idle limit; services.identity adds an absolute one
        same_site="lax",
        https_only=settings.mode == "prod",
    )
    app.add_middleware(SecurityMiddleware)  # outermost: every response gets its headers
    assets = settings.assets_dir or NODE_MODULES
    for name, folder in (
        ("dsfr", assets / "@gouvfr" / "dsfr" / "dist"),
        ("htmx", assets / "htmx.org" / "dist"),
        ("elk", assets / "elkjs" / "lib"),  # ELK lays out the definition diagrams (static/diagram.js)
    ):
        if folder.exists():
            app.mount(f"/static/{name}", StaticFiles(directory=folder), name=name)
        else:
            log.warning("front-end assets missing in %s: run `make setup` (npm install)", folder)
    app.mount("/static/app", StaticFiles(directory=Path(__file__).parent / "static"), name="app")

    for router in (
        auth.router,
        caseworker.router,
        gto.router,
        designer.router,
        admin.router,
        migrations.router,
        incidents.router,
        hosts.router,
        person.router,
        immersions.router,
        evaluation.router,
        direction.router,
        partners.router,
        exchanges.router,
    ):
        app.include_router(router)
    app.include_router(api.router, prefix="/api")
    app.include_router(incidents.api, prefix="/api")
    app.include_router(exchanges.api, prefix="/api")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        return docs_page(request, app.openapi_url or "/openapi.json", f"{app.title} — API")

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, error: LoginRequired) -> Response:
        return RedirectResponse(f"/connexion?suivant={error.next_path}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if is_api(request):
            return JSONResponse(
                {"detail": error.detail}, status_code=error.status_code, headers=getattr(error, "headers", None)
            )
        optional_user(request)
        titles = {403: "Accès refusé", 404: "Page introuvable", 401: "Connexion requise", 409: "Action impossible"}
        return render(
            request,
            "error.html",
            status_code=error.status_code,
            title=titles.get(error.status_code, "Erreur"),
            message=error.detail,
        )

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> Response:
        if is_api(request):
            return JSONResponse({"detail": error.message, "fields": error.fields}, status_code=error.status)
        optional_user(request)
        return render(
            request,
            "error.html",
            status_code=error.status,
            title="Action impossible",
            message=error.message,
            fields=error.fields,
        )

    @app.exception_handler(DBAPIError)
    async def database_unavailable(request: Request, error: DBAPIError) -> Response:
        """The read model does not answer (stopped, restarting, unreachable): 503 and a French
        message, never a 500 and its traceback. Other database errors (a constraint, a bug) stay 500."""
        if not database_down(error):
            return await unexpected(request, error)
        log.warning("read model unavailable on %s: %s", request.url.path, str(error).splitlines()[0])
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
        if is_api(request):
            return JSONResponse({"detail": DATABASE_DOWN}, status_code=503, headers=headers)
        response = render(  # no optional_user(): it would ask the database again
            request, "error.html", status_code=503, title="Service momentanément indisponible", message=DATABASE_DOWN
        )
        response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "message": french_validation_message(dict(e)),
            }
            for e in error.errors()
        ]
        if is_api(request):
            return JSONResponse(
                {
                    "detail": "Requête invalide : " + "; ".join(f"{p['field']} : {p['message']}" for p in problems),
                    "errors": problems,
                },
                status_code=422,
            )
        optional_user(request)
        return render(
            request,
            "error.html",
            status_code=422,
            title="Demande invalide",
            message="Certaines valeurs envoyées sont invalides.",
            fields={p["field"]: p["message"] for p in problems},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        if is_api(request):
            return JSONResponse({"detail": "Erreur interne : l'équipe technique est prévenue."}, status_code=500)
        return render(
            request,
            "error.html",
            status_code=500,
            title="Erreur inattendue",
            message="Une erreur inattendue est survenue ; réessayez dans un instant.",
        )

    return app


def database_down(error: DBAPIError) -> bool:
    """Whether a database error means the database is out of reach (connection refused or lost,
    server shutting down, SQLite locked), rather than a refused statement."""
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


def app_from_environment() -> FastAPI:
    """The app of one `parcours ui` worker process (uvicorn's factory, by import string): each
    process reads the PARCOURS_* settings and opens its own read-model engine and Temporal
    connection. `parcours ui` has already refused a wrong setting or an outdated read model."""
    from parcours.settings import load_settings
    from store.db import engine_for

    settings = load_settings()
    return create_app(engine_for(settings.resolved_database_url), settings)
