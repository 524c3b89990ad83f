"""Replay with eyes: a workflow interceptor that records what each read-model commit carries
(deadlines, timer schedules), so a replay can be compared with another, not only checked for
non-determinism (a timer's duration is not part of Temporal's determinism check)."""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    Interceptor,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

COMMITS: list[Any] = []


class CaptureCommits(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class _Outbound(WorkflowOutboundInterceptor):
    def start_local_activity(self, input: StartLocalActivityInput) -> Any:
        if input.activity == "commit_pathway":
            COMMITS.append(input.args[0])
        return super().start_local_activity(input)


def deadlines(commits: list[Any]) -> list[tuple[str, Any, list[Any]]]:
    """(item, due, schedule) of every task each commit wrote, in order."""
    return [
        (row.item.id, row.item.due_at, [(e.key, e.at) for e in row.item.schedule])
        for commit in commits
        for row in commit.projection.items
        if row.item.kind == "task"
    ]
