"""The outbox relay: delivers the e-mails the commits recorded (table `notification`), out of
the workflows' path. A slow or absent SMTP server delays e-mails, never an update or a timer.

One relay runs as a loop in every worker process (worker/runner.py starts and stops it with the
Temporal worker). The commit activity wakes the relay of its own process as soon as its
transaction is written, so e-mails leave within milliseconds; otherwise the relay looks every
`PARCOURS_OUTBOX_POLL_SECONDS` (default 2) for the rows that are due: another process's, and the
retries.

Claims. A relay claims a few due rows at a time by writing a lease on them (`claimed_until`, its
own `claim_token`), then sends them and marks each one:
- on PostgreSQL, several worker processes share the table: the claim selects its rows with
  `SELECT … FOR UPDATE SKIP LOCKED`, so two relays never pick the same row, and the lease lets
  another relay take over the rows of a relay that crashed once `claimed_until` has passed;
- on SQLite, the read model serves one worker process, hence one relay. (Should several share
  the file, the conditional UPDATE that writes the claim is atomic under SQLite's writer lock, so
  claims would still not overlap.)

Order: the e-mails of one pathway leave in the order its commits recorded them (a reminder
before the overdue notice written in the same commit), one after the other; different pathways'
e-mails go out side by side. (A retried e-mail may come after later ones.)

The lease (LEASE_SECONDS) exceeds the longest a claimed batch may take: BATCH_SIZE e-mails one
after another, each bounded by SEND_DEADLINE (activities/mailer.py, itself a few SMTP_TIMEOUTs),
so a live relay's claim never expires under it.

The guarantee, per e-mail key: delivered at least once, and at most once, except when a relay
stops between the SMTP server's acceptance and the marking (a crash, the database gone at that
instant): the e-mail is then sent again once the lease expires, with the same Message-ID
(activities/mailer.py `message_id`), so the receiving side can recognise the resend.

SMTP failures: attempts + 1, `last_error`, and `next_attempt_at` after an exponential backoff
from BACKOFF_FIRST seconds up to BACKOFF_MAX. Rows whose rendering failed (`failed`) are never
sent.

Upgrading from release 1.0: a 1.0 worker sends its commit's e-mails itself, and writes rows
without `next_attempt_at`. The relay leaves such rows alone, so a 1.0 worker still running
during the upgrade never races it for the same e-mail. A 1.0 run whose send failed (or whose
worker stopped) asks again, through `send_notification` or a retried commit: a new worker then
sets `next_attempt_at` and the relay takes the row over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.engine import Connection, Engine

from activities.mailer import SEND_DEADLINE, MailerPool, message_id
from parcours.settings import Settings
from store import models
from store import queries as q

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = 4
"""E-mails claimed at a time (the SMTP connections a relay keeps: MailerPool's size)."""
LEASE_SECONDS = 8 * 60.0
"""How long a claim holds: past BATCH_SIZE × SEND_DEADLINE (6 minutes) and the marking, so only a
stopped relay loses its rows."""
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 600.0
"""Seconds before the retry of an e-mail SMTP refused: 5, 10, 20, … then every 10 minutes."""
STOP_GRACE = SEND_DEADLINE + 10
"""A stopping worker lets its relay finish the e-mail it is sending (bounded by the send
deadline); the other e-mails in hand are released for another relay at once."""


def backoff(attempts: int) -> timedelta:
    """The wait before the next try of an e-mail that has failed `attempts` times (≥ 1)."""
    return timedelta(seconds=min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(max(attempts, 1) - 1, 20)))


def _table() -> Table:
    table: Table = models.Notification.__table__  # type: ignore[attr-defined]
    return table


@dataclass(frozen=True)
class Claimed:
    """A row in hand: what the relay needs to send it and mark it."""

    key: str
    pathway_id: str
    recipients: list[str]
    subject: str
    body: str
    attempts: int


