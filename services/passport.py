"""The savoir-être passport (issue 11 §3): every soft-skills assessment of a person's pathways
(a diagnostic, a tutor's bilan, a review), with who assessed it and when; the progress per skill
over time; a PDF of what was recognised. Shared with the partners of the follow-up group only
with the person's consent, recorded by the referent organisation and withdrawable; without it
only the referent sees it. Every view and every consent change is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pygal
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from definitions.schema import SOFT_SKILL_SCALE, SOFT_SKILLS
from parcours.presenters import aware, french_date
from services.documents import CHART_STYLE, Document, inline_svg
from services.errors import ServiceError
from services.reading import Viewer, readable_pathway, record_view
from store import models, views
from store import queries as q
from store.db import session_scope

PERSON = "la-personne"
"""The audit log's actor for what the person does in their own space."""

SHARING = "passport_sharing"
"""The consent's purpose: the passport shown to the follow-up group, not only the referent."""


@dataclass(frozen=True)
class Assessment:
    """One soft-skills grid filled in: when, by whom, in which step, and the levels (1–4)."""

    at: datetime
    step: str
    label: str
    assessor: str
    organisation: str
    levels: dict[str, int]


@dataclass(frozen=True)
class Passport:
    pathway: models.Pathway
    person_name: str
    assessments: list[Assessment]
    shared: bool  # the person consented to sharing it with the follow-up group
    consent_at: datetime | None

    @property
    def skills(self) -> list[str]:
        """The skills assessed at least once, in the referential's order."""
        seen = {skill for a in self.assessments for skill in a.levels}
        return [skill for skill in SOFT_SKILLS if skill in seen]

    def progress(self) -> list[tuple[str, list[int | None], int | None]]:
        """Per skill: its level at each assessment (None where not assessed) and its last level."""
        rows = []
        for skill in self.skills:
            levels = [a.levels.get(skill) for a in self.assessments]
            last = next((level for level in reversed(levels) if level is not None), None)
            rows.append((skill, levels, last))
        return rows

    def recognised(self) -> list[tuple[str, int]]:
        """The skills whose last level is "Acquis" or "Maîtrisé": what the passport certifies."""
        return [(skill, last) for skill, _, last in self.progress() if last is not None and last >= 3]


def _in_force(session: Session, person_id: str) -> list[models.Consent]:
    """The person's consents to share the passport not withdrawn, latest first."""
    return list(
        session.exec(
            select(models.Consent)
            .where(
                models.Consent.person_id == person_id,
                models.Consent.purpose == SHARING,
                col(models.Consent.withdrawn_at).is_(None),
            )
            .order_by(col(models.Consent.given_at).desc())
        )
    )


def _consent(engine: Engine, person_id: str) -> models.Consent | None:
    with session_scope(engine) as session:
        found = _in_force(session, person_id)
        return found[0] if found else None


