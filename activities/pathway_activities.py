"""The activities pathway workflows call: projection into the read model and e-mails.
Both are idempotent, so Temporal may retry them freely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from email.utils import make_msgid

import aiosmtplib
from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import activity

from activities.emails import render_email
from activities.mailer import send_email
from parcours.settings import Settings
from store import models
from store import queries as q
from store.db import session_scope, writer_pool_size
from store.projection import apply_batch
from workflows.model import Notification, ProjectionBatch
from workflows.pathway import NOTIFY_ACTIVITY, PROJECT_ACTIVITY

log = logging.getLogger(__name__)
T = TypeVar("T")


class PathwayActivities:
    """Activities bound to one read model and one SMTP server."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._db = ThreadPoolExecutor(max_workers=writer_pool_size(engine), thread_name_prefix="read-model")

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking read-model work on the writer threads, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    @activity.defn(name=PROJECT_ACTIVITY)
    async def project_pathway(self, batch: ProjectionBatch) -> None:
        await self._in_db(apply_batch, self.engine, batch)

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def send_notification(self, notification: Notification) -> None:
        """Record the e-mail under its key, send it unless already sent, then mark it sent.
        SMTP errors propagate: Temporal retries with backoff until the server is back."""
        row = await self._in_db(self._prepare, notification)
        if row.status == "sent":
            log.info("notification %s already sent, skipped", notification.key)
            return
        headers = {
            "Message-ID": make_msgid(idstring=notification.key.replace(":", "."), domain="parcours"),
            "X-Parcours-Key": notification.key,
        }
        try:
            await send_email(self.settings, to=row.recipients, subject=row.subject, body=row.body, headers=headers)
        except (aiosmtplib.SMTPException, OSError) as error:
            await self._in_db(self._record_failure, notification.key, str(error))
            raise
        await self._in_db(self._mark_sent, notification.key)

    def _prepare(self, notification: Notification) -> models.Notification:
        with session_scope(self.engine) as session:
            existing = session.get(models.Notification, notification.key)
            if existing is not None:
                return existing
            recipients, context = self._recipients_and_context(notification)
            rendered = render_email(notification.kind, context)
            row = models.Notification(
                key=notification.key, kind=notification.kind, pathway_id=notification.pathway_id,
                task_id=notification.item_id, recipients=recipients, subject=rendered.subject,
                body=rendered.body, created_at=q.now(),
            )
            session.add(row)
            return row

    def _recipients_and_context(self, n: Notification) -> tuple[list[str], dict[str, object]]:
        """Recipients by kind (the organisation's mailbox; the basin's GTO; the SPIE direction)
        and the template's context, read in one session."""
        with session_scope(self.engine) as session:
            organisation = session.get(models.Organisation, n.organisation_id) if n.organisation_id else None
            basin = session.get(models.Basin, n.basin_id)
            direction = session.get(models.Setting, q.DIRECTION_EMAIL)
            territory = session.get(models.Setting, q.TERRITORY_NAME)
            gto_leads = session.exec(
                select(models.User.email).where(models.User.role == "gto_lead", models.User.basin_id == n.basin_id, models.User.active == True)  # noqa: E712
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
                row.last_error = error[:500]
                session.add(row)

    def _mark_sent(self, key: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(models.Notification, key)
            if row is not None:
                row.status, row.sent_at, row.attempts = "sent", q.now(), row.attempts + 1
                session.add(row)
