"""A read-model outage never holds, wedges or grows a pathway without bound, and a failing
action never half-applies (patch `bounded-commits`). The outage is injected in the commit
activity; the fault suite (tests/test_faults.py) stops a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities.pathway_activities import PathwayActivities
from services.errors import ServiceError
from services.pathways import PathwayService
from tests.conftest import Parcours, eventually
from tests.flows import flow
from worker.runner import workflow_runner
from workflows import search_attributes as sa
from workflows.contract import COMMIT_ACTIVITY, CommitBatch
from workflows.pathway import RECORDED_DISPLAY_FOLLOWS, PathwayWorkflow

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)


class ReadModelOutage(PathwayActivities):
    """The read model refuses every write while `down` is set."""

    down = False
    refused = 0

    @activity.defn(name=COMMIT_ACTIVITY)
    async def commit(self, batch: CommitBatch) -> list[str]:
        if self.down:
            self.refused += 1
            raise ConnectionRefusedError("base de lecture injoignable (panne simulée)")
        return await PathwayActivities.commit(self, batch)


class AcceptanceWitness(PathwayActivities):
    """Notes, for each task a write shows done, whether Temporal already held (in the history) the
    acceptance of the update that completed it: what a worker killed right after the write keeps."""

    def __init__(self, parcours: Parcours) -> None:
        super().__init__(parcours.engine, parcours.settings)
        self.client = parcours.client
        self.accepted_when_written: dict[str, bool] = {}

    @activity.defn(name=COMMIT_ACTIVITY)
    async def commit(self, batch: CommitBatch) -> list[str]:
        done = [i.item.id for i in batch.projection.items if i.item.kind == "task" and i.item.status == "done"]
        if done:
            accepted: list[bytes] = []
            handle = self.client.get_workflow_handle(batch.projection.pathway.id)
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_execution_update_accepted_event_attributes"):
                    request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                    accepted += [payload.data for payload in request.input.args.payloads]
            for task_id in done:
                self.accepted_when_written.setdefault(task_id, any(task_id.encode() in data for data in accepted))
        return await PathwayActivities.commit(self, batch)


@asynccontextmanager
async def worker_with(parcours: Parcours, activities: PathwayActivities) -> AsyncIterator[Worker]:
    async with Worker(
        parcours.client,
        task_queue=parcours.settings.task_queue,
        workflows=[PathwayWorkflow],
        activities=[activities.commit, activities.send_notification, activities.work_calendar],
        workflow_runner=workflow_runner(),
    ) as worker:
        yield worker


def quick_service(parcours: Parcours) -> PathwayService:
    """Budgets scaled down: 1 s of local writes, answers within 2 s (1.2 s of waiting for the write,
    room enough on a loaded machine), durable retries every 0.5-1 s."""
    return PathwayService(
        parcours.client,
        parcours.engine,
        task_queue=parcours.settings.task_queue,
        commit_local_seconds=1,
        answer_within_seconds=2,
        commit_retry_seconds=(0.5, 1.0),
    )


async def incident(handle: WorkflowHandle[Any, Any]) -> str | None:
    return (await handle.describe()).typed_search_attributes.get(sa.INCIDENT)


async def cleared(handle: WorkflowHandle[Any, Any]) -> bool:
    return await incident(handle) is None


async def history_length(handle: WorkflowHandle[Any, Any]) -> int:
    return len((await handle.fetch_history()).events)


async def test_a_read_model_outage_answers_in_bounded_time_and_catches_up(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    parcours.publish(flow("all"))
    service = quick_service(parcours)
    camille = service.actor_for(CAMILLE)
    activities = ReadModelOutage(parcours.engine, parcours.settings)
    async with worker_with(parcours, activities):
        pathway_id = await parcours.start("test_flow", service=service)
        handle = parcours.client.get_workflow_handle(pathway_id)
        accueil = parcours.open_task(pathway_id, "accueil")

        activities.down = True
        result = await service.complete_task(
            task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi"}
        )
        # The caseworker is told the truth: recorded, the pages will follow.
        assert result.projected is False
        assert result.message.endswith(RECORDED_DISPLAY_FOLLOWS)
        assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["accueil"]  # not shown yet

        # An operator sees the incident; durable attempts add no history events.
        await eventually(lambda: incident(handle), what="ParcoursIncident set")
        before, length = activities.refused, await history_length(handle)
        await eventually(lambda: activities.refused >= before + 3, what="three more durable attempts")
        assert await history_length(handle) == length

        # The read model is back: the next attempt writes everything recorded meanwhile.
        activities.down = False
        await eventually(
            lambda: sorted(t.step_id for t in parcours.open_tasks(pathway_id)) == ["appui_ft", "appui_referent"],
            what="the read model caught up",
        )
        await eventually(lambda: cleared(handle), what="incident cleared")
        done = await service.complete_task(
            task_id=parcours.open_task(pathway_id, "appui_referent").id, actor=camille, outcome="fait", data={}
        )
        assert done.projected is True and RECORDED_DISPLAY_FOLLOWS not in done.message


async def test_an_action_is_answered_while_local_writes_still_retry(parcours_without_worker: Parcours) -> None:
    """A local write holds the workflow task; the run cuts its local attempts into slices so that an
    update is answered on time however long the local budget (here an hour)."""
    parcours = parcours_without_worker
    parcours.publish(flow("all"))
    service = PathwayService(
        parcours.client,
        parcours.engine,
        task_queue=parcours.settings.task_queue,
        commit_local_seconds=3600,
        answer_within_seconds=2,
    )
    activities = ReadModelOutage(parcours.engine, parcours.settings)
    async with worker_with(parcours, activities):
        pathway_id = await parcours.start("test_flow", service=service)
        activities.down = True
        asked = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                service.complete_task(
                    task_id=parcours.open_task(pathway_id, "accueil").id,
                    actor=service.actor_for(CAMILLE),
                    outcome="fait",
                    data={"besoin": "emploi"},
                ),
                timeout=120,
            )
            waited = time.monotonic() - asked
            assert answer.projected is False and answer.message.endswith(RECORDED_DISPLAY_FOLLOWS)
            # The one timing asserted here, because the bound is the promise; the margin is generous
            # (without the slices the answer waits for two workflow-task heartbeats, 16 s or more).
            assert waited < 5 * service.answer_within_seconds, f"answered after {waited:.1f} s"
            handle = parcours.client.get_workflow_handle(pathway_id)
            assert await incident(handle) is None  # still in its local phase: not yet an incident
        finally:  # also on failure: stopping the worker waits for the local attempts to end
            activities.down = False
        await eventually(
            lambda: sorted(t.step_id for t in parcours.open_tasks(pathway_id)) == ["appui_ft", "appui_referent"],
            what="the read model caught up",
        )


async def test_an_action_reaches_the_read_model_only_once_temporal_holds_it(parcours_without_worker: Parcours) -> None:
    """Temporal keeps an update once the workflow task that accepted it completes; a write made
    within that task would outlive a worker killed before it completes (the pages showing an action
    the pathway lost: found by the fault suite's kill -9). Each write of a completed task must come
    after Temporal recorded the update that completed it."""
    parcours = parcours_without_worker
    parcours.publish(flow("all"))
    service = PathwayService(parcours.client, parcours.engine, task_queue=parcours.settings.task_queue)
    witness = AcceptanceWitness(parcours)
    async with worker_with(parcours, witness):
        pathway_id = await parcours.start("test_flow", service=service)
        first = parcours.open_task(pathway_id, "accueil").id
        answer = await service.complete_task(
            task_id=first, actor=service.actor_for(CAMILLE), outcome="fait", data={"besoin": "emploi"}
        )
        assert answer.projected is True
        second = parcours.open_task(pathway_id, "appui_referent").id
        await service.complete_task(task_id=second, actor=service.actor_for(CAMILLE), outcome="fait", data={})
    assert witness.accepted_when_written == {first: True, second: True}
    assert {first, second}.isdisjoint(t.id for t in parcours.open_tasks(pathway_id))


async def test_an_operator_retry_skips_the_backoff(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    parcours.publish(flow("all"))
    service = PathwayService(
        parcours.client,
        parcours.engine,
        task_queue=parcours.settings.task_queue,
        commit_local_seconds=1,
        answer_within_seconds=1,
        commit_retry_seconds=(3600, 3600),  # the next durable attempt would be an hour away
    )
    activities = ReadModelOutage(parcours.engine, parcours.settings)
    async with worker_with(parcours, activities):
        pathway_id = await parcours.start("test_flow", service=service)
        handle = parcours.client.get_workflow_handle(pathway_id)
        activities.down = True
        await service.complete_task(
            task_id=parcours.open_task(pathway_id, "accueil").id,
            actor=service.actor_for(CAMILLE),
            outcome="fait",
            data={"besoin": "social"},
        )
        await eventually(lambda: incident(handle), what="ParcoursIncident set")
        activities.down = False
        await handle.signal(PathwayWorkflow.retry_now)
        pathway = await eventually(
            lambda: (p := parcours.pathway(pathway_id)) is not None and p.status == "closed" and p,
            what="the pathway closed in the read model",
        )
        assert pathway.exit_reason == "reorientation"


async def test_a_failing_action_leaves_the_state_as_it_was(parcours: Parcours, monkeypatch: pytest.MonkeyPatch) -> None:
    """Completing `accueil` opens two tasks; the second cannot be given to anyone (its role has no
    organisation): the action fails, and the pathway is exactly as before, still usable."""
    parcours.publish(flow("all"))
    resolve = parcours.service._resolve_parties

    def without_france_travail(*args: Any) -> dict[str, str]:
        return {role: org for role, org in resolve(*args).items() if role != "partner:france_travail"}

    monkeypatch.setattr(parcours.service, "_resolve_parties", without_france_travail)
    pathway_id = await parcours.start("test_flow")
    handle = parcours.client.get_workflow_handle(pathway_id)
    before = await handle.query(PathwayWorkflow.state_view)
    accueil = parcours.open_task(pathway_id, "accueil")
    camille = parcours.service.actor_for(CAMILLE)

    with pytest.raises(ServiceError, match="partner:france_travail"):
        await parcours.service.complete_task(
            task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi"}
        )
    after = await handle.query(PathwayWorkflow.state_view)
    assert after == before  # accueil still open, nothing opened, no audit entry counted
    assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["accueil"]

    # Not wedged: another answer takes another route.
    await parcours.service.complete_task(task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "social"})
    assert (await eventually(lambda: parcours.pathway(pathway_id).status == "closed" and "closed")) == "closed"
