"""The activities pathway workflows call. `commit` writes the read model and the e-mails it
implies in one transaction (a transactional outbox), then sends those e-mails; `send_notification`
retries the ones SMTP refused. Both are idempotent, so Temporal may retry them freely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import make_msgid
from typing import Any, TypeVar

import aiosmtplib
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio import activity

from activities.emails import render_email
from activities.mailer import MailerPool
from definitions.calendar import WorkCalendar, work_calendar
from parcours.settings import Settings
from store import models
from store import queries as q
from store.db import session_scope, writer_pool_size
from store.projection import apply_batch_in
from workflows.contract import (
    CALENDAR_ACTIVITY,
    COMMIT_ACTIVITY,
    NOTIFY_ACTIVITY,
    CalendarRequest,
    CommitBatch,
    Notification,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class PathwayActivities:
    """Activities bound to one read model and one SMTP server."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._db = ThreadPoolExecutor(max_workers=writer_pool_size(engine), thread_name_prefix="read-model")
        self._mailer: MailerPool | None = None

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking read-model work on the writer threads, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    @activity.defn(name=COMMIT_ACTIVITY)
    async def commit(self, batch: CommitBatch) -> list[str]:
        """Project the batch and record its e-mails (one transaction), then try to send them.
        Returns the keys SMTP refused, for the workflow to retry with backoff."""
        rows = await self._in_db(self._write, batch)
        unsent = []
        for row in rows:
            if row.status == "pending" and not await self._deliver(row):
                unsent.append(row.key)
        return unsent

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def send_notification(self, notification: Notification) -> None:
        """Send a recorded e-mail unless already sent. SMTP errors propagate: Temporal retries
        with backoff until the server is back."""
        row = await self._in_db(self._record, notification)
        if row.status == "pending" and not await self._deliver(row):
            raise RuntimeError(f"SMTP refused e-mail {notification.key}: {row.last_error}")

    @activity.defn(name=CALENDAR_ACTIVITY)
    async def work_calendar(self, request: CalendarRequest) -> WorkCalendar:
        """A run's working calendar from the holidays library, computed outside the workflow;
        working hours kept from the run's previous calendar, else this worker's settings."""
        return work_calendar(
            request.first_year,
            opens=request.opens or self.settings.day_opens,
            closes=request.closes or self.settings.day_closes,
        )

    def _write(self, batch: CommitBatch) -> list[models.Notification]:
        with self.engine.begin() as connection:
            apply_batch_in(connection, batch.projection)
            with Session(bind=connection, expire_on_commit=False) as session:
                rows = [self._recorded(session, n) for n in batch.notifications]
                session.flush()
                return rows

    def _record(self, notification: Notification) -> models.Notification:
        with session_scope(self.engine) as session:
            return self._recorded(session, notification)

    def _recorded(self, session: Session, notification: Notification) -> models.Notification:
        """The e-mail's row, rendered and inserted on first sight (its key guards against twins)."""
        existing = session.get(models.Notification, notification.key)
        if existing is not None:
            return existing
        recipients, context = self._recipients_and_context(session, notification)
        row = models.Notification(
            key=notification.key,
            kind=notification.kind,
            pathway_id=notification.pathway_id,
            task_id=notification.item_id,
            recipients=recipients,
            subject="",
            body="",
            created_at=q.now(),
        )
        try:
            rendered = render_email(notification.kind, context)
            row.subject, row.body = rendered.subject, rendered.body
        except Exception as error:  # a template or data error: this e-mail fails, the commit goes on
            log.error("e-mail %s could not be built (%s): marked failed", notification.key, type(error).__name__)
            row.status, row.subject = "failed", f"(e-mail non construit : {notification.kind})"
            row.last_error = f"construction impossible : {type(error).__name__}: {error}"[:500]
        session.add(row)
        return row

    async def _deliver(self, row: models.Notification) -> bool:
        headers = {
            "Message-ID": make_msgid(idstring=row.key.replace(":", "."), domain="parcours"),
            "X-Parcours-Key": row.key,
        }
        if self._mailer is None:  # created on the worker's event loop
            self._mailer = MailerPool(self.settings)
        try:
            await self._mailer.send(to=row.recipients, subject=row.subject, body=row.body, headers=headers)
        except (aiosmtplib.SMTPException, OSError) as error:
            row.last_error = str(error)[:500]
            await self._in_db(self._record_failure, row.key, row.last_error)
            return False
        await self._in_db(self._mark_sent, row.key)
        return True

    def _recipients_and_context(self, session: Session, n: Notification) -> tuple[list[str], dict[str, object]]:
        """Recipients by kind (the organisation's mailbox; the basin's GTO; the SPIE direction)
        and the template's context."""
        organisation = session.get(models.Organisation, n.organisation_id) if n.organisation_id else None
        basin = session.get(models.Basin, n.basin_id)
        direction = session.get(models.Setting, q.DIRECTION_EMAIL)
        territory = session.get(models.Setting, q.TERRITORY_NAME)
        gto_leads = session.exec(
            select(models.User.email).where(
                models.User.role == "gto_lead", models.User.basin_id == n.basin_id, models.User.active
            )
        ).all()
        org_email = [organisation.email] if organisation else []
        gto = ([basin.gto_email] if basin else []) + sorted(gto_leads)
        if n.kind == "escalated":
            recipients = gto if n.level == 1 else ([direction.value] if direction else gto)
        elif n.kind == "escalation_decided":
            recipients = org_email + gto
        else:
            recipients = org_email
        context: dict[str, object] = {
            "step_title": n.step_title,
            "pathway_id": n.pathway_id,
            "definition": n.definition_title,
            "basin": basin.name if basin else n.basin_id,
            "organisation": organisation.name if organisation else (n.organisation_id or ""),
            "due_at": n.due_at,
            "level": n.level,
            "action": n.action or "",
            "link": f"{self.settings.public_url}/parcours/{n.pathway_id}",
            "territory": territory.value if territory else "",
        }
        return sorted(dict.fromkeys(recipients)), context

    def _record_failure(self, key: str, error: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(models.Notification, key)
            if row is not None:
                row.attempts += 1
                row.last_error = error
                session.add(row)

    def _mark_sent(self, key: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(models.Notification, key)
            if row is not None:
                row.status, row.sent_at, row.attempts = "sent", q.now(), row.attempts + 1
                session.add(row)
