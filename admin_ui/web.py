"""Rendering helpers shared by the pages: the Jinja environment (French dates, working-day ages,
SLA badges), pagination, flash messages and CSRF tokens."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosmtplib
from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.datastructures import FormData
from starlette.responses import Response

from activities.mailer import send_email
from definitions.durations import working_days_between
from definitions.schema import EXIT_REASONS, SOFT_SKILL_SCALE, SOFT_SKILLS
from parcours import presenters
from parcours.presenters import STATUS_LABELS, aware
from services.requests import new_request_id
from store import views
from store.queries import list_organisations, now

PAGE_SIZE = 25
log = logging.getLogger(__name__)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

SLA_BADGES = {
    "on_time": ("Dans les délais", "fr-badge--success"),
    "due_soon": ("Échéance proche", "fr-badge--warning"),
    "overdue": ("En retard", "fr-badge--error"),
    "escalated": ("Escaladé au GTO", "fr-badge--error"),
}
ROLE_HOME = {
    "caseworker": "/taches",
    "gto_lead": "/gto",
    "designer": "/definitions",
    "admin": "/admin",
    "direction": "/direction",
}


def fr_date(moment: datetime | None) -> str:
    return presenters.french_date(moment)


def fr_datetime(moment: datetime | None) -> str:
    return presenters.french_datetime(moment)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if abs(count) > 1 else ''}"


def due_label(due: datetime | None) -> str:
    """'en retard de 3 jours ouvrés', 'échéance dans 2 jours ouvrés', 'échéance aujourd'hui'."""
    if due is None:
        return "sans échéance"
    due, current = aware(due), now()
    days = working_days_between(current, due)
    if due < current:
        late = max(-days, 0)
        return "en retard de " + (
            plural(late, "jour") + " ouvré" + ("s" if late > 1 else "") if late else "moins d'un jour"
        )
    if days == 0:
        return "échéance aujourd'hui"
    return f"échéance dans {plural(days, 'jour')} ouvré{'s' if days > 1 else ''}"


def waited_label(since: datetime | None) -> str:
    if since is None:
        return "—"
    days = working_days_between(aware(since), now())
    return "depuis aujourd'hui" if days <= 0 else f"depuis {plural(days, 'jour')} ouvré{'s' if days > 1 else ''}"


templates.env.filters.update(
    fr_date=fr_date,
    fr_datetime=fr_datetime,
    fr_time=presenters.french_time,
    due_label=due_label,
    waited_label=waited_label,
    org_type=presenters.organisation_type_label,
    role_label=presenters.role_label,
    basins_label=presenters.basins_label,
    completion_label=presenters.completion_label,
)


@pass_context
def request_token(context: Any, form: str) -> str:
    """A write form's hidden `request_id` (its idempotency token): the one just posted when the
    page shows that form again (after a refusal or a 503, sending it again acts at most once),
    else a new one for each rendering."""
    request = context.get("request")
    posted = getattr(request.state, "posted_request", None) if request is not None else None
    if posted is not None and posted[0] == form:
        return str(posted[1])
    return new_request_id()


def posted_request_id(request: Request, form: str, value: object) -> str | None:
    """The token a write form posted (None if absent), kept for that form if the page shows again."""
    token = value.strip() if isinstance(value, str) else ""
    if not token:
        return None
    request.state.posted_request = (form, token)
    return token


templates.env.globals.update(
    request_token=request_token,
    SLA_BADGES=SLA_BADGES,
    STATUS_LABELS=STATUS_LABELS,
    EXIT_REASONS=EXIT_REASONS,
    SOFT_SKILLS=SOFT_SKILLS,
    SOFT_SKILL_SCALE=SOFT_SKILL_SCALE,
    ROLE_HOME=ROLE_HOME,
)


def form_text(form: FormData, name: str) -> str:
    """A posted form's text field as sent ("" when absent, or a file); the services trim and check it."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def attachment(content: bytes | str, media_type: str, filename: str) -> Response:
    """A file the browser downloads (a CSV, a spreadsheet, a PDF, a JSON export) under this name."""
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def page_number(value: int | None) -> int:
    return max(1, min(value or 1, views.MAX_PAGE))


# --- Names for ids, shared by the pages ------------------------------------------------------


def basin_names(engine: Any) -> dict[str, str]:
    """Basin names by id, in name order."""
    return {b.id: b.name for b in views.list_basins(engine)}


def organisation_names(engine: Any) -> dict[str, str]:
    return {o.id: o.name for o in list_organisations(engine)}


# --- CSRF and flash messages ----------------------------------------------------------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def flash(request: Request, message: str, kind: str = "success") -> None:
    # Assign (not append in place): Starlette saves the session only when an item is set.
    request.session["flash"] = [*request.session.get("flash", []), {"message": message, "kind": kind}]


def pop_flashes(request: Request) -> list[dict[str, str]]:
    return list(request.session.pop("flash", []))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    user = getattr(request.state, "user", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf": csrf_token(request),
            "flashes": pop_flashes(request),
            "settings_mode": request.app.state.settings.mode,
            **context,
        },
        status_code=status_code,
    )


async def mail_sent(settings: Any, *, to: str, subject: str, body: str) -> bool:
    """Send an e-mail from a page (a one-time link): whether it left. A failure is logged for the
    operator and the page says so, showing the link to pass on by other means."""
    try:
        await send_email(settings, to=[to], subject=subject, body=body)
    except (aiosmtplib.SMTPException, OSError):
        log.exception("e-mail %r not sent", subject)
        return False
    return True
