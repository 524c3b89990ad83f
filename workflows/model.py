"""Inputs, outputs and state of the pathway workflow. No personal data: the person is an opaque
id; free text (notes, reasons, form answers) lives in the read model and is referenced by id."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, Field

from definitions.calendar import WorkCalendar
from definitions.schema import Definition

UserRole = Literal["caseworker", "gto_lead", "designer", "admin", "system"]
SlaState = Literal["on_time", "due_soon", "overdue", "escalated"]
ItemKind = Literal["task", "wait", "decision", "group", "end"]
ItemStatus = Literal["open", "done", "skipped", "cancelled"]
PathwayStatus = Literal["active", "paused", "closed"]


class Actor(BaseModel):
    """Who acts, as established by the caller (CLI or UI) from the read model."""

    user_id: str
    organisation_id: str
    role: UserRole
    basin_id: str | None = None


SYSTEM = Actor(user_id="system", organisation_id="system", role="system")


class TimerEvent(BaseModel):
    at: datetime
    kind: Literal["reminder", "due_soon", "overdue", "escalation", "wait_over"]
    n: int = 0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.n}"


class Item(BaseModel):
    """One entry of the pathway's timeline: a human task, a wait, a decision, a group or the end."""

    id: str
    step_id: str
    title: str
    kind: ItemKind
    track: str = "main"
    group: str | None = None
    organisation_id: str | None = None
    status: ItemStatus = "open"
    opened_at: datetime
    closed_at: datetime | None = None
    due_at: datetime | None = None
    generation: int = 0
    schedule: list[TimerEvent] = []
    fired: list[str] = []
    escalation_level: int = 0
    outcome: str | None = None
    submission_id: str | None = None
    revision: int = 0

    def sla(self, now: datetime) -> SlaState:
        if self.escalation_level > 0:
            return "escalated"
        if self.due_at is not None and now >= self.due_at:
            return "overdue"
        if "due_soon:0" in self.fired:
            return "due_soon"
        return "on_time"


class StepResult(BaseModel):
    outcome: str
    routing: dict[str, str] = {}


class Escalation(BaseModel):
    id: str
    item_id: str
    step_id: str
    level: int
    to: Literal["gto", "spie_direction"]
    opened_at: datetime
    status: Literal["open", "decided", "resolved"] = "open"
    decided_at: datetime | None = None
    decided_by: str | None = None
    action: str | None = None
    note_id: str | None = None


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


# --- Activities ---------------------------------------------------------------------------


class ItemRow(BaseModel):
    pathway_id: str
    item: Item
    sla: SlaState | None = None


class AuditEntry(BaseModel):
    id: str
    at: datetime
    pathway_id: str
    actor: Actor
    action: str
    item_id: str | None = None
    detail: dict[str, str] = {}


class PathwayRow(BaseModel):
    id: str
    definition_id: str
    definition_version: int
    basin_id: str
    referent_org: str
    person_ref: str
    status: PathwayStatus
    current_steps: list[str]
    sla: SlaState | None
    stuck_since: datetime | None
    started_at: datetime
    updated_at: datetime
    last_progress_at: datetime
    closed_at: datetime | None
    exit_reason: str | None
    revision: int
    organisations: list[str]


class ProjectionBatch(BaseModel):
    pathway: PathwayRow
    items: list[ItemRow] = []
    escalations: list[Escalation] = []
    audit: list[AuditEntry] = []


class Notification(BaseModel):
    """An e-mail to send, keyed so it is never sent twice for the same (task, kind, level)."""

    key: str
    kind: Literal["task_assigned", "reminder", "overdue", "escalated", "escalation_decided"]
    pathway_id: str
    definition_title: str = ""
    item_id: str
    step_title: str
    organisation_id: str | None
    basin_id: str
    level: int = 0
    due_at: datetime | None = None
    action: str | None = None


class CalendarRequest(BaseModel):
    """Ask the worker for a working calendar from `first_year` on (at continue-as-new)."""

    first_year: int
    opens: time | None = None
    closes: time | None = None


class CommitBatch(BaseModel):
    """What one step of the workflow changed, and the e-mails it implies (written together)."""

    projection: ProjectionBatch
    notifications: list[Notification] = []
