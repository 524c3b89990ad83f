"""Build the Temporal worker that runs pathway workflows and their activities."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.pathway_activities import PathwayActivities
from parcours.settings import Settings
from workflows.pathway import PathwayWorkflow


def build_worker(client: Client, *, engine: Engine, settings: Settings, task_queue: str | None = None) -> Worker:
    activities = PathwayActivities(engine, settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[PathwayWorkflow],
        activities=[activities.commit, activities.send_notification],
        max_concurrent_activities=100,
        max_concurrent_workflow_tasks=100,
        max_cached_workflows=settings.workflow_cache_size,
        workflow_runner=workflow_runner(),
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox the worker and the replay tests share."""
    # The sandbox still forbids non-deterministic calls (time, random, I/O) but does not
    # re-import modules for every pathway: a fraction of the memory and CPU per cached run.
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())
