"""Incidents, for administrators: the pathways that cannot go on by themselves (a read-model
write retried durably, a workflow task that keeps failing), with a "Relancer" button; and the
same in the JSON API (`GET /api/incidents`, `POST /api/incidents/{pathway_id}/retry`). The work
is `services.incidents`, which the CLI calls too."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.responses import Response
from temporalio.service import RPCError

from admin_ui.access import CurrentUser
from admin_ui.api import DENIED, ErrorOut, Page, RefusedOut, bearer, signed_in_as
from admin_ui.deps import Service, User, require_roles, verify_csrf
from admin_ui.web import PAGE_SIZE, flash, page_number, render
from services import incidents
from services.errors import ServiceError

router = APIRouter(include_in_schema=False)
AdminOnly = [Depends(require_roles("admin"))]
log = logging.getLogger("parcours.incidents")

UNREACHABLE = "Le serveur Temporal ne répond pas : les incidents ne peuvent pas être lus pour l'instant."
PATHWAY_ID = Path(max_length=200, description="the pathway's id")


@router.get("/admin/incidents", dependencies=AdminOnly)
async def incidents_page(request: Request, service: Service, page: int | None = None) -> Response:
    try:
        listed = await incidents.list_incidents(service, page=page_number(page), page_size=PAGE_SIZE)
    except RPCError as error:
        log.warning("incidents: Temporal unreachable (%s)", error.message)
        return render(request, "admin/incidents.html", title="Incidents", nav="incidents", page=None, error=UNREACHABLE)
    return render(request, "admin/incidents.html", title="Incidents", nav="incidents", page=listed, error=None)


@router.post("/admin/incidents/{pathway_id}/relancer", dependencies=[*AdminOnly, Depends(verify_csrf)])
async def retry_page(
    request: Request, service: Service, admin: User, pathway_id: Annotated[str, PATHWAY_ID]
) -> Response:
    try:
        message = await incidents.retry(service, pathway_id=pathway_id, actor=admin.actor)
    except ServiceError as error:
        flash(request, f"Relance impossible : {error.message}", "error")
    else:
        flash(request, message)
    return RedirectResponse("/admin/incidents", status_code=303)


# --- JSON API ---------------------------------------------------------------------------------


class IncidentOut(BaseModel):
    pathway_id: str
    kind: Literal["commit", "task"] = Field(
        description="commit: the read model refuses the pathway's writes (retried with backoff); "
        "task: the pathway's workflow task keeps failing (a bug, bad data)"
    )
    kind_label: str = Field(description="the kind, in French")
    since: datetime | None = Field(description="when the incident began")
    error: str = Field(description="what goes wrong, in French, without personal data")
    attempts: int = Field(description="the attempt in progress or next (read-model write or workflow task)")
    next_retry: datetime | None = Field(description="when the next write attempt is due, when known")
    definition_id: str | None
    basin_id: str | None


class RetriedOut(BaseModel):
    message: str


AdminReading = Annotated[CurrentUser, Depends(signed_in_as("admin"))]
AdminActing = Annotated[CurrentUser, Depends(signed_in_as("admin", change=True))]
api = APIRouter(
    dependencies=[Depends(bearer)],
    responses={401: {"model": ErrorOut, "description": "not signed in"}},
    tags=["Incidents"],
)


@api.get("/incidents", response_model=Page[IncidentOut], responses=DENIED)
async def list_incidents(
    user: AdminReading,
    service: Service,
    page: Annotated[int, Query(ge=1, le=incidents.MAX_PAGES)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> dict[str, Any]:
    """Running pathways that cannot go on by themselves (administrators): which, since when,
    the error in French, the attempts."""
    try:
        listed = await incidents.list_incidents(service, page=page, page_size=size)
    except RPCError as error:
        log.warning("incidents: Temporal unreachable (%s)", error.message)
        raise HTTPException(503, UNREACHABLE) from None
    return listed.as_dict([IncidentOut.model_validate(i.as_dict()) for i in listed.items])


@api.post(
    "/incidents/{pathway_id}/retry",
    response_model=RetriedOut,
    responses={
        403: {"model": RefusedOut, "description": "not an administrator"},
        404: {"model": RefusedOut, "description": "unknown pathway"},
        409: {"model": RefusedOut, "description": "the pathway has no incident"},
    },
)
async def retry_incident(pathway_id: Annotated[str, PATHWAY_ID], user: AdminActing, service: Service) -> RetriedOut:
    """Ask the pathway to try again at once (administrators; traced in the audit log)."""
    return RetriedOut(message=await incidents.retry(service, pathway_id=pathway_id, actor=user.actor))
