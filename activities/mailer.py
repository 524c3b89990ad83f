"""Sending e-mail over SMTP (aiosmtplib), with the configured server or the dev capture.
A worker keeps a few connections open and reuses them: one SMTP session per e-mail costs a TCP
handshake, EHLO and QUIT each time."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiosmtplib

from parcours.settings import Settings

SMTP_TIMEOUT = 20.0
"""Seconds the SMTP client waits on each operation (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA)."""
SEND_DEADLINE = 90.0
"""Seconds one e-mail may take in all (a few operations, one reconnection): past it the send is
abandoned and counted as a failure. The outbox relay's lease (activities/outbox.py) exceeds it."""
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def message_id(key: str, public_url: str) -> str:
    """The e-mail's Message-ID, a function of its key alone (and of the site's host): a resend of
    the same key carries the same Message-ID, so the receiving side can recognise it. The key's
    `:` become `.`; any other character outside [A-Za-z0-9-_] is written `=XX` (its UTF-8 bytes
    in hex), so two keys never share a Message-ID."""
    local = []
    for index, char in enumerate(key):
        if char in _SAFE:
            local.append(char)
        elif char == ":" and 0 < index < len(key) - 1 and key[index - 1] != ":" and key[index + 1] != ":":
            local.append(".")  # a dot-atom: never first, last or doubled
        else:
            local.extend(f"={byte:02X}" for byte in char.encode())
    host = urlsplit(public_url).hostname or ""
    if not host or not all(c in _SAFE or c == "." for c in host) or ".." in host or host.strip(".") != host:
        host = "parcours.localhost"
    return f"<{''.join(local) or '=00'}@{host}>"


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
        timeout=SMTP_TIMEOUT,
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
    on a fresh connection (the server may have closed an idle session). A send cut short (an
    error, a deadline, a cancellation) closes its connection: the next one starts afresh."""

    def __init__(self, settings: Settings, size: int = 4) -> None:
        self.settings = settings
        self.size = size
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)

    async def send(self, *, to: list[str], subject: str, body: str, headers: dict[str, str] | None = None) -> None:
        message = build_message(self.settings, to=to, subject=subject, body=body, headers=headers)
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else None
            try:
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
            except BaseException:
                if client is not None and client.is_connected:
                    client.close()  # mid-exchange: no polite QUIT, the session is in an unknown state
                raise
            assert client is not None
            self._idle.put_nowait(client)

    async def close(self) -> None:
        """QUIT every idle connection (a worker stopping)."""
        while not self._idle.empty():
            await _close(self._idle.get_nowait())


async def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
