"""The bare Temporal baseline Parcours is compared with in bench/engine.py: a workflow that waits
for N updates from its driver, each update handler running one trivial activity (mirrors
Parcours' update -> projection activity), then completes. Lives in an importable module because
workflows defined in __main__ fail the sandbox's validation."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BASELINE_WORKFLOW = "BenchBaselineWorkflow"


@activity.defn(name="bench_baseline_step")
async def baseline_step(n: int) -> int:
    return n


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    def __init__(self) -> None:
        self.done = 0

    @workflow.run
    async def run(self, steps: int) -> int:
        await workflow.wait_condition(lambda: self.done >= steps and workflow.all_handlers_finished())
        return self.done

    @workflow.update
    async def step(self, n: int) -> int:
        await workflow.execute_activity(baseline_step, n, start_to_close_timeout=timedelta(seconds=30))
        self.done += 1
        return n
