"""Pathways started on an earlier release go on with this code: every stored history of every
release (tests/histories/<release>/, recorded by record.py) replays without non-determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.runner import workflow_runner
from workflows.pathway import PathwayWorkflow

HISTORIES = Path(__file__).parent / "histories"


def stored_histories() -> list[Path]:
    return sorted(p for p in HISTORIES.glob("*/*.json") if p.name != "MANIFEST.json")


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", path.read_text(encoding="utf-8"))


def replayer() -> Replayer:
    """The worker's own settings: same workflows, data converter and sandbox."""
    return Replayer(workflows=[PathwayWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner())


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
