"""E-mail rendering: a pure function over Jinja templates (French), tested without SMTP.
E-mails name the pathway by its reference, never the person: the link leads to the app, where
access is need-to-know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from parcours import presenters
from parcours.presenters import GTO_ACTIONS

SUBJECT_MAX = 150
"""Longer subjects (a long step title) are cut, with an ellipsis."""
ACTIONS = {action: gto.done for action, gto in GTO_ACTIONS.items()}
"""What each GTO decision did, as the e-mails say it (the labels live in parcours.presenters)."""

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def french_datetime(moment: datetime | None) -> str:
    """'3 décembre 2026 à 14 h 05' in Europe/Paris (the one formatter of parcours.presenters)."""
    return presenters.french_datetime(moment, empty="sans échéance")


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
    return RenderedEmail(subject=trim_subject(subject.removeprefix("Subject:")), body=body.lstrip("\n"))


def trim_subject(subject: str) -> str:
    """One line, single spaces, at most SUBJECT_MAX characters."""
    line = " ".join(subject.split())
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1].rstrip() + "…"
