"""The contract between the pathway workflow, its activities and the read model: activity names and
the data shapes they exchange. Activities and the store import this module, never the workflow.
No personal data: the person is an opaque id, free text lives in the read model."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel

COMMIT_ACTIVITY = "commit_pathway"
NOTIFY_ACTIVITY = "send_notification"
CALENDAR_ACTIVITY = "work_calendar"

UserRole = Literal["caseworker", "gto_lead", "designer", "admin", "system", "direction"]
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
OPERATOR = Actor(user_id="cli", organisation_id="system", role="system")
"""An operator at the command line (setup, scripts) acting without `--by`."""


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
