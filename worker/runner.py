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
