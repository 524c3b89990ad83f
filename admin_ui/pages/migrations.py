"""Moving running pathways to a newer version of their definition, in two hands: the designer
prepares a migration from a version's page (target version, step map, optional basin) and sees its
dry run; an administrator confirms it and follows its progress. The work itself is
`services.migration`, which the CLI calls too."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from admin_ui.access import CurrentUser, record_action
from admin_ui.deps import Engine_, Service, require_roles, verify_csrf
from admin_ui.pages.designer import all_versions, user_names
from admin_ui.web import basin_names, flash, render
from services import migration as mig
from services.errors import ServiceError
from services.pathways import PathwayService
from store import definition_migrations as dm
from store import models
from store import queries as q
from workflows.contract import Actor

router = APIRouter(include_in_schema=False)
DesignerUser = Annotated[CurrentUser, Depends(require_roles("designer", "admin"))]
AdminUser = Annotated[CurrentUser, Depends(require_roles("admin"))]
log = logging.getLogger("parcours.migrations")

MIGRATION_STATUSES = {
    "prepared": ("Préparée", "fr-badge--info"),
    "running": ("En cours", "fr-badge--new"),
    "done": ("Terminée", "fr-badge--success"),
    "failed": ("Inachevée", "fr-badge--error"),
}
MOVE_STATUSES = {
    "ready": ("Déplaçable", "fr-badge--info"),
    "moved": ("Déplacé", "fr-badge--success"),
    "refused": ("Refusé", "fr-badge--error"),
    "failed": ("En échec", "fr-badge--warning"),
}
_running: set[asyncio.Task[None]] = set()
"""Migrations being applied by this process (kept referenced until they end)."""


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    return render(
        request,
        template,
        status_code=status_code,
        MIGRATION_STATUSES=MIGRATION_STATUSES,
        MOVE_STATUSES=MOVE_STATUSES,
        **context,
    )


def _versions(engine: Any, definition_id: str) -> list[models.DefinitionVersion]:
    rows = all_versions(engine).get(definition_id)
    if not rows:
        raise HTTPException(404, f"Définition inconnue : « {definition_id} ».")
    return rows


def _form_page(
    request: Request,
    engine: Any,
    definition_id: str,
    *,
    values: dict[str, Any],
    report: mig.MigrationReport | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    rows = _versions(engine, definition_id)
    return _page(
        request,
        "designer/migration_new.html",
        status_code=status_code,
        title=f"Déplacer les parcours en cours — {rows[-1].title}",
        nav="definitions",
        definition_id=definition_id,
        latest=rows[-1],
        versions=list(reversed(rows)),
        basin_names=basin_names(engine),
        values=values,
        report=report,
        error=error,
        migrations=dm.list_migrations(engine, definition_id=definition_id, limit=10),
    )


@router.get("/definitions/{definition_id}/migrations/nouvelle")
def new_migration(
    request: Request, engine: Engine_, user: DesignerUser, definition_id: str, version: int | None = None
) -> Response:
    rows = _versions(engine, definition_id)
    values = {"to_version": version or rows[-1].version, "step_map": "", "basin": ""}
    return _form_page(request, engine, definition_id, values=values)


def _plan_from_form(
    engine: Any, definition_id: str, to_version: str, step_map: str, basin: str
) -> tuple[dict[str, Any], mig.MigrationReport]:
    values = {"to_version": to_version, "step_map": step_map, "basin": basin}
    try:
        version = int(to_version)
    except ValueError:
        raise ServiceError("Choisissez la version cible.", "invalid") from None
    report = mig.plan(
        engine,
        definition_id=definition_id,
        to_version=version,
        step_map=mig.parse_step_map(step_map.splitlines()),
        basin_id=basin or None,
    )
    return values, report


def _dry_run(
    request: Request, engine: Any, definition_id: str, to_version: str, step_map: str, basin: str
) -> Response | tuple[dict[str, Any], mig.MigrationReport]:
    """The form's dry run, or the form again with its refusal (422)."""
    _versions(engine, definition_id)
    try:
        return _plan_from_form(engine, definition_id, to_version, step_map, basin)
    except ServiceError as error:
        values = {"to_version": to_version, "step_map": step_map, "basin": basin}
        return _form_page(request, engine, definition_id, values=values, error=error.message, status_code=422)


