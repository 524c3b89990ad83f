"""Workflows that break the determinism rules on purpose, for the sandbox test. Kept in their own
module with no other imports: the sandbox re-imports a workflow's module for each run."""

from __future__ import annotations

import random
from datetime import datetime

from temporalio import workflow


@workflow.defn(name="ReadsTheClock")
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()


@workflow.defn(name="DrawsAtRandom")
class DrawsAtRandom:
    @workflow.run
    async def run(self) -> float:
        return random.random()


@workflow.defn(name="UsesWorkflowTime")
class UsesWorkflowTime:
    @workflow.run
    async def run(self) -> str:
        return workflow.now().isoformat() + f" {workflow.random().random()}"
