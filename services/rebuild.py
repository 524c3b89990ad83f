"""`parcours rebuild`: recreate the read model of running pathways from Temporal, the source of
truth, into an empty or damaged database. Each pathway's state comes from its `state_view` query,
its input from the first event of its current run; services.rebuild_writes writes them. Never deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from services import rebuild_writes
from workflows.model import PathwayInput, PathwayState

RUNNING = "WorkflowType = 'PathwayWorkflow' AND ExecutionStatus = 'Running'"
CONCURRENCY = 8
ATTEMPTS = 5
RPC_TIMEOUT = timedelta(seconds=30)

Progress = Callable[[int, int], None]


class RebuildRefused(Exception):
    """The read model holds data and --force was not given."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class RebuildSummary:
    """What was rebuilt, by count; ids only (no personal data)."""

    running: int = 0
    pathways: int = 0
    tasks: int = 0
    escalations: int = 0
    definitions: int = 0
    persons: int = 0
    failed: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    stale_tasks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = [
            f"Modèle de lecture reconstruit : {self.pathways} parcours en cours sur {self.running}, "
            f"{self.tasks} tâche(s) ouverte(s), {self.escalations} escalade(s) ouverte(s).",
            f"Versions de définitions restaurées : {self.definitions} ; personnes à ré-identifier : {self.persons}.",
        ]
        if self.stale_tasks:
            lines.append(
                f"Attention : {len(self.stale_tasks)} tâche(s) ouverte(s) dans la base ne le sont plus dans "
                f"Temporal (base restaurée d'une sauvegarde ?) : {', '.join(self.stale_tasks)}"
            )
        if self.failed:
            lines.append(f"Échec pour {len(self.failed)} parcours :")
            lines += [f"  {pathway_id} : {self.failures.get(pathway_id, '?')}" for pathway_id in self.failed]
        return "\n".join(lines)


def running_query(task_queue: str | None) -> str:
    return RUNNING + (f" AND TaskQueue = '{task_queue}'" if task_queue else "")


async def running_pathways(client: Client, *, task_queue: str | None = None) -> list[str]:
    """Ids of the running pathways (Temporal visibility), sorted."""
    return sorted({execution.id async for execution in client.list_workflows(running_query(task_queue))})


async def fetch(client: Client, pathway_id: str) -> tuple[PathwayInput, PathwayState]:
    """The current run's input (its first event) and state (the read-only query)."""
    handle = client.get_workflow_handle(pathway_id)
    state: PathwayState = await handle.query("state_view", result_type=PathwayState, rpc_timeout=RPC_TIMEOUT)
    async for event in handle.fetch_history_events(page_size=1, rpc_timeout=RPC_TIMEOUT):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [input] = await client.data_converter.decode(payloads, [PathwayInput])
        if not isinstance(input, PathwayInput):
            raise TypeError(f"{pathway_id}: unexpected input {type(input).__name__}")
        return input, state
    raise LookupError(f"{pathway_id}: empty history")


async def rebuild(
    client: Client,
    engine: Engine,
    *,
    force: bool = False,
    progress: Progress | None = None,
    task_queue: str | None = None,
) -> RebuildSummary:
    """Recreate the rows of every running pathway (on `task_queue`, or all). Refuses a read model
    holding pathways or tasks unless `force`; then upserts (a later workflow commit wins)."""
    if not force and await asyncio.to_thread(rebuild_writes.has_data, engine):
        raise RebuildRefused(
            "la base de lecture contient déjà des parcours ou des tâches : rien n'a été écrit. "
            "Relancez avec --force pour compléter une base abîmée (rien n'est supprimé)."
        )
    ids = await running_pathways(client, task_queue=task_queue)
    summary = RebuildSummary(running=len(ids))
    semaphore = asyncio.Semaphore(CONCURRENCY)
    writes = asyncio.Lock()  # one writer: SQLite takes one at a time anyway
    done = 0

    async def one(pathway_id: str) -> None:
        nonlocal done
        async with semaphore:
            written = await _rebuild_one(client, engine, pathway_id, writes)
        if isinstance(written, str):
            summary.failed.append(pathway_id)
            summary.failures[pathway_id] = written
        else:
            summary.pathways += 1
            summary.tasks += written.tasks
            summary.escalations += written.escalations
            summary.definitions += written.definition_restored
            summary.persons += written.person_placeholder
            summary.stale_tasks.extend(written.stale_tasks)
        done += 1
        if progress is not None:
            progress(done, len(ids))

    await asyncio.gather(*(one(pathway_id) for pathway_id in ids))
    summary.failed.sort()
    summary.stale_tasks.sort()
    return summary


async def _rebuild_one(
    client: Client, engine: Engine, pathway_id: str, writes: asyncio.Lock
) -> rebuild_writes.Written | str:
    """Query and write one pathway, again if the workflow committed meanwhile; why not, on failure."""
    for _ in range(ATTEMPTS):
        try:
            input, state = await fetch(client, pathway_id)
        except RPCError as error:
            if error.status == RPCStatusCode.DEADLINE_EXCEEDED:
                return "aucune réponse du workflow (un worker tourne-t-il sur sa file de tâches ?)"
            return f"Temporal a refusé la lecture ({error.message})"
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
            return f"état illisible ({error})"
        except (LookupError, TypeError, ValueError) as error:
            return f"entrée du workflow illisible ({type(error).__name__})"
        try:
            async with writes:
                return await asyncio.to_thread(
                    rebuild_writes.write_pathway, engine, input, state, now=datetime.now(UTC)
                )
        except rebuild_writes.Superseded:
            continue
    return "le parcours a changé à chaque tentative : relancez la reconstruction"