@router.post("/definitions/{definition_id}/migrations/apercu", dependencies=[Depends(verify_csrf)])
def preview_migration(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    definition_id: str,
    to_version: Annotated[str, Form(max_length=20)] = "",
    step_map: Annotated[str, Form(max_length=20_000)] = "",
    basin: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The dry run: where each running pathway is and where it would land, or why it cannot."""
    planned = _dry_run(request, engine, definition_id, to_version, step_map, basin)
    if isinstance(planned, Response):
        return planned
    values, report = planned
    return _form_page(request, engine, definition_id, values=values, report=report)


@router.post("/definitions/{definition_id}/migrations", dependencies=[Depends(verify_csrf)])
def prepare_migration(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    definition_id: str,
    to_version: Annotated[str, Form(max_length=20)] = "",
    step_map: Annotated[str, Form(max_length=20_000)] = "",
    basin: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Save the migration as prepared (with its dry run), for an administrator to confirm."""
    planned = _dry_run(request, engine, definition_id, to_version, step_map, basin)
    if isinstance(planned, Response):
        return planned
    values, report = planned
    migration = models.DefinitionMigration(
        id=q.new_id("mig"),
        definition_id=definition_id,
        from_versions=report.from_versions,
        to_version=report.to_version,
        step_map=report.step_map,
        basin_id=report.basin_id,
        prepared_by=user.id,
        prepared_at=q.now(),
        status="prepared",
        counts=report.counts,
        report=report.as_dict(),
    )
    dm.save_migration(engine, migration=migration)
    record_action(
        engine,
        user,
        "definition_migration_prepared",
        detail={"migration": migration.id, "definition": definition_id, "to": report.to_version, **report.counts},
    )
    flash(request, f"Migration vers la version {report.to_version} préparée : un administrateur doit la confirmer.")
    return RedirectResponse(f"/migrations/{migration.id}", status_code=303)


def _migration(engine: Any, migration_id: str) -> models.DefinitionMigration:
    row = dm.get_migration(engine, migration_id=migration_id)
    if row is None:
        raise HTTPException(404, f"Migration inconnue : « {migration_id} ».")
    return row


def _detail_context(engine: Any, row: models.DefinitionMigration) -> dict[str, Any]:
    names = user_names(engine)
    return {
        "migration": row,
        "report": mig.MigrationReport.from_dict(row.report) if row.report.get("pathways") is not None else None,
        "error": row.report.get("error"),
        "prepared_by": names.get(row.prepared_by, row.prepared_by),
        "confirmed_by": names.get(row.confirmed_by or "", row.confirmed_by),
        "basin_names": basin_names(engine),
    }


@router.get("/migrations/{migration_id}")
def migration_page(request: Request, engine: Engine_, user: DesignerUser, migration_id: str) -> Response:
    row = _migration(engine, migration_id)
    return _page(
        request,
        "designer/migration.html",
        title=f"Migration de « {row.definition_id} » vers la version {row.to_version}",
        nav="admin_migrations" if user.role == "admin" else "definitions",
        can_confirm=user.role == "admin" and row.status in ("prepared", "failed"),
        **_detail_context(engine, row),
    )


@router.get("/migrations/{migration_id}/progression")
def migration_progress(request: Request, engine: Engine_, user: DesignerUser, migration_id: str) -> Response:
    """htmx: the progress block, polled while the migration runs."""
    row = _migration(engine, migration_id)
    return _page(request, "designer/_migration_progress.html", **_detail_context(engine, row))


@router.post("/migrations/{migration_id}/confirmer", dependencies=[Depends(verify_csrf)])
async def confirm_migration(
    request: Request, engine: Engine_, service: Service, user: AdminUser, migration_id: str
) -> Response:
    row = _migration(engine, migration_id)
    if row.status not in ("prepared", "failed"):
        flash(request, "Cette migration est déjà en cours ou terminée.", "error")
        return RedirectResponse(f"/migrations/{migration_id}", status_code=303)
    dm.update_migration(engine, migration_id=migration_id, status="running", confirmed_by=user.id, confirmed_at=q.now())
    record_action(
        engine,
        user,
        "definition_migration_confirmed",
        detail={"migration": migration_id, "definition": row.definition_id, "to": row.to_version},
    )
    task = asyncio.create_task(run_migration(service, row, user.actor))
    _running.add(task)
    task.add_done_callback(_running.discard)
    flash(request, "Migration confirmée : les parcours sont déplacés par lots, suivez la progression ci-dessous.")
    return RedirectResponse(f"/migrations/{migration_id}", status_code=303)


async def run_migration(service: PathwayService, row: models.DefinitionMigration, actor: Actor) -> None:
    """Plan again (pathways moved on since the dry run), then apply, recording progress; a
    failed or interrupted migration can be confirmed again (update ids are stable)."""
    engine = service.engine

    def progress(report: mig.MigrationReport) -> None:
        dm.update_migration(engine, migration_id=row.id, counts=report.counts, report=report.as_dict())

    try:
        report = mig.plan(
            engine,
            definition_id=row.definition_id,
            to_version=row.to_version,
            step_map=dict(row.step_map),
            basin_id=row.basin_id,
        )
        progress(report)
        report = await mig.apply(service, report, actor=actor, on_progress=progress)
    except ServiceError as error:
        dm.update_migration(
            engine, migration_id=row.id, status="failed", finished_at=q.now(), report={"error": error.message}
        )
        return
    except Exception as error:  # recorded for the administrator, who may confirm again
        log.exception("migration %s", row.id)
        dm.update_migration(
            engine,
            migration_id=row.id,
            status="failed",
            finished_at=q.now(),
            report={"error": f"Erreur inattendue : {error}"},
        )
        return
    dm.update_migration(
        engine,
        migration_id=row.id,
        status="failed" if report.counts["failed"] else "done",
        finished_at=q.now(),
        from_versions=report.from_versions or row.from_versions,
        counts=report.counts,
        report=report.as_dict(),
    )


@router.get("/admin/migrations")
def migrations_list(request: Request, engine: Engine_, user: AdminUser) -> Response:
    names = user_names(engine)
    return _page(
        request,
        "admin/migrations.html",
        title="Migrations de parcours",
        nav="admin_migrations",
        migrations=dm.list_migrations(engine),
        names=names,
    )
