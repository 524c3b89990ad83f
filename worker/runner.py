"""Build the Temporal worker that runs pathway workflows and their activities, together with
its process's outbox relay (the loop that sends the e-mails the commits record)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.outbox import STOP_GRACE, OutboxRelay
from activities.pathway_activities import PathwayActivities
from parcours.settings import Settings
from workflows.pathway import PathwayWorkflow

log = logging.getLogger(__name__)


class ParcoursWorker(Worker):
    """A Temporal worker that runs its outbox relay for as long as it runs itself: `run()` (and so
    `async with`) starts both and stops both. On a normal shutdown the relay first finishes the
    e-mails in hand (bounded by the send deadline); a cancellation stops it at once (an e-mail
    cut short is sent again after its lease, with the same Message-ID)."""

    def __init__(self, client: Client, *, outbox: OutboxRelay, **options: object) -> None:
        super().__init__(client, **options)  # type: ignore[arg-type]
        self.outbox = outbox

    async def run(self) -> None:
        relay = asyncio.create_task(self.outbox.run(), name="outbox-relay")
        try:
            await super().run()
        except BaseException:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            raise
        self.outbox.stop()
        try:
            await asyncio.wait_for(relay, timeout=STOP_GRACE)
        except TimeoutError:
            log.warning("outbox relay: stopped before its e-mails in hand were marked")
        except Exception:
            log.exception("outbox relay failed")


def build_worker(
    client: Client, *, engine: Engine, settings: Settings, task_queue: str | None = None
) -> ParcoursWorker:
    outbox = OutboxRelay(engine, settings)
    activities = PathwayActivities(engine, settings, outbox=outbox)
    return ParcoursWorker(
        client,
        outbox=outbox,
        task_queue=task_queue or settings.task_queue,
        workflows=[PathwayWorkflow],
        activities=[activities.commit, activities.send_notification, activities.work_calendar],
        max_concurrent_activities=100,
        max_concurrent_workflow_tasks=100,
        max_cached_workflows=settings.workflow_cache_size,
        workflow_runner=workflow_runner(),
    )


DETERMINISTIC_MODULES = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "definitions",
    "workflows.model",
    "workflows.contract",
    "workflows.projection",
)
"""Imported once, outside the sandbox, and shared by every run: known to be deterministic (models
and pure functions). Everything else a workflow imports is re-imported in the sandbox, where
Temporal's default restrictions refuse the clock, randomness and I/O."""


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox the worker and the replay tests share."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*DETERMINISTIC_MODULES)
    )
