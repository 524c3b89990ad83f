"""Sending one e-mail over SMTP (aiosmtplib), with the configured server or the dev capture."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from parcours.settings import Settings


async def send_email(settings: Settings, *, to: list[str], subject: str, body: str, headers: dict[str, str] | None = None) -> None:
    """Raise aiosmtplib.SMTPException or OSError when the server refuses or is unreachable."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host or "127.0.0.1",
        port=settings.smtp_port or settings.capture_smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls=settings.smtp_starttls,
        timeout=20,
    )
