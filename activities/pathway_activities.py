"""The activities pathway workflows call. `commit` writes the read model and the e-mails it
implies in one transaction (a transactional outbox) and wakes this process's outbox relay
(activities/outbox.py), which sends them: SMTP is never in the workflow's path. Both activities
are idempotent, so Temporal may run them again freely (a retried local activity, or the regular
activity a workflow falls back to)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select
from temporalio import activity

from activities.emails import render_email
from activities.outbox import OutboxRelay
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
    PathwayRow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class PathwayActivities:
    """Activities bound to one read model; `outbox` is the relay of the same process, woken when
    e-mails are recorded (without one, the e-mails wait for a relay's next poll)."""

    def __init__(self, engine: Engine, settings: Settings, *, outbox: OutboxRelay | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.outbox = outbox
        self._db = ThreadPoolExecutor(max_workers=writer_pool_size(engine), thread_name_prefix="read-model")

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking read-model work on the writer threads, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    @activity.defn(name=COMMIT_ACTIVITY)
    async def commit(self, batch: CommitBatch) -> list[str]:
        """Project the batch and record its e-mails, in one transaction; the relay sends them.
        Returns [] (runs started on release 1.0 read it as "the e-mails SMTP refused": none now)."""
        await self._in_db(self._write, batch)
        if batch.notifications and self.outbox is not None:
            self.outbox.wake()
        return []

    @activity.defn(name=NOTIFY_ACTIVITY)
    async def send_notification(self, notification: Notification) -> None:
        """Runs started on release 1.0 still schedule this for e-mails SMTP refused then: record
        the e-mail if absent and return; the relay delivers it."""
        await self._in_db(self._record, notification)
        if self.outbox is not None:
            self.outbox.wake()

    @activity.defn(name=CALENDAR_ACTIVITY)
    async def work_calendar(self, request: CalendarRequest) -> WorkCalendar:
        """A run's working calendar from the holidays library, computed outside the workflow;
        working hours kept from the run's previous calendar, else this worker's settings."""
        return work_calendar(
            request.first_year,
            opens=request.opens or self.settings.day_opens,
            closes=request.closes or self.settings.day_closes,
        )

    def _write(self, batch: CommitBatch) -> None:
        """Idempotent: the same batch twice leaves the read model as once (upserts keyed by the
        workflow's ids) and one row per e-mail key. A batch older than the pathway's row (an
        attempt that timed out but committed after a later batch) leaves the projection alone."""
        with self.engine.begin() as connection:
            if not _superseded(connection, batch.projection.pathway):
                apply_batch_in(connection, batch.projection)
            with Session(bind=connection, expire_on_commit=False) as session:
                for notification in batch.notifications:
                    self._recorded(session, notification)
                session.flush()

    def _record(self, notification: Notification) -> models.Notification:
        with session_scope(self.engine) as session:
            return self._recorded(session, notification)

    def _recorded(self, session: Session, notification: Notification) -> models.Notification:
        """The e-mail's row, rendered and inserted on first sight (its key guards against twins)."""
        existing = session.get(models.Notification, notification.key)
        if existing is not None:
            if existing.status == "pending" and existing.next_attempt_at is None:
                # Written by a release 1.0 worker, whose run asks again (its send failed or its
                # worker stopped): now the relay's to deliver.
                existing.next_attempt_at = q.now()
                session.add(existing)
            return existing
        recipients, context = self._recipients_and_context(session, notification)
        now = q.now()
        row = models.Notification(
            key=notification.key,
            kind=notification.kind,
            pathway_id=notification.pathway_id,
            task_id=notification.item_id,
            recipients=recipients,
            subject="",
            body="",
            created_at=now,
            next_attempt_at=now,  # due at once: the relay's claim reads this column
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


def _superseded(connection: Connection, row: PathwayRow) -> bool:
    """Whether the read model already holds a newer revision of this pathway. On PostgreSQL the
    row stays locked until the commit, so two attempts of one pathway's batches never interleave."""
    pathway: Table = models.Pathway.__table__  # type: ignore[attr-defined]
    query = sa_select(pathway.c.revision).where(pathway.c.id == row.id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    current = connection.execute(query).scalar_one_or_none()
    return current is not None and current > row.revision
