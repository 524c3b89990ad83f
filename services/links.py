"""One-time links for people without an account (a host employer today; the immersion's parties
and the person's own space build on it): each link has one purpose and one subject, is stored
hashed, expires, and is spent by the write it allows, in that write's transaction. Opening it only
shows; every opening and every use is audited. A link reaches its subject and nothing else."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from parcours.presenters import aware, french_datetime
from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import session_scope

LINK_ACTOR = "lien-unique"
"""The audit log's actor for what is done through a link (its purpose and subject say whose)."""


@dataclass(frozen=True)
class Link:
    """An open link: what it was made for."""

    purpose: str
    subject_id: str
    sent_to: str
    expires_at: datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    session: Session, *, purpose: str, subject_id: str, sent_to: str, created_by: str, valid_for: timedelta
) -> str:
    """A new link's token (shown once: only its hash is kept), written in the caller's transaction."""
    token = secrets.token_urlsafe(32)
    now = q.now()
    session.add(
        models.AccessLink(
            token_hash=digest(token),
            purpose=purpose,
            subject_id=subject_id,
            sent_to=sent_to,
            created_by=created_by,
            created_at=now,
            expires_at=now + valid_for,
        )
    )
    return token


def _usable(row: models.AccessLink | None, purpose: str, *, spent_ok: bool = False) -> models.AccessLink:
    """The link's row, or the French refusal its holder sees (never which part of it was wrong)."""
    if row is None or row.purpose != purpose:
        raise ServiceError("Ce lien n'est pas valide. Demandez un nouveau lien à votre contact.", "not_found")
    if row.used_at is not None and not spent_ok:
        raise ServiceError(
            f"Ce lien a déjà servi, le {french_datetime(aware(row.used_at))} : vos informations ont été "
            "enregistrées. Pour les modifier, demandez un nouveau lien à votre contact.",
            "conflict",
        )
    if row.expires_at is None or aware(row.expires_at) <= q.now():
        raise ServiceError("Ce lien a expiré. Demandez un nouveau lien à votre contact.", "forbidden")
    return row


def _audit(session: Session, row: models.AccessLink, action: str) -> None:
    session.add(
        q.audit_event(
            actor_user_id=LINK_ACTOR,
            actor_org_id=f"{row.purpose}:{row.subject_id}",
            action=action,
            detail={"purpose": row.purpose, "subject": row.subject_id, "created_by": row.created_by},
        )
    )


def open_link(engine: Engine, *, token: str, purpose: str, spent_ok: bool = False) -> Link:
    """The link behind `token` if it serves `purpose` and is neither spent (unless `spent_ok`:
    reading again what one signed) nor expired; the opening is audited. It is not spent: a mail
    client that previews it spends nothing."""
    with session_scope(engine) as session:
        row = _usable(session.get(models.AccessLink, digest(token)), purpose, spent_ok=spent_ok)
        _audit(session, row, "link_opened")
        return Link(row.purpose, row.subject_id, row.sent_to, aware(row.expires_at))  # type: ignore[arg-type]


def spend(session: Session, *, token: str, purpose: str) -> Link:
    """Spend the link in the caller's transaction (the write it allows commits with it, or
    neither does). Of two submissions at once, one spends it and the other is refused."""
    row = _usable(session.get(models.AccessLink, digest(token)), purpose)
    spent = session.execute(
        update(models.AccessLink)
        .where(col(models.AccessLink.token_hash) == row.token_hash, col(models.AccessLink.used_at).is_(None))
        .values(used_at=q.now())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(row)
        _usable(row, purpose)
    _audit(session, row, "link_used")
    return Link(row.purpose, row.subject_id, row.sent_to, aware(row.expires_at))  # type: ignore[arg-type]
