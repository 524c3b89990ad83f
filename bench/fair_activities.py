"""The fair baseline's data and activities (bench/fair_baseline.py holds its workflow): what a
competent team would write by hand with Temporal instead of Parcours, for the same 4-task pathway.

Each step is one activity that writes the read model Parcours writes (tables of store/models.py:
pathway, timeline step, task, follow-up group, audit event, e-mail row) in ONE transaction, then
sends the step's e-mail to the same SMTP server (aiosmtplib, pooled connections, same Jinja
template) and marks it sent. It is idempotent (inserts keyed by the workflow's ids, a sent
e-mail is not sent again), so Temporal may retry it freely. Kept apart from the workflow module
so that the workflow imports it passed through the sandbox, as Temporal's samples do."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from temporalio import activity

from activities.emails import render_email
from activities.mailer import MailerPool, message_id
from parcours.settings import Settings
from store import models
from store import queries as q
from store.db import writer_pool_size

FAIR_WORKFLOW = "BenchFairWorkflow"
FAIR_STEP_ACTIVITY = "bench_fair_step"


class FairActor(BaseModel):
    user_id: str
    organisation_id: str


class FairStart(BaseModel):
    """One pathway: its tasks are given to the referent organisation, one after the other."""

    pathway_id: str
    person_id: str
    definition_id: str
    definition_title: str
    basin_id: str
    referent_org: str
    task_titles: list[str]
    deadline_seconds: float
    started_by: FairActor
    local_activities: bool = False


class FairComplete(BaseModel):
    task_id: str
    actor: FairActor
    outcome: str


class FairAnswer(BaseModel):
    opened: list[str]


class FairStep(BaseModel):
    """What one step changed, as the workflow decided it (its clock gives `at`)."""

    start: FairStart
    event: Literal["start", "complete", "overdue"]
    at: datetime
    actor: FairActor
    audit_seq: int
    closing: int | None = None
    outcome: str | None = None
    opening: int | None = None
    due_at: datetime | None = None


def task_id(pathway_id: str, index: int) -> str:
    return f"{pathway_id}-{index + 1}"


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


@dataclass(frozen=True)
class Mail:
    key: str
    recipients: list[str]
    subject: str
    body: str


class FairActivities:
    """Bound to one read model and one SMTP server (the worker's settings)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = MailerPool(settings, size=4)
        # SQLite takes one writer at a time (as Parcours' worker: one writer thread).
        self._db = ThreadPoolExecutor(max_workers=writer_pool_size(engine), thread_name_prefix="fair-db")

    @activity.defn(name=FAIR_STEP_ACTIVITY)
    async def step(self, step: FairStep) -> None:
        loop = asyncio.get_running_loop()
        mail = await loop.run_in_executor(self._db, self._write, step)
        if mail is None:
            return
        headers = {"Message-ID": message_id(mail.key, self.settings.public_url)}
        await self.mailer.send(to=mail.recipients, subject=mail.subject, body=mail.body, headers=headers)
        await loop.run_in_executor(self._db, self._mark_sent, mail.key)

    async def close(self) -> None:
        await self.mailer.close()
        self._db.shutdown(wait=False)

    # --- One transaction per step ---------------------------------------------------------------

    def _write(self, step: FairStep) -> Mail | None:
        s, at = step.start, step.at
        tasks, timeline = _table(models.Task), _table(models.PathwayStep)
        audit: list[tuple[str, str | None, dict[str, str]]] = []
        mail: tuple[str, str] | None = None  # (kind, task id) of the step's e-mail
        with self.engine.begin() as c:
            if step.event == "start":
                audit.append(("pathway_started", None, {"definition": f"{s.definition_id} v1"}))
                member = {"pathway_id": s.pathway_id, "organisation_id": s.referent_org, "since": at}
                self._insert(c, models.FollowUpMember, member, keys=["pathway_id", "organisation_id"])
            elif step.event == "complete":
                assert step.closing is not None
                closed = task_id(s.pathway_id, step.closing)
                done = {"status": "done", "closed_at": at, "outcome": step.outcome}
                c.execute(update(tasks).where(tasks.c.id == closed).values(sla=None, **done))
                c.execute(update(timeline).where(timeline.c.id == closed).values(**done))
                audit.append(("task_completed", closed, {"outcome": step.outcome or ""}))
            else:  # overdue
                assert step.closing is not None
                late = task_id(s.pathway_id, step.closing)
                c.execute(update(tasks).where(tasks.c.id == late).values(sla="overdue"))
                audit.append(("task_overdue", late, {}))
                mail = ("overdue", late)
            if step.opening is not None:
                opened = task_id(s.pathway_id, step.opening)
                common: dict[str, Any] = {"id": opened, "pathway_id": s.pathway_id, "step_id": f"t{step.opening + 1}"}
                common["title"] = s.task_titles[step.opening]
                self._insert(
                    c, models.PathwayStep, common | {"kind": "task", "track": "main", "status": "open", "opened_at": at}
                )
                task: dict[str, Any] = {
                    "definition_id": s.definition_id,
                    "basin_id": s.basin_id,
                    "organisation_id": s.referent_org,
                }
                task |= {"status": "open", "sla": "on_time", "due_at": step.due_at, "opened_at": at}
                self._insert(c, models.Task, common | task)
                mail = ("task_assigned", opened)
            closing = step.event == "complete" and step.opening is None
            if closing:
                end: dict[str, Any] = {
                    "id": f"{s.pathway_id}-end",
                    "pathway_id": s.pathway_id,
                    "step_id": "fin",
                    "title": "Fin",
                }
                end |= {"kind": "end", "track": "main", "status": "done", "opened_at": at, "closed_at": at}
                self._insert(c, models.PathwayStep, end | {"outcome": "emploi_durable"})
                members = _table(models.FollowUpMember)
                c.execute(update(members).where(members.c.pathway_id == s.pathway_id).values(until=at))
                audit.append(("pathway_closed", None, {"exit_reason": "emploi_durable"}))
            self._upsert_pathway(c, step, closing)
            for n, (action, item, detail) in enumerate(audit):
                row = {"id": f"{s.pathway_id}-a{step.audit_seq}-{n}", "at": at, "pathway_id": s.pathway_id}
                row |= {"actor_user_id": step.actor.user_id, "actor_org_id": step.actor.organisation_id}
                self._insert(c, models.AuditEvent, row | {"action": action, "task_id": item, "detail": detail})
            return self._notification(c, step, *mail) if mail else None

    def _upsert_pathway(self, c: Connection, step: FairStep, closing: bool) -> None:
        s, at = step.start, step.at
        row: dict[str, Any] = {"status": "closed" if closing else "active", "updated_at": at}
        row["current_steps"] = [f"t{step.opening + 1}"] if step.opening is not None else ([] if closing else None)
        row["sla"] = "overdue" if step.event == "overdue" else (None if closing else "on_time")
        if step.event != "overdue":
            row["last_progress_at"] = at
        if closing:
            row |= {"closed_at": at, "exit_reason": "emploi_durable"}
        if row["current_steps"] is None:
            del row["current_steps"]
        first = {"id": s.pathway_id, "definition_id": s.definition_id, "definition_version": 1, "basin_id": s.basin_id}
        first |= {"referent_org": s.referent_org, "person_id": s.person_id, "started_at": at, "last_progress_at": at}
        table = _table(models.Pathway)
        statement = self._dialect(c).insert(table).values({**first, **row})
        c.execute(statement.on_conflict_do_update(index_elements=["id"], set_=row))

    def _notification(self, c: Connection, step: FairStep, kind: str, item: str) -> Mail | None:
        """The e-mail's row (rendered with Parcours' template, same recipients), or None when
        an earlier attempt of this activity already sent it."""
        s = step.start
        key = f"{item}:g0:{kind}:0"
        table = _table(models.Notification)
        existing = c.execute(select(table.c.status).where(table.c.key == key)).scalar_one_or_none()
        if existing == "sent":
            return None
        organisation = c.execute(
            select(_table(models.Organisation)).where(_table(models.Organisation).c.id == s.referent_org)
        ).one()
        basin = c.execute(select(_table(models.Basin)).where(_table(models.Basin).c.id == s.basin_id)).one()
        settings = _table(models.Setting)
        territory = c.execute(select(settings.c.value).where(settings.c.key == q.TERRITORY_NAME)).scalar_one_or_none()
        title = s.task_titles[step.opening if step.opening is not None else step.closing or 0]
        context: dict[str, object] = {
            "step_title": title,
            "pathway_id": s.pathway_id,
            "definition": s.definition_title,
            "basin": basin.name,
            "organisation": organisation.name,
            "due_at": step.due_at,
            "level": 0,
            "action": "",
            "link": f"{self.settings.public_url}/parcours/{s.pathway_id}",
            "territory": territory or "",
        }
        rendered = render_email(kind, context)
        mail = Mail(key, [organisation.email], rendered.subject, rendered.body)
        if existing is None:
            row: dict[str, Any] = {
                "key": key,
                "kind": kind,
                "pathway_id": s.pathway_id,
                "task_id": item,
                "recipients": mail.recipients,
            }
            row |= {"subject": mail.subject, "body": mail.body, "status": "pending", "created_at": step.at}
            self._insert(c, models.Notification, row, keys=["key"])
        return mail

    def _mark_sent(self, key: str) -> None:
        table = _table(models.Notification)
        with self.engine.begin() as c:
            c.execute(
                update(table)
                .where(table.c.key == key, table.c.status == "pending")
                .values(status="sent", sent_at=q.now(), attempts=table.c.attempts + 1)
            )

    @staticmethod
    def _dialect(c: Connection) -> Any:
        return postgresql if c.dialect.name == "postgresql" else sqlite

    def _insert(self, c: Connection, model: Any, row: dict[str, Any], *, keys: list[str] | None = None) -> None:
        """Insert unless present (a retried activity writes nothing twice)."""
        statement = self._dialect(c).insert(_table(model)).values(row)
        c.execute(statement.on_conflict_do_nothing(index_elements=keys or ["id"]))
