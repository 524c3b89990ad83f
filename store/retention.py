"""Retention: once every pathway of a person has been closed for longer than the referent
organisation's retention period, the person's data is anonymised (names, identifiers, contacts,
free-text notes and form answers). Temporal never held any of it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from store import models
from store.db import session_scope
from store.queries import new_id, now


def expired_persons(engine: Engine, *, at: datetime | None = None) -> list[str]:
    """Persons not yet anonymised whose pathways are all closed and past retention."""
    at = at or now()
    with session_scope(engine) as session:
        retention = {o.id: o.retention_days for o in session.exec(select(models.Organisation))}
        by_person: dict[str, bool] = {}
        for pathway in session.exec(select(models.Pathway)):
            closed = pathway.closed_at
            if closed is not None and closed.tzinfo is None:
                closed = closed.replace(tzinfo=at.tzinfo)
            expired = closed is not None and closed + timedelta(days=retention.get(pathway.referent_org, 730)) < at
            by_person[pathway.person_id] = by_person.get(pathway.person_id, True) and expired
        candidates = [person for person, expired in by_person.items() if expired]
        anonymised = {
            p.id
            for p in session.exec(select(models.Person).where(col(models.Person.id).in_(candidates)))
            if p.anonymised_at is not None
        }
    return sorted(set(candidates) - anonymised)


def anonymise(engine: Engine, *, person_ids: list[str], actor_user_id: str = "system") -> int:
    """Erase personal data in one transaction per person; keep anonymous counts and the audit."""
    done = 0
    for person_id in person_ids:
        with session_scope(engine) as session:
            person = session.get(models.Person, person_id)
            if person is None or person.anonymised_at is not None:
                continue
            pathway_ids = [
                p.id for p in session.exec(select(models.Pathway).where(models.Pathway.person_id == person_id))
            ]
            person.first_name, person.last_name = "Personne", "anonymisée"
            person.birth_date = person.email = person.phone = person.nir = person.france_travail_id = None
            person.anonymised_at = now()
            session.add(person)
            for model in (models.Note, models.Submission):
                for row in session.exec(select(model).where(col(model.pathway_id).in_(pathway_ids))):
                    session.delete(row)
            for pathway_id in pathway_ids:
                session.add(
                    models.AuditEvent(
                        id=new_id("ret"),
                        at=now(),
                        pathway_id=pathway_id,
                        actor_user_id=actor_user_id,
                        actor_org_id="system",
                        action="person_anonymised",
                        detail={"reason": "retention"},
                    )
                )
            done += 1
    return done


REGISTRATION_RETENTION_DAYS = 365
"""An exchange session's registrants (professionals, employers) are kept by name this long after
the session: then only the counts and the attendance remain."""


def expired_registrations(engine: Engine, *, at: datetime | None = None) -> list[str]:
    """Registrations still naming someone, of sessions ended more than a year ago."""
    cutoff = (at or now()) - timedelta(days=REGISTRATION_RETENTION_DAYS)
    with session_scope(engine) as session:
        ended = select(models.ExchangeSession.id).where(col(models.ExchangeSession.ends_at) < cutoff)
        return list(
            session.exec(
                select(models.ExchangeRegistration.id).where(
                    col(models.ExchangeRegistration.session_id).in_(ended),
                    col(models.ExchangeRegistration.anonymised_at).is_(None),
                )
            )
        )


def anonymise_registrations(engine: Engine, *, registration_ids: list[str]) -> int:
    """Erase the registrants' names and e-mails, and the e-mail addresses of what was sent to them
    (the outbox's e-mails, the employers' links); their organisation, the counts and the
    attendance stay, and the erasure is audited."""
    with session_scope(engine) as session:
        rows = list(
            session.exec(
                select(models.ExchangeRegistration).where(col(models.ExchangeRegistration.id).in_(registration_ids))
            )
        )
        for row in rows:
            for mail in session.exec(
                select(models.Notification).where(
                    models.Notification.pathway_id == f"rencontre:{row.session_id}",
                    col(models.Notification.key).startswith(f"rencontre:{row.id}:", autoescape=True),
                )
            ):
                mail.recipients = []
                session.add(mail)
            for link in session.exec(
                select(models.AccessLink).where(
                    models.AccessLink.subject_id == row.session_id, models.AccessLink.sent_to == row.email
                )
            ):
                link.sent_to = ""
                session.add(link)
            row.name, row.email, row.user_id, row.anonymised_at = "Inscrit anonymisé", f"anonyme:{row.id}", None, now()
            session.add(row)
            session.add(
                models.AuditEvent(
                    id=new_id("ret"),
                    at=now(),
                    actor_user_id="system",
                    actor_org_id="system",
                    action="exchange_registration_anonymised",
                    detail={"registration": row.id, "session": row.session_id, "reason": "retention"},
                )
            )
        return len(rows)
