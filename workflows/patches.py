"""Every behaviour change of PathwayWorkflow since release 1.0.0, by patch id (README:
"Changing the interpreter"). A run that took a patch records a marker in its history and lists the
id in its `ParcoursPatches` search attribute; `parcours patches` counts running pathways per id,
so the old branch of a patch can be removed once no running pathway can still need it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Client

WORKING_HOURS = "working-hours"
CALENDAR_AT_CONTINUE_AS_NEW = "calendar-at-continue-as-new"
BOUNDED_COMMITS = "bounded-commits"
COMMIT_AFTER_ACCEPTANCE = "commit-after-acceptance"
DIRECTION_DECIDES = "direction-decides"

PATCHES: dict[str, str] = {
    WORKING_HOURS: (
        "délais en jours ouvrés à l'heure de fermeture, relances et escalades en heures ouvrées, "
        "suspension décomptée en temps ouvré, calendrier de la run (1.1.0)"
    ),
    CALENDAR_AT_CONTINUE_AS_NEW: "un parcours démarré en 1.0.0 reçoit son calendrier à son prochain continue-as-new (1.1.0)",
    BOUNDED_COMMITS: (
        "écriture de la base de lecture bornée (locale ~30 s puis durable), réponse bornée des actions, "
        "incidents visibles, actions jamais à moitié appliquées, minuteries qui ne meurent plus en silence (1.1.0)"
    ),
    COMMIT_AFTER_ACCEPTANCE: (
        "une action n'est écrite dans la base de lecture qu'une fois enregistrée par Temporal : un worker "
        "arrêté net ne laisse plus paraître une action perdue (1.1.0)"
    ),
    DIRECTION_DECIDES: "la direction du SPIE décide elle-même des escalades de niveau 2 (rôle direction)",
}


@dataclass(frozen=True)
class PatchUsage:
    patch_id: str
    description: str
    running_with: int
    running_without: int


async def running_per_patch(client: Client, *, task_queue: str) -> list[PatchUsage]:
    """For each patch, the running pathways that took it and those that did not (the ones whose
    replay may still need the old branch: the patch can be deprecated only when they are 0)."""
    running = f"WorkflowType = 'PathwayWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}'"
    total = (await client.count_workflows(running)).count
    usage = []
    for patch_id, description in PATCHES.items():
        taken = (await client.count_workflows(f"{running} AND ParcoursPatches = '{patch_id}'")).count
        usage.append(PatchUsage(patch_id, description, taken, total - taken))
    return usage
