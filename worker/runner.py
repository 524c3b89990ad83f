"""Build the Temporal worker that runs pathway workflows and their activities, together with
its process's outbox relay (the loop that sends the e-mails the commits record) and its turn at
computing the evaluation's figures."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.outbox import STOP_GRACE, OutboxRelay
from activities.pathway_activities import PathwayActivities
from parcours.settings import Settings
from services import evaluation_facts
from store import queries as q
from workflows.pathway import PathwayWorkflow

log = logging.getLogger(__name__)


class EvaluationRefresher:
    """Keeps the evaluation's figures fresh: every minute a worker process looks whether they are
    older than PARCOURS_EVALUATION_REFRESH_MINUTES; the worker that claims the turn computes them
    again, on a thread (the database does the work). A failure is logged and the figures stay
    those of the last refresh, dated on the page; the next look tries again."""

    LOOK_SECONDS = 60.0

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.every = timedelta(minutes=settings.evaluation_refresh_minutes)

    async def run(self) -> None:
        if not self.every:
            return
        while True:
            try:
                await asyncio.to_thread(self.refresh_if_due)
            except Exception:
                log.exception("evaluation figures: refresh failed; those of the last refresh stay shown")
            await asyncio.sleep(self.LOOK_SECONDS)

    def refresh_if_due(self) -> int | None:
        """The facts computed again if it is this worker's turn (their count), else None."""
        now = q.now()
        if not evaluation_facts.claim_refresh(self.engine, now=now, every=self.every):
            return None
        started = time.monotonic()
        try:
            count = evaluation_facts.refresh(self.engine, now=now)
        except BaseException:
            evaluation_facts.release_claim(self.engine, claimed_at=now)  # the next look tries again
            raise
        log.info("evaluation figures computed again: %d facts in %.1f s", count, time.monotonic() - started)
        return count


class ParcoursWorker(Worker):
    """A Temporal worker that runs its outbox relay and its evaluation refresher for as long as it
    runs itself: `run()` (and so `async with`) starts them and stops them. On a normal shutdown the
    relay first finishes the e-mails in hand (bounded by the send deadline); a cancellation stops
    it at once (an e-mail cut short is sent again after its lease, with the same Message-ID). A
    refresh under way runs to its end on its thread (the database does the work), or is rolled back
    if the process exits: the figures stay the former ones."""

    def __init__(
        self, client: Client, *, outbox: OutboxRelay, refresher: EvaluationRefresher, **options: object
    ) -> None:
        super().__init__(client, **options)  # type: ignore[arg-type]
        self.outbox = outbox
        self.refresher = refresher

    async def run(self) -> None:
        relay = asyncio.create_task(self.outbox.run(), name="outbox-relay")
        refresher = asyncio.create_task(self.refresher.run(), name="evaluation-refresher")
        try:
            await super().run()
        except BaseException:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            raise
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
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
        refresher=EvaluationRefresher(engine, settings),
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
