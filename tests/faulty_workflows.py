"""Faults injected into the pathway interpreter, for the incident tests. Kept in their own module:
the sandbox re-imports a workflow's module for each run."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import Item, TimerEvent
    from workflows.model import PathwayInput, PathwayOutcome

from workflows.pathway import PathwayWorkflow

FAULT = "rappel impossible (panne injectée)"


@workflow.defn(name="PathwayWorkflow")
class ReminderFails(PathwayWorkflow):
    """The real interpreter, registered under its name, except that firing a reminder raises: a
    bug in a timer coroutine, which must fail the workflow task (retried, an incident)."""

    @workflow.run
    async def run(self, input: PathwayInput) -> PathwayOutcome:
        return await super().run(input)

    def _fire(self, item: Item, event: TimerEvent) -> None:
        if event.kind == "reminder":
            raise RuntimeError(FAULT)
        super()._fire(item, event)
