"""Administration: the territory (basins, organisations, users and roles), its YAML import, and
in dev mode the captured e-mails."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlmodel import col, func, select
from starlette.responses import Response

from admin_ui.deps import Engine_, User, get_settings, require_roles, verify_csrf
from admin_ui.web import PAGE_SIZE, flash, page_number, render
from parcours.settings import Settings
from services import administration
from services.administration import ROLES
from services.errors import ServiceError
from store import models
from store.db import session_scope
from store.views import Paged

router = APIRouter(include_in_schema=False)
AdminOnly = [Depends(require_roles("admin"))]


@router.get("/admin", dependencies=AdminOnly)
def territory(request: Request, engine: Engine_) -> Response:
    view = administration.overview(engine)
    return render(
        request,
        "admin/territory.html",
        title="Territoire",
        nav="admin",
        basins=view.basins,
        organisations=view.organisations,
        users_per_org=view.users_per_org,
        direction=view.direction,
    )


@router.post("/admin/territoire", dependencies=[*AdminOnly, Depends(verify_csrf)])
async def import_territory(
    request: Request, engine: Engine_, user: User, file: Annotated[UploadFile, File()]
) -> Response:
    content = await file.read()
    try:
        parsed, counts = administration.import_territory(
            engine, content=content, filename=file.filename, actor=user.actor
        )
    except ServiceError as error:
        flash(request, error.message, "error")
        return RedirectResponse("/admin", status_code=303)
    flash(
        request,
        f"Territoire « {parsed.name} » importé : {counts['basins']} bassins, {counts['organisations']} organisations, {counts['users']} utilisateurs.",
    )
    return RedirectResponse("/admin", status_code=303)


@router.get("/admin/utilisateurs", dependencies=AdminOnly)
def users(
    request: Request, engine: Engine_, page: int | None = None, organisation: str | None = None, role: str | None = None
) -> Response:
    return render(
        request,
        "admin/users.html",
        title="Utilisateurs",
        nav="users",
        page=administration.list_users(
            engine, page=page_number(page), page_size=PAGE_SIZE, organisation=organisation, role=role
        ),
        organisations=administration.organisations(engine),
        basins=administration.basins(engine),
        roles=ROLES,
        filters={"organisation": organisation or "", "role": role or ""},
    )


@router.post("/admin/utilisateurs", dependencies=[*AdminOnly, Depends(verify_csrf)])
def create_user(
    request: Request,
    engine: Engine_,
    admin: User,
    email: Annotated[str, Form(max_length=254)],
    name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=40)],
    organisation: Annotated[str, Form(max_length=100)],
    basin: Annotated[str, Form(max_length=100)] = "",
    active: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    try:
        created = administration.create_user(
            engine,
            actor=admin.actor,
            email=email,
            name=name,
            organisation=organisation,
            role=role,
            basin=basin,
            active=bool(active),
        )
    except ServiceError as error:
        flash(request, f"Compte non créé : {error.message}", "error")
        return RedirectResponse("/admin/utilisateurs", status_code=303)
    flash(
        request,
        f"Compte {created.email} créé. Mot de passe : lien de connexion par e-mail, ou `parcours users set-password`.",
    )
    return RedirectResponse("/admin/utilisateurs", status_code=303)


@router.post("/admin/utilisateurs/{user_id}", dependencies=[*AdminOnly, Depends(verify_csrf)])
def update_user(
    request: Request,
    engine: Engine_,
    admin: User,
    user_id: str,
    role: Annotated[str, Form(max_length=40)],
    organisation: Annotated[str, Form(max_length=100)],
    name: Annotated[str | None, Form(max_length=200)] = None,
    basin: Annotated[str, Form(max_length=100)] = "",
    active: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    try:
        changed = administration.update_user(
            engine,
            actor=admin.actor,
            user_id=user_id,
            name=name,
            organisation=organisation,
            role=role,
            basin=basin,
            active=bool(active),
        )
    except ServiceError as error:
        if error.kind == "not_found":
            raise HTTPException(404, error.message) from None
        flash(request, f"Compte non modifié : {error.message}", "error")
        return RedirectResponse("/admin/utilisateurs", status_code=303)
    flash(request, f"Compte {changed.email} mis à jour.")
    return RedirectResponse("/admin/utilisateurs", status_code=303)


def dev_mode_only(settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Captured e-mails hold one-time sign-in links: the page does not exist outside dev mode."""
    if settings.mode != "dev":
        raise HTTPException(404, "Page introuvable.")


@router.get("/dev/emails", dependencies=[Depends(dev_mode_only), *AdminOnly])
def captured_emails(
    request: Request,
    engine: Engine_,
    settings: Annotated[Settings, Depends(get_settings)],
    page: int | None = None,
) -> Response:
    """Like a mail catcher, so a demo shows what partners receive (dev mode, administrators only)."""
    number = page_number(page)
    with session_scope(engine) as session:
        total = int(session.exec(select(func.count()).select_from(models.CapturedEmail)).one())
        rows = list(
            session.exec(
                select(models.CapturedEmail)
                .order_by(col(models.CapturedEmail.id).desc())
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
    return render(
        request,
        "admin/emails.html",
        title="E-mails capturés",
        nav="emails",
        page=Paged(rows, number, PAGE_SIZE, total),
        where_emails_go=administration.where_emails_go(settings),
        emails_captured=administration.emails_captured(settings),
    )
