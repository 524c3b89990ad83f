"""Moving running pathways to a newer version of their definition, shared by the CLI
(`parcours pathways migrate`) and the admin UI: a dry run that reads the read model only, then the
move itself, one `migrate_definition` update per pathway (atomic in the workflow), sent in batches
with a stable update id so a retry never applies twice, busy or slow pathways retried in later
rounds, and one audit event for the whole operation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from definitions.migration import MigrationInputError, check_map, plan_migration, step_ids
from definitions.schema import Definition
from services.errors import ServiceError
from services.pathways import PathwayService
from store import definition_migrations as dm
from store import queries as q
from workflows.contract import OPERATOR, Actor
from workflows.model import MigrateDefinition
from workflows.pathway import PathwayWorkflow

BATCH_SIZE = 20
ROUNDS = 3
UPDATE_TIMEOUT = 30.0
_MAP_ITEM = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*=\s*([a-z][a-z0-9_]*)\s*$")


def update_id(definition_id: str, version: int, pathway_id: str) -> str:
    """Stable per (target version, pathway): a retried request is the same update."""
    return f"migrate-{definition_id}-v{version}-{pathway_id}"


def parse_step_map(pairs: Iterable[str]) -> dict[str, str]:
    """`old_step=new_step` items (CLI options, or lines of the UI's text area)."""
    step_map: dict[str, str] = {}
    for pair in pairs:
        if not pair.strip():
            continue
        match = _MAP_ITEM.match(pair)
        if match is None:
            raise ServiceError(
                f"Correspondance mal formée « {pair.strip()} » : écrivez ancienne_etape=nouvelle_etape.", "invalid"
            )
        old, new = match.groups()
        if old in step_map and step_map[old] != new:
            raise ServiceError(f"L'étape « {old} » a deux correspondances ({step_map[old]}, {new}).", "invalid")
        step_map[old] = new
    return step_map


@dataclass
class PathwayMove:
    """One pathway in a migration: where it is, where it would land, or why it cannot move."""

    pathway_id: str
    basin_id: str
    from_version: int
    status: str  # ready | refused | moved | failed
    where: list[str] = field(default_factory=list)
    landings: list[dict[str, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class MigrationReport:
    definition_id: str
    to_version: int
    step_map: dict[str, str]
    basin_id: str | None
    pathways: list[PathwayMove] = field(default_factory=list)
    rounds: int = 0

    @property
    def from_versions(self) -> list[int]:
        return sorted({p.from_version for p in self.pathways})

    @property
    def counts(self) -> dict[str, int]:
        counts = {"total": len(self.pathways), "ready": 0, "refused": 0, "moved": 0, "failed": 0}
        for move in self.pathways:
            counts[move.status] = counts.get(move.status, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "definition_id": self.definition_id,
            "to_version": self.to_version,
            "from_versions": self.from_versions,
            "step_map": self.step_map,
            "basin_id": self.basin_id,
            "counts": self.counts,
            "pathways": [asdict(p) for p in self.pathways],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationReport:
        return cls(
            definition_id=data["definition_id"],
            to_version=data["to_version"],
            step_map=dict(data.get("step_map") or {}),
            basin_id=data.get("basin_id"),
            pathways=[PathwayMove(**p) for p in data.get("pathways", [])],
        )


def target_definition(engine: Any, *, definition_id: str, to_version: int) -> tuple[Definition, dict[int, Definition]]:
    versions = dm.published_versions(engine, definition_id=definition_id)
    if not versions:
        raise ServiceError(f"Définition inconnue : « {definition_id} ».", "not_found")
    if to_version not in versions:
        known = ", ".join(str(v) for v in versions)
        raise ServiceError(
            f"Version {to_version} de « {definition_id} » introuvable (versions publiées : {known}).", "not_found"
        )
    return versions[to_version], versions


def plan(
    engine: Any, *, definition_id: str, to_version: int, step_map: dict[str, str], basin_id: str | None = None
) -> MigrationReport:
    """The dry run: reads the read model only, changes nothing. Bad input raises ServiceError
    before any pathway is looked at."""
    new, versions = target_definition(engine, definition_id=definition_id, to_version=to_version)
    if basin_id and q.get_basin(engine, basin_id=basin_id) is None:
        raise ServiceError(f"Bassin inconnu : « {basin_id} ».", "not_found")
    others = [v for v in versions if v != to_version]
    old_ids: set[str] = set()
    for version in others:
        old_ids |= step_ids(versions[version])
    try:
        label = "les autres versions" if len(others) != 1 else f"la version {others[0]}"
        check_map(new, step_map, old_ids=old_ids, old_label=label)
    except MigrationInputError as error:
        raise ServiceError(error.message, error.kind) from None
    report = MigrationReport(definition_id=definition_id, to_version=to_version, step_map=step_map, basin_id=basin_id)
    pathways = dm.running_pathways(engine, definition_id=definition_id, to_version=to_version, basin_id=basin_id)
    items = dm.open_items(engine, pathway_ids=[p.id for p in pathways])
    for pathway in pathways:
        move = PathwayMove(pathway.id, pathway.basin_id, pathway.definition_version, "ready")
        move.where = [step for step, kind, _ in items[pathway.id] if kind in ("task", "wait", "group")]
        old = versions.get(pathway.definition_version)
        if old is None:
            move.status, move.reasons = "refused", [f"Version {pathway.definition_version} introuvable."]
        elif pathway.definition_version > to_version:
            move.status = "refused"
            move.reasons = [f"Déjà sur une version plus récente (v{pathway.definition_version})."]
        else:
            known = step_ids(old)
            try:
                result = plan_migration(old, new, {k: v for k, v in step_map.items() if k in known}, items[pathway.id])
            except MigrationInputError as error:
                move.status, move.reasons = "refused", [error.message]
            else:
                move.landings = [{"from": lg.step_id, "to": lg.to_step, "kind": lg.kind} for lg in result.landings]
                move.notes = list(result.notes)
                if not result.ok:
                    move.status, move.reasons = "refused", list(result.refusals)
        report.pathways.append(move)
    return report


async def apply(
    service: PathwayService,
    report: MigrationReport,
    *,
    actor: Actor,
    batch_size: int = BATCH_SIZE,
    rounds: int = ROUNDS,
    retry_delay: float = 1.0,
    on_progress: Callable[[MigrationReport], Any] | None = None,
) -> MigrationReport:
    """Move every `ready` pathway of a dry run: one atomic update each, `batch_size` at a time;
    pathways busy or slow to answer are retried in the next round (same update id). Ends with one
    audit event for the whole operation."""
    if actor.role not in ("admin", "system"):
        raise ServiceError("Seul un administrateur peut déplacer des parcours vers une autre version.", "forbidden")
    new, versions = target_definition(service.engine, definition_id=report.definition_id, to_version=report.to_version)
    old_ids = {v: step_ids(d) for v, d in versions.items()}
    for round_ in range(1, rounds + 1):
        pending = [m for m in report.pathways if m.status in ("ready", "failed")]
        if not pending:
            break
        if round_ > 1:
            await asyncio.sleep(retry_delay * (round_ - 1))
        report.rounds = round_
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            await asyncio.gather(
                *(
                    _move(
                        service, new, report, move, actor, old_ids.get(move.from_version, set()), last=round_ == rounds
                    )
                    for move in batch
                )
            )
            if on_progress is not None:
                outcome = on_progress(report)
                if asyncio.iscoroutine(outcome):
                    await outcome
    counts = report.counts
    q.record_access(
        service.engine,
        actor_user_id=actor.user_id,
        actor_org_id=actor.organisation_id,
        action="definition_migration_applied",
        pathway_id=None,
        detail={
            "definition": report.definition_id,
            "from": ", ".join(f"v{v}" for v in report.from_versions),
            "to": f"v{report.to_version}",
            "step_map": report.step_map,
            "basin": report.basin_id,
            **{k: counts[k] for k in ("total", "moved", "refused", "failed")},
        },
    )
    return report


async def _move(
    service: PathwayService,
    new: Definition,
    report: MigrationReport,
    move: PathwayMove,
    actor: Actor,
    old_ids: set[str],
    *,
    last: bool,
) -> None:
    """One pathway: moved, refused (the workflow said why) or failed (retried next round)."""
    command = MigrateDefinition(
        definition=new,
        step_map={k: v for k, v in report.step_map.items() if k in old_ids},
        actor=actor,
    )
    handle = service.client.get_workflow_handle(move.pathway_id)
    try:
        await asyncio.wait_for(
            handle.execute_update(
                PathwayWorkflow.migrate_definition,
                command,
                id=update_id(report.definition_id, report.to_version, move.pathway_id),
            ),
            timeout=UPDATE_TIMEOUT,
        )
        move.status, move.reasons = "moved", []
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        if _on_target(service, report, move):  # an earlier attempt already moved it
            move.status, move.reasons = "moved", []
        else:
            move.status, move.reasons = "refused", [message]
    except RPCError as error:
        text = str(error).lower()
        if "not found" in text or "completed" in text:
            move.status, move.reasons = "refused", ["Le parcours est clos : il reste sur sa version."]
        else:
            move.status, move.reasons = "failed", [f"Temporal indisponible ou parcours occupé : {error}"]
    except TimeoutError:
        move.status = "failed"
        move.reasons = ["Le parcours n'a pas répondu à temps" + (" (abandonné)." if last else " : nouvel essai.")]


def _on_target(service: PathwayService, report: MigrationReport, move: PathwayMove) -> bool:
    pathway = q.get_pathway(service.engine, pathway_id=move.pathway_id)
    return pathway is not None and pathway.definition_version == report.to_version


async def migrate(
    service: PathwayService,
    *,
    definition_id: str,
    to_version: int,
    step_map: dict[str, str],
    basin_id: str | None = None,
    actor: Actor = OPERATOR,
    dry_run: bool = False,
    on_progress: Callable[[MigrationReport], Any] | None = None,
) -> MigrationReport:
    """Plan, then (unless a dry run) apply: what the CLI calls."""
    if not dry_run and actor.role not in ("admin", "system"):
        raise ServiceError("Seul un administrateur peut déplacer des parcours vers une autre version.", "forbidden")
    report = plan(
        service.engine, definition_id=definition_id, to_version=to_version, step_map=step_map, basin_id=basin_id
    )
    if dry_run:
        return report
    return await apply(service, report, actor=actor, on_progress=on_progress)
