"""The dev stack's SMTP capture: an aiosmtpd server storing every e-mail in the read model, so a
demo shows what partners would receive (used only when no PARCOURS_SMTP_HOST is set)."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from sqlalchemy.engine import Engine

from store import models
from store.db import session_scope
from store.queries import now


class SmtpController(Controller):
    """aiosmtpd's controller, handing its own loop to each connection's SMTP protocol.

    Without a loop, aiosmtpd looks one up under `warnings.simplefilter("error")`, which swaps the
    process-wide warning filters from the server's thread: a module imported meanwhile by another
    thread then fails on a harmless ImportWarning (pygal's legacy import hook raises one)."""

    def factory(self) -> SMTP:
        return SMTP(self.handler, loop=self.loop, **self.SMTP_kwargs)


class CaptureHandler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        row = models.CapturedEmail(
            received_at=now(),
            mail_from=str(envelope.mail_from),
            recipients=list(envelope.rcpt_tos),
            subject=str(message["Subject"] or ""),
            body=body.get_content() if body else "",
        )
        await asyncio.to_thread(self._store, row)
        return "250 OK"

    def _store(self, row: models.CapturedEmail) -> None:
        with session_scope(self.engine) as session:
            session.add(row)


def start_capture(engine: Engine, *, port: int) -> SmtpController:
    controller = SmtpController(CaptureHandler(engine), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
