"""Inputs, outputs and state of the pathway workflow. No personal data: the person is an opaque
id; free text (notes, reasons, form answers) lives in the read model and is referenced by id."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from definitions.calendar import WorkCalendar
from definitions.schema import Definition
from workflows.contract import (
    Actor,
    Escalation,
    Item,
    PathwayStatus,
)


class StepResult(BaseModel):
    outcome: str
    routing: dict[str, str] = {}


class PathwayState(BaseModel):
    """What a run carries across continue-as-new: open items and what decisions need."""

    status: PathwayStatus = "active"
    started_at: datetime
    closed_at: datetime | None = None
    exit_reason: str | None = None
    paused_since: datetime | None = None
    last_progress_at: datetime
    seq: int = 0
    audit_seq: int = 0
    items: dict[str, Item] = {}
    results: dict[str, StepResult] = {}
    modules: dict[str, int] = Field(default_factory=dict, description="module id -> next step index")
    escalations: dict[str, Escalation] = {}
    follow_up: list[str] = Field(default_factory=list, description="organisations in the follow-up group")
    revision: int = 0


class PathwayInput(BaseModel):
    pathway_id: str
    definition: Definition
    basin_id: str
    referent_org: str
    person_ref: str
    parties: dict[str, str] = Field(description="role (e.g. partner:caf) -> organisation id")
    started_by: Actor
    history_event_limit: int = 2000
    carried: PathwayState | None = None
    calendar: WorkCalendar | None = Field(
        None, description="working days and hours, as data (None: a run started on 1.0.0, library holidays)"
    )
    commit_local_seconds: float = Field(
        30.0, gt=0, description="how long the read-model write may hold a workflow task before it turns durable"
    )
    commit_retry_seconds: tuple[float, float] = Field(
        (5.0, 600.0), description="first and longest wait between durable attempts of a refused read-model write"
    )
    answer_within_seconds: float = Field(
        10.0, gt=0, description="how long an update waits for the read model before answering 'recorded'"
    )


class PathwayOutcome(BaseModel):
    pathway_id: str
    exit_reason: str | None
    closed_at: datetime | None


# --- Updates (human work) ----------------------------------------------------------------


class CompleteTask(BaseModel):
    item_id: str
    actor: Actor
    outcome: str
    filled: list[str] = Field(default_factory=list, description="form fields given a value")
    routing: dict[str, str] = Field(default_factory=dict, description="values decisions branch on")
    submission_id: str | None = None


class ReassignTask(BaseModel):
    item_id: str
    actor: Actor
    organisation_id: str
    note_id: str | None = None


class AddModule(BaseModel):
    module_id: str
    actor: Actor
    note_id: str | None = None


class SkipStep(BaseModel):
    item_id: str
    actor: Actor
    note_id: str | None = None


class PauseClock(BaseModel):
    actor: Actor
    note_id: str | None = None


class ResumeClock(BaseModel):
    actor: Actor


class ClosePathway(BaseModel):
    actor: Actor
    exit_reason: str
    note_id: str | None = None


class GtoDecision(BaseModel):
    """A GTO's decision on an escalation (like an EP opinion: case in, decision out)."""

    escalation_id: str
    actor: Actor
    action: Literal["reassign", "extend", "add_step", "close", "unblock"]
    organisation_id: str | None = None
    extend_by: str | None = Field(None, description="a delay, e.g. '5 working days' or 'PT30S'")
    module_id: str | None = None
    exit_reason: str | None = None
    note_id: str | None = None


class MigrateDefinition(BaseModel):
    """Move the pathway to a newer version of its definition; `step_map` names, old step -> new
    step, where open items of steps renamed or removed land (see definitions/migration.py)."""

    definition: Definition
    step_map: dict[str, str] = Field(default_factory=dict)
    actor: Actor
    note_id: str | None = None


class UpdateResult(BaseModel):
    """What an accepted update changed, for the caller to show."""

    pathway_id: str
    message: str
    opened: list[str] = []
    projected: bool = Field(
        True, description="False: recorded by the workflow, the read model (and so the pages) will follow"
    )
