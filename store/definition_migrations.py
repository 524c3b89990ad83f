"""Read-model queries for moving running pathways to a newer definition version, and the
prepared migrations (`definition_migration`). Module-level functions with keyword-only arguments."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from definitions.schema import Definition
from store import models
from store.db import session_scope

RUNNING = ("active", "paused")


def published_versions(engine: Engine, *, definition_id: str) -> dict[int, Definition]:
    """Every published version of a definition, by number."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.DefinitionVersion)
            .where(models.DefinitionVersion.id == definition_id)
            .order_by(col(models.DefinitionVersion.version))
        )
        return {r.version: Definition.model_validate(r.body) for r in rows}


def running_pathways(
    engine: Engine, *, definition_id: str, to_version: int, basin_id: str | None = None
) -> list[models.Pathway]:
    """Pathways of a definition still running (active or paused) on another version than `to_version`."""
    where: list[Any] = [
        models.Pathway.definition_id == definition_id,
        col(models.Pathway.status).in_(RUNNING),
        models.Pathway.definition_version != to_version,
    ]
    if basin_id:
        where.append(models.Pathway.basin_id == basin_id)
    with session_scope(engine) as session:
        return list(session.exec(select(models.Pathway).where(*where).order_by(col(models.Pathway.id))))


def open_items(engine: Engine, *, pathway_ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """The open timeline entries (step id, kind, track) of each pathway, in opening order."""
    found: dict[str, list[tuple[str, str, str]]] = {p: [] for p in pathway_ids}
    with session_scope(engine) as session:
        for start in range(0, len(pathway_ids), 500):
            chunk = pathway_ids[start : start + 500]
            rows = session.exec(
                select(models.PathwayStep)
                .where(col(models.PathwayStep.pathway_id).in_(chunk), models.PathwayStep.status == "open")
                .order_by(col(models.PathwayStep.opened_at), col(models.PathwayStep.id))
            )
            for row in rows:
                found[row.pathway_id].append((row.step_id, row.kind, row.track))
    return found


# --- Prepared migrations ----------------------------------------------------------------------


def save_migration(engine: Engine, *, migration: models.DefinitionMigration) -> None:
    with session_scope(engine) as session:
        session.merge(migration)


def get_migration(engine: Engine, *, migration_id: str) -> models.DefinitionMigration | None:
    with session_scope(engine) as session:
        return session.get(models.DefinitionMigration, migration_id)


def list_migrations(
    engine: Engine, *, definition_id: str | None = None, limit: int = 100
) -> list[models.DefinitionMigration]:
    with session_scope(engine) as session:
        query = select(models.DefinitionMigration)
        if definition_id:
            query = query.where(models.DefinitionMigration.definition_id == definition_id)
        return list(session.exec(query.order_by(col(models.DefinitionMigration.prepared_at).desc()).limit(limit)))


def update_migration(engine: Engine, *, migration_id: str, **values: Any) -> models.DefinitionMigration | None:
    with session_scope(engine) as session:
        row = session.get(models.DefinitionMigration, migration_id)
        if row is None:
            return None
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)
        return row
