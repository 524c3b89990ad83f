"""The worker's sandbox keeps Temporal's default restrictions: workflow code that reads the clock
or draws random numbers fails its workflow task (and shows in the history) instead of running."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import eventually
from tests.nondeterministic import DrawsAtRandom, ReadsTheClock, UsesWorkflowTime
from worker.runner import workflow_runner


async def first_task_failure(client: Client, workflow: str) -> str:
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReadsTheClock, DrawsAtRandom, UsesWorkflowTime],
        workflow_runner=workflow_runner(),
    ):
        handle = await client.start_workflow(workflow, id=f"{workflow}-{uuid.uuid4().hex[:8]}", task_queue=queue)

        async def failure() -> str | None:
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    return event.workflow_task_failed_event_attributes.failure.message
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                    return "completed"
            return None

        message = await eventually(failure, what=f"{workflow}'s first workflow task")
        if message != "completed":
            await handle.terminate()
        return message


@pytest.mark.parametrize(
    ("workflow", "forbidden"), [("ReadsTheClock", "datetime.datetime.now"), ("DrawsAtRandom", "random.random")]
)
async def test_non_deterministic_calls_fail_the_workflow_task(client: Client, workflow: str, forbidden: str) -> None:
    message = await first_task_failure(client, workflow)
    assert "Cannot access" in message and forbidden in message, message


async def test_workflow_time_and_random_are_allowed(client: Client) -> None:
    assert await first_task_failure(client, "UsesWorkflowTime") == "completed"
