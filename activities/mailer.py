"""Sending e-mail over SMTP (aiosmtplib), with the configured server or the dev capture.
A worker keeps a few connections open and reuses them: one SMTP session per e-mail costs a TCP
handshake, EHLO and QUIT each time."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib

from parcours.settings import Settings


def build_message(
    settings: Settings, *, to: list[str], subject: str, body: str, headers: dict[str, str] | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def _client(settings: Settings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host or "127.0.0.1",
        port=settings.smtp_port or settings.capture_smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls=settings.smtp_starttls,
        timeout=20,
    )


async def send_email(
    settings: Settings, *, to: list[str], subject: str, body: str, headers: dict[str, str] | None = None
) -> None:
    """One e-mail on its own connection. Raises aiosmtplib.SMTPException or OSError."""
    client = _client(settings)
    async with client:
        await client.send_message(build_message(settings, to=to, subject=subject, body=body, headers=headers))


class MailerPool:
    """Up to `size` reusable SMTP connections; a broken one is dropped and the send retried once
    on a fresh connection (the server may have closed an idle session)."""

    def __init__(self, settings: Settings, size: int = 4) -> None:
        self.settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)

    async def send(self, *, to: list[str], subject: str, body: str, headers: dict[str, str] | None = None) -> None:
        message = build_message(self.settings, to=to, subject=subject, body=body, headers=headers)
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else None
            for attempt in range(2):
                if client is None or not client.is_connected:
                    client = _client(self.settings)
                    await client.connect()
                try:
                    await client.send_message(message)
                    break
                except aiosmtplib.SMTPServerDisconnected:
                    client = None
                    if attempt == 1:
                        raise
                except (aiosmtplib.SMTPException, OSError):
                    await _close(client)
                    raise
            assert client is not None
            self._idle.put_nowait(client)


async def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