class OutboxRelay:
    """Delivers the pending e-mails of one read model; one per worker process."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        lease_seconds: float = LEASE_SECONDS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = settings.outbox_poll_seconds
        self.batch_size = batch_size
        self.mailer = MailerPool(settings, size=batch_size)  # each pathway of a batch gets a connection
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: ThreadPoolExecutor | None = None

    # --- The loop ---------------------------------------------------------------------------

    def wake(self) -> None:
        """A commit recorded e-mails: look now rather than at the next poll. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Finish the e-mail being sent, give the other claimed ones back, then leave the loop."""
        self._stopping = True
        self.wake()

    async def run(self) -> None:
        """Deliver due e-mails until stopped (or cancelled): a batch right after a full one,
        otherwise wait for a wake-up or the poll interval. A database outage is logged and
        retried at the next poll."""
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    handled = await self.deliver_due()
                except Exception:  # the read model unreachable: try again at the next poll
                    log.exception("outbox relay: the pending e-mails could not be read")
                    handled = 0
                if handled >= self.batch_size or self._stopping:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        finally:
            await asyncio.shield(self.aclose())

    async def aclose(self) -> None:
        """Close the SMTP connections and the database thread (a relay used without `run`)."""
        try:
            await self.mailer.close()
        except Exception:  # noqa: BLE001  (best effort: QUIT on connections going away anyway)
            log.debug("outbox relay: closing SMTP connections", exc_info=True)
        if self._db is not None:
            self._db.shutdown(wait=False)
            self._db = None

    # --- One pass ---------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim up to `batch_size` due e-mails and send them, each pathway's in order (the
        pathways side by side), marking each one. Returns how many were claimed."""
        token = uuid.uuid4().hex
        rows = await self._in_db(self._claim, token, q.now())
        by_pathway: dict[str, list[Claimed]] = {}
        for row in rows:
            by_pathway.setdefault(row.pathway_id, []).append(row)
        await asyncio.gather(*(self._deliver_in_order(token, queue) for queue in by_pathway.values()))
        return len(rows)

    async def _deliver_in_order(self, token: str, rows: list[Claimed]) -> None:
        for index, row in enumerate(rows):
            if self._stopping:  # the worker stops: another relay takes the rest without waiting for the lease
                await self._in_db(self._release, [r.key for r in rows[index:]], token)
                return
            await self._deliver(row, token)

    async def _deliver(self, row: Claimed, token: str) -> None:
        headers = {"Message-ID": message_id(row.key, self.settings.public_url), "X-Parcours-Key": row.key}
        try:
            async with asyncio.timeout(SEND_DEADLINE):
                await self.mailer.send(to=row.recipients, subject=row.subject, body=row.body, headers=headers)
        except Exception as error:  # SMTP refused, unreachable, too slow, or no recipient: retried later
            reason = str(error) or type(error).__name__
            log.warning("e-mail %s not sent (attempt %d): %s", row.key, row.attempts + 1, reason)
            try:
                await self._in_db(self._mark_failed, row, token, reason[:500], q.now())
            except Exception:  # the claim expires: the row is tried again after the lease
                log.exception("outbox relay: could not record the failure of e-mail %s", row.key)
            return
        try:
            await self._in_db(self._mark_sent, row.key, q.now())
        except Exception:  # the documented exception: sent again after the lease, same Message-ID
            log.exception("outbox relay: e-mail %s was sent but could not be marked sent", row.key)

    # --- The database (on the relay's own thread) -------------------------------------------

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        if self._db is None:
            self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    @staticmethod
    def _due(table: Table, now: datetime) -> Any:
        return and_(
            table.c.status == "pending",
            table.c.next_attempt_at <= now,  # NULL: a release 1.0 worker's row, still its own (see below)
            or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
        )

    def _claim(self, token: str, now: datetime) -> list[Claimed]:
        table = _table()
        pick = select(table.c.key).where(self._due(table, now))
        pick = pick.order_by(table.c.next_attempt_at, table.c.created_at, table.c.key)
        pick = pick.limit(self.batch_size)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            keys = list(connection.execute(pick).scalars())
            if not keys:
                return []
            connection.execute(
                update(table)
                .where(table.c.key.in_(keys), self._due(table, now))  # checked again under the write lock
                .values(claimed_until=now + self.lease, claim_token=token)
            )
            return self._claimed(connection, token, keys)

    @staticmethod
    def _claimed(connection: Connection, token: str, keys: list[str]) -> list[Claimed]:
        table = _table()
        rows = connection.execute(
            select(table.c.key, table.c.pathway_id, table.c.recipients, table.c.subject, table.c.body, table.c.attempts)
            .where(table.c.key.in_(keys), table.c.claim_token == token)
            .order_by(table.c.next_attempt_at, table.c.created_at, table.c.key)
        ).all()
        return [Claimed(r.key, r.pathway_id, list(r.recipients or []), r.subject, r.body, r.attempts) for r in rows]

    def _release(self, keys: list[str], token: str) -> None:
        table = _table()
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.key.in_(keys), table.c.claim_token == token)
                .values(claimed_until=None, claim_token=None)
            )

    def _mark_sent(self, key: str, now: datetime) -> None:
        """Sent: whoever holds the claim now (the server accepted it; no one should send it again)."""
        table = _table()
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.key == key, table.c.status == "pending")
                .values(
                    status="sent",
                    sent_at=now,
                    attempts=table.c.attempts + 1,
                    claimed_until=None,
                    claim_token=None,
                )
            )

    def _mark_failed(self, row: Claimed, token: str, error: str, now: datetime) -> None:
        """Not sent: try again after the backoff, unless another relay took the row meanwhile."""
        table = _table()
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.key == row.key, table.c.status == "pending", table.c.claim_token == token)
                .values(
                    attempts=table.c.attempts + 1,
                    last_error=error,
                    next_attempt_at=now + backoff(row.attempts + 1),
                    claimed_until=None,
                    claim_token=None,
                )
            )