def _assessments(engine: Engine, pathway: models.Pathway) -> list[Assessment]:
    """Every soft-skills grid in the pathway's form answers, oldest first."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.Submission, models.Task, models.User)
            .join(models.Task, col(models.Task.id) == models.Submission.task_id, isouter=True)
            .join(models.User, col(models.User.id) == models.Submission.submitted_by, isouter=True)
            .where(models.Submission.pathway_id == pathway.id)
            .order_by(col(models.Submission.created_at))
        ).all()
        organisations = {o.id: o.name for o in session.exec(select(models.Organisation))}
    found = []
    for submission, task, user in rows:
        for field, value in submission.data.items():
            if isinstance(value, dict) and value and all(k in SOFT_SKILLS for k in value):
                found.append(
                    Assessment(
                        at=aware(submission.created_at or q.now()),
                        step=task.title if task else "Bilan d'immersion",
                        label=field,
                        assessor=user.name if user else submission.submitted_by.removeprefix("tuteur:"),
                        organisation="tuteur de la structure d'accueil"
                        if task is None or submission.submitted_by.startswith("tuteur:")
                        else organisations.get(task.organisation_id, task.organisation_id),
                        levels={k: int(v) for k, v in value.items() if v in SOFT_SKILL_SCALE},
                    )
                )
    return found


def passport(engine: Engine, user: Viewer, pathway_id: str, *, audit: bool = True) -> Passport:
    """The passport of a pathway's person, for who may read the pathway: its referent always, the
    rest of the follow-up group only once the person has consented to share it."""
    pathway, reason = readable_pathway(engine, user, pathway_id)
    consent = _consent(engine, pathway.person_id)
    if user.organisation_id != pathway.referent_org and consent is None:
        raise ServiceError(
            "Le passeport savoir-être n'est partagé qu'avec l'accord de la personne : il n'est visible que de "
            "la structure référente tant que cet accord n'est pas recueilli.",
            "forbidden",
        )
    if audit:
        record_view(engine, user, pathway_id=pathway.id, what="passport", reason=reason)
    return of_pathway(engine, pathway, consent)


def of_pathway(engine: Engine, pathway: models.Pathway, consent: models.Consent | None = None) -> Passport:
    """A pathway's passport, its access already decided (the person's own space reads it too)."""
    consent = consent or _consent(engine, pathway.person_id)
    person = views.get_person(engine, person_id=pathway.person_id)
    name = f"{person.first_name} {person.last_name}" if person and not person.anonymised_at else "Personne anonymisée"
    return Passport(
        pathway, name, _assessments(engine, pathway), consent is not None, consent.given_at if consent else None
    )


def withdraw_by_the_person(engine: Engine, person_id: str) -> bool:
    """The person withdraws their consent from their own space; whether one was withdrawn."""
    now = q.now()
    with session_scope(engine) as session:
        rows = _in_force(session, person_id)
        for row in rows:
            row.withdrawn_at, row.withdrawn_by = now, PERSON
            session.add(row)
        if rows:
            session.add(
                q.audit_event(
                    actor_user_id=PERSON,
                    actor_org_id=f"person:{person_id}",
                    action="consent_withdrawn",
                    detail={"purpose": SHARING, "by": "la personne"},
                )
            )
    return bool(rows)


def record_consent(engine: Engine, user: Viewer, pathway_id: str, *, given: bool) -> None:
    """The referent records the person's consent to share the passport, or its withdrawal."""
    pathway, _ = readable_pathway(engine, user, pathway_id)
    if user.organisation_id != pathway.referent_org:
        raise ServiceError("Seule la structure référente recueille l'accord de la personne.", "forbidden")
    now = q.now()
    with session_scope(engine) as session:
        current = _in_force(session, pathway.person_id)
        if given and not current:
            session.add(
                models.Consent(
                    id=q.new_id("cons"),
                    person_id=pathway.person_id,
                    purpose=SHARING,
                    given_at=now,
                    recorded_by=user.id,
                    recorded_by_org=user.organisation_id,
                )
            )
        elif not given:
            for row in current:
                row.withdrawn_at, row.withdrawn_by = now, user.id
                session.add(row)
        if given != bool(current):  # a change, not a repeated click: audited once
            session.add(
                q.audit_event(
                    actor_user_id=user.id,
                    actor_org_id=user.organisation_id,
                    action="consent_given" if given else "consent_withdrawn",
                    pathway_id=pathway.id,
                    detail={"purpose": SHARING},
                )
            )


# --- The chart and the PDF ----------------------------------------------------------------------


def chart_svg(passport: Passport) -> str:
    """The levels per skill at each assessment, as an inline SVG (pygal: no script, no network);
    the page shows the same figures as a table, the accessible alternative."""
    chart = pygal.Line(
        js=[],  # no script (the page's Content-Security-Policy, and no network)
        disable_xml_declaration=True,
        range=(1, 4),
        y_labels=list(SOFT_SKILL_SCALE),
        y_labels_major_every=1,
        show_minor_y_labels=False,
        height=320,
        width=800,
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        style=CHART_STYLE,
        title="Niveau par savoir-être (1 à développer … 4 maîtrisé)",
        x_title="Évaluations",
    )
    chart.x_labels = [f"{french_date(a.at)} – {a.step}" for a in passport.assessments]
    for skill, levels, _ in passport.progress():
        chart.add(SOFT_SKILLS[skill], levels)
    return inline_svg(chart)


def pdf(passport: Passport) -> bytes:
    """The passport as a PDF: the recognised skills, then every assessment."""
    document = Document(f"Passeport savoir-être – {passport.person_name}")
    line = document.line
    line("Passeport savoir-être", 18, "B", 10)
    line(passport.person_name, 14, "B", 8)
    line(f"Parcours {passport.pathway.id}, édité le {french_date(q.now())}.", 10)
    line("")
    line("Savoir-être reconnus (dernier niveau « Acquis » ou « Maîtrisé »)", 13, "B", 8)
    recognised = passport.recognised()
    for skill, level in recognised:
        line(f"• {SOFT_SKILLS[skill]} : {SOFT_SKILL_SCALE[level]}")
    if not recognised:
        line("Aucun pour l'instant.")
    line("")
    line("Évaluations", 13, "B", 8)
    for a in passport.assessments:
        line(f"{french_date(a.at)} – {a.step}, par {a.assessor} ({a.organisation})", 11, "B")
        for skill, level in a.levels.items():
            line(f"    {SOFT_SKILLS[skill]} : {level} – {SOFT_SKILL_SCALE[level]}", 10)
    if not passport.assessments:
        line("Aucune évaluation des savoir-être dans ce parcours.")
    return document.bytes()
