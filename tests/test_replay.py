"""Pathways started on an earlier release go on with this code: every stored history of every
release (tests/histories/<release>/, recorded by record.py) replays without non-determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.runner import workflow_runner
from workflows.model import (
    AddModule,
    ClosePathway,
    CompleteTask,
    GtoDecision,
    PathwayInput,
    PauseClock,
    ReassignTask,
    ResumeClock,
    SkipStep,
    UpdateResult,
)
from workflows.pathway import PathwayWorkflow

HISTORIES = Path(__file__).parent / "histories"


def stored_histories() -> list[Path]:
    return sorted(p for p in HISTORIES.glob("*/*.json") if p.name != "MANIFEST.json")


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", path.read_text(encoding="utf-8"))


def replayer() -> Replayer:
    """The worker's own settings: same workflows, data converter and sandbox."""
    return Replayer(
        workflows=[PathwayWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )


def test_each_release_keeps_what_its_manifest_lists() -> None:
    releases = sorted(p for p in HISTORIES.iterdir() if p.is_dir())
    assert [r.name for r in releases][:1] == ["v1.0.0"]
    for release in releases:
        listed = json.loads((release / "MANIFEST.json").read_text())["histories"]
        assert sorted(p.stem for p in release.glob("*.json") if p.name != "MANIFEST.json") == sorted(listed)
    assert len(list((HISTORIES / "v1.0.0").glob("*.json"))) - 1 >= 12


@pytest.mark.parametrize("path", stored_histories(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_a_stored_history_replays_on_this_code(path: Path) -> None:
    result = await replayer().replay_workflow(load_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.parent.name}/{path.name}: {result.replay_failure}"


UPDATE_MODELS = {
    "complete_task": CompleteTask,
    "reassign_task": ReassignTask,
    "add_module": AddModule,
    "skip_step": SkipStep,
    "pause": PauseClock,
    "resume": ResumeClock,
    "close": ClosePathway,
    "decide_escalation": GtoDecision,
}


@pytest.mark.parametrize("path", stored_histories(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_stored_payload_still_parses_into_today_s_models(path: Path) -> None:
    """Models change only additively: each input and update an older release wrote must parse."""
    convert = pydantic_data_converter.payload_converter
    parsed = 0
    for event in load_history(path).events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (started,) = convert.from_payloads(payloads, [PathwayInput])
            assert isinstance(started, PathwayInput) and started.definition.steps
            parsed += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request.input
            if request.name in UPDATE_MODELS:
                (command,) = convert.from_payloads(request.args.payloads, [UPDATE_MODELS[request.name]])
                assert isinstance(command, UPDATE_MODELS[request.name])
                parsed += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("success") and outcome.success.payloads:
                (result,) = convert.from_payloads(outcome.success.payloads, [UpdateResult | str])
                assert isinstance(result, UpdateResult | str)
    assert parsed >= 1
