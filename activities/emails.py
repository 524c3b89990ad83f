"""E-mail rendering: a pure function over Jinja templates (French), tested without SMTP.
E-mails name the pathway by its reference, never the person: the link leads to the app, where
access is need-to-know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from definitions.durations import PARIS

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
ACTIONS = {
    "reassign": "la tâche est confiée à une autre organisation",
    "extend": "le délai est prolongé",
    "add_step": "une étape est ajoutée au parcours",
    "close": "le parcours est clos",
    "unblock": "la situation est débloquée, le délai repart",
}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def french_datetime(moment: datetime | None) -> str:
    """'3 décembre 2026 à 14 h 05' in Europe/Paris."""
    if moment is None:
        return "sans échéance"
    local = moment.astimezone(PARIS)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year} à {local.hour} h {local.minute:02d}"


_env.filters["french_datetime"] = french_datetime


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str


def render_email(kind: str, context: dict[str, Any]) -> RenderedEmail:
    """Render templates/<kind>.txt.j2: its first line is the subject, the rest the body."""
    context = {"actions": ACTIONS, **context}
    text = _env.get_template(f"{kind}.txt.j2").render(**context)
    subject, _, body = text.partition("\n")
    return RenderedEmail(subject=subject.removeprefix("Subject:").strip(), body=body.lstrip("\n"))
