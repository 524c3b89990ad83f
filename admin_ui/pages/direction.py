"""The SPIE direction's view across every basin (issue 12 §6): stuck pathways per basin, the
level-2 escalations it decides in the app (on the GTO's decision page, with the same decisions),
and the pathways' evaluations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, require_roles
from admin_ui.web import page_number, render
from services import definitions as service_definitions
from services import reading

router = APIRouter(include_in_schema=False)
Direction = Annotated[CurrentUser, Depends(require_roles("direction", "admin"))]


@router.get("/direction")
def direction_page(request: Request, engine: Engine_, user: Direction, page: int | None = None) -> Response:
    view = reading.direction_view(engine, user, page=page_number(page))
    return render(
        request,
        "direction/home.html",
        title="Direction du SPIE",
        nav="direction",
        view=view,
        definitions=service_definitions.latest_versions(engine),
    )
