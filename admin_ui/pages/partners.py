"""The partner directory (`/partenaires`): every signed-in user searches it; each organisation
keeps its own entry. The rules are in services/partners.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from admin_ui.deps import Engine_, User, verify_csrf
from admin_ui.web import basin_names, flash, form_text, render
from services import partners
from services.errors import ServiceError

router = APIRouter(include_in_schema=False)
CONTACT_ROWS = 3


@router.get("/partenaires")
def directory(request: Request, engine: Engine_, user: User, recherche: str = "", bassin: str = "") -> Response:
    return render(
        request,
        "partners/directory.html",
        title="Partenaires",
        nav="partners",
        found=partners.directory(engine, words=recherche[:200], basin_id=bassin or None),
        gtos=partners.gtos(engine),
        basins=basin_names(engine),
        filters={"recherche": recherche[:200], "bassin": bassin},
    )


@router.get("/partenaires/{organisation_id}")
def partner_page(request: Request, engine: Engine_, user: User, organisation_id: str) -> Response:
    return _page(request, engine, user, organisation_id, errors={})


def _page(
    request: Request,
    engine: Engine_,
    user: User,
    organisation_id: str,
    *,
    errors: dict[str, str],
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    found = partners.partner(engine, organisation_id)
    return render(
        request,
        "partners/partner.html",
        status_code=status_code,
        title=found.organisation.name,
        nav="partners",
        found=found,
        basins=basin_names(engine),
        may_edit=partners.may_edit(user, organisation_id),
        contact_rows=CONTACT_ROWS,
        errors=errors,
        alert=alert,
    )


@router.post("/partenaires/{organisation_id}", dependencies=[Depends(verify_csrf)])
async def update(request: Request, engine: Engine_, user: User, organisation_id: str) -> Response:
    form = await request.form()

    def text(name: str) -> str:
        return form_text(form, name)

    entry = partners.ProfileEntry(
        offer=text("offer"),
        publics=text("publics"),
        access_conditions=text("access_conditions"),
        contacts=[
            {key: text(f"contact_{i}_{key}") for key in ("name", "role", "email", "phone")}
            for i in range(1, CONTACT_ROWS + 1)
        ],
    )
    try:
        partners.update(engine, user, organisation_id, entry)
    except ServiceError as error:
        return _page(
            request, engine, user, organisation_id, errors=error.fields, alert=error.message, status_code=error.status
        )
    flash(request, "Fiche enregistrée.")
    return RedirectResponse(f"/partenaires/{organisation_id}", status_code=303)
