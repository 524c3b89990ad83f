"""Administration: the territory (basins, organisations, users and roles), its YAML import, and
in dev mode the captured e-mails."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlmodel import col, func, select
from starlette.responses import Response

from admin_ui.access import record_action
from admin_ui.deps import Engine_, User, get_settings, require_roles, verify_csrf
from admin_ui.web import PAGE_SIZE, flash, page_number, render
from definitions.territory import InvalidTerritory, load_territory
from parcours.settings import Settings
from store import models
from store import queries as q
from store.db import session_scope
from store.views import Paged

router = APIRouter(include_in_schema=False)
AdminOnly = [Depends(require_roles("admin"))]
ROLES = {
    "caseworker": "Conseiller·ère",
    "gto_lead": "Animateur·rice GTO",
    "designer": "Concepteur·rice",
    "admin": "Administrateur·rice",
}


@router.get("/admin", dependencies=AdminOnly)
def territory(request: Request, engine: Engine_) -> Response:
    with session_scope(engine) as session:
        basins = list(session.exec(select(models.Basin).order_by(models.Basin.name)))
        organisations = list(
            session.exec(select(models.Organisation).order_by(models.Organisation.type, models.Organisation.name))
        )
        users_per_org = dict(
            session.exec(select(models.User.organisation_id, func.count()).group_by(models.User.organisation_id)).all()
        )
    direction = q.get_setting(engine, key=q.DIRECTION_EMAIL)
    return render(
        request,
        "admin/territory.html",
        title="Territoire",
        nav="admin",
        basins=basins,
        organisations=organisations,
        users_per_org=users_per_org,
        direction=direction,
    )


@router.post("/admin/territoire", dependencies=[*AdminOnly, Depends(verify_csrf)])
async def import_territory(
    request: Request, engine: Engine_, user: User, file: Annotated[UploadFile, File()]
) -> Response:
    content = await file.read()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(file.filename or "territoire.yaml").name or "territoire.yaml")
        path.write_bytes(content)
        try:
            parsed = load_territory(path)
        except InvalidTerritory as error:
            flash(request, f"Import refusé, rien n'a été modifié : {error}".replace(str(path), path.name), "error")
            return RedirectResponse("/admin", status_code=303)
    counts = q.load_territory(engine, territory=parsed)
    record_action(engine, user, "territory_imported", detail={k: str(v) for k, v in counts.items()})
    flash(
        request,
        f"Territoire « {parsed.name} » importé : {counts['basins']} bassins, {counts['organisations']} organisations, {counts['users']} utilisateurs.",
    )
    return RedirectResponse("/admin", status_code=303)


@router.get("/admin/utilisateurs", dependencies=AdminOnly)
def users(
    request: Request, engine: Engine_, page: int | None = None, organisation: str | None = None, role: str | None = None
) -> Response:
    number = page_number(page)
    where = []
    if organisation:
        where.append(models.User.organisation_id == organisation)
    if role:
        where.append(models.User.role == role)
    with session_scope(engine) as session:
        total = int(session.exec(select(func.count()).select_from(models.User).where(*where)).one())
        rows = list(
            session.exec(
                select(models.User)
                .where(*where)
                .order_by(models.User.email)
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        organisations = list(session.exec(select(models.Organisation).order_by(models.Organisation.name)))
        basins = list(session.exec(select(models.Basin).order_by(models.Basin.name)))
    return render(
        request,
        "admin/users.html",
        title="Utilisateurs",
        nav="users",
        page=Paged(rows, number, PAGE_SIZE, total),
        organisations=organisations,
        basins=basins,
        roles=ROLES,
        filters={"organisation": organisation or "", "role": role or ""},
    )


@router.post("/admin/utilisateurs/{user_id}", dependencies=[*AdminOnly, Depends(verify_csrf)])
def update_user(
    request: Request,
    engine: Engine_,
    admin: User,
    user_id: str,
    role: Annotated[str, Form()],
    organisation: Annotated[str, Form()],
    basin: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    if role not in ROLES:
        flash(request, f"Rôle inconnu : {role}", "error")
        return RedirectResponse("/admin/utilisateurs", status_code=303)
    if role == "gto_lead" and not basin:
        flash(request, "Un·e animateur·rice de GTO doit avoir un bassin.", "error")
        return RedirectResponse("/admin/utilisateurs", status_code=303)
    with session_scope(engine) as session:
        row = session.get(models.User, user_id)
        if row is None:
            raise HTTPException(404, "Utilisateur inconnu.")
        if session.get(models.Organisation, organisation) is None or (
            basin and session.get(models.Basin, basin) is None
        ):
            flash(request, "Organisation ou bassin inconnu.", "error")
            return RedirectResponse("/admin/utilisateurs", status_code=303)
        row.role, row.organisation_id = role, organisation
        row.basin_id = basin or None
        row.active = bool(active)
        session.add(row)
        email = row.email
    record_action(
        engine,
        admin,
        "user_changed",
        detail={
            "user": user_id,
            "role": role,
            "organisation": organisation,
            "active": str(bool(active)),
        },
    )
    flash(request, f"Compte {email} mis à jour.")
    return RedirectResponse("/admin/utilisateurs", status_code=303)


@router.get("/dev/emails")
def captured_emails(
    request: Request,
    engine: Engine_,
    user: User,
    settings: Annotated[Settings, Depends(get_settings)],
    page: int | None = None,
) -> Response:
    """Like a mail catcher, so a demo shows what partners receive (dev mode, or admins)."""
    if settings.mode != "dev" and user.role != "admin":
        raise HTTPException(403, "Les e-mails capturés ne sont visibles qu'en mode développement.")
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
        request, "admin/emails.html", title="E-mails capturés", nav="emails", page=Paged(rows, number, PAGE_SIZE, total)
    )
