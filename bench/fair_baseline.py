"""The fair baseline bench/engine.py compares Parcours with: the Temporal application a competent
team would write by hand for one pathway shape (tasks one after the other, each with a deadline),
instead of a generic interpreter of definitions.

One workflow per pathway. Its start writes the first task (update-with-start: `ready` answers once
it is in the read model); each `complete` update is validated (the open task, its organisation),
then one activity writes the step in one transaction and sends its e-mail
(bench/fair_activities.py); the update answers with the next task. A deadline is a durable timer:
past it, the task turns overdue (a row, an audit event and an e-mail). Activities are regular
ones, or local ones when `FairStart.local_activities` (what a team optimising round trips
would do, as Parcours does for its commit)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from bench.fair_activities import (
        FAIR_STEP_ACTIVITY,
        FAIR_WORKFLOW,
        FairActor,
        FairAnswer,
        FairComplete,
        FairStart,
        FairStep,
        task_id,
    )

SYSTEM = FairActor(user_id="system", organisation_id="system")
STEP_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=FAIR_WORKFLOW)
class FairWorkflow:
    @workflow.init
    def __init__(self, start: FairStart) -> None:
        self.start = start
        self.current = 0  # index of the open task; len(task_titles) once closed
        self.opened = False
        self.due_at: datetime | None = None
        self.audit_seq = 0
        self.lock = asyncio.Lock()

    @workflow.run
    async def run(self, start: FairStart) -> int:
        async with self.lock:
            await self._write("start", start.started_by, opening=0)
            self.opened = True
        while self.current < len(start.task_titles):
            n = self.current
            try:
                await workflow.wait_condition(partial(self._moved_on, n), timeout=self._until_due())
            except TimeoutError:
                async with self.lock:
                    if self.current == n:
                        await self._write("overdue", SYSTEM, closing=n)
                await workflow.wait_condition(partial(self._moved_on, n))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.current

    @workflow.update
    async def ready(self) -> str:
        await workflow.wait_condition(lambda: self.opened)
        return task_id(self.start.pathway_id, 0)

    @workflow.update
    async def complete(self, command: FairComplete) -> FairAnswer:
        async with self.lock:
            self._check(command)
            n = self.current
            following = n + 1 if n + 1 < len(self.start.task_titles) else None
            await self._write("complete", command.actor, closing=n, outcome=command.outcome, opening=following)
            self.current = n + 1
        return FairAnswer(opened=[task_id(self.start.pathway_id, following)] if following is not None else [])

    @complete.validator
    def _validate_complete(self, command: FairComplete) -> None:
        self._check(command)

    def _check(self, command: FairComplete) -> None:
        if not self.opened or self.current >= len(self.start.task_titles):
            raise ApplicationError("Aucune tâche ouverte dans ce parcours.", type="conflict", non_retryable=True)
        if command.task_id != task_id(self.start.pathway_id, self.current):
            raise ApplicationError("Cette tâche n'est plus ouverte.", type="conflict", non_retryable=True)
        if command.actor.organisation_id != self.start.referent_org:
            raise ApplicationError("Tâche confiée à une autre organisation.", type="forbidden", non_retryable=True)

    def _moved_on(self, n: int) -> bool:
        return self.current != n

    def _until_due(self) -> timedelta:
        assert self.due_at is not None
        return max(self.due_at - workflow.now(), timedelta(milliseconds=1))

    async def _write(
        self,
        event: Literal["start", "complete", "overdue"],
        actor: FairActor,
        *,
        closing: int | None = None,
        outcome: str | None = None,
        opening: int | None = None,
    ) -> None:
        now = workflow.now()
        if opening is not None:
            self.due_at = now + timedelta(seconds=self.start.deadline_seconds)
        self.audit_seq += 1
        step = FairStep(
            start=self.start,
            event=event,
            at=now,
            actor=actor,
            audit_seq=self.audit_seq,
            closing=closing,
            outcome=outcome,
            opening=opening,
            due_at=self.due_at,
        )
        if self.start.local_activities:
            await workflow.execute_local_activity(FAIR_STEP_ACTIVITY, step, start_to_close_timeout=STEP_TIMEOUT)
        else:
            await workflow.execute_activity(FAIR_STEP_ACTIVITY, step, start_to_close_timeout=STEP_TIMEOUT)
