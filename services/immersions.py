"""Immersions in a company (PMSMP, issue 11 §2): a prescriber proposes an immersion of a person
with a host from the directory, filling in their part of the convention (the fields of the
official agreement form, cerfa 13912); the host's contact accepts, completing its part (the
tutor, the place, the tasks, risk prevention), or declines, through a one-time link; then each
party signs through their own link, seeing exactly the text they sign (a simple electronic
signature: a timestamped, audited consent record with the text's hash, no third-party service).

The legal rules are enforced here, each refusal a French sentence that names the rule:
- the prescriber's organisation type may prescribe (the territory file's `immersion_prescribers`);
- an immersion lasts one month at most, and is renewed once at most;
- a person spends two months at most with the same host (same SIRET) within twelve months;
- every party signs before the start date."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from definitions.durations import PARIS, is_working_day
from definitions.schema import SOFT_SKILL_SCALE, SOFT_SKILLS, Definition, ImmersionStep
from definitions.territory import IMMERSION_PRESCRIBERS
from services import links
from services.documents import Document
from services.errors import ServiceError, quoted
from services.reading import Viewer, readable_pathway
from store import models
from store import queries as q
from store.db import session_scope

ANSWER, SIGNATURE, BILAN = "immersion_answer", "immersion_signature", "immersion_bilan"
BILAN_DAYS_AFTER = 30
"""The tutor's bilan link stays valid this many days after the immersion's end."""
LINK_DAYS = 10
PARTIES = {
    "person": "la personne",
    "host": "la structure d'accueil",
    "prescriber": "le prescripteur",
    "accompanying": "la structure d'accompagnement",
}
OBJECTIVES = {
    "decouvrir": "Découvrir un métier ou un secteur d'activité",
    "confirmer": "Confirmer un projet professionnel",
    "recrutement": "Initier une démarche de recrutement",
}
MAX_WEEKLY_HOURS = 48
TUTOR = "tuteur:"
"""A form answer written by a host's tutor (no account): `tuteur:<name>` as its author."""
SAME_HOST_DAYS = 62
"""Two months with the same host within twelve: counted as 62 days (two months of 31 days, so a
month renewed once always fits)."""


@dataclass
class Proposal:
    """The prescriber's part of the convention."""

    host_id: str = ""
    start_date: str = ""
    end_date: str = ""
    weekly_hours: str | int = ""
    objectives: list[str] = field(default_factory=list)
    accompanying_org: str = ""
    renewal_of: str = ""


@dataclass
class HostPart:
    """The host's part of the convention, completed through its link."""

    tutor_name: str = ""
    tutor_job: str = ""
    tutor_email: str = ""
    place: str = ""
    schedule: str = ""
    tasks: str = ""
    risk_prevention: str = ""


# --- The legal rules ------------------------------------------------------------------------


def prescribers(engine: Engine) -> list[str]:
    stored = q.get_setting(engine, key=q.IMMERSION_PRESCRIBERS)
    return list(json.loads(stored)) if stored else list(IMMERSION_PRESCRIBERS)


def _dates(proposal: Proposal, errors: dict[str, str]) -> tuple[date, date] | None:
    try:
        start, end = date.fromisoformat(proposal.start_date.strip()), date.fromisoformat(proposal.end_date.strip())
    except ValueError:
        errors["start_date"] = "Dates de début et de fin attendues (AAAA-MM-JJ)."
        return None
    if end < start:
        errors["end_date"] = f"La fin ({end:%d/%m/%Y}) précède le début ({start:%d/%m/%Y})."
        return None
    return start, end


def days(start: date, end: date) -> int:
    return (end - start).days + 1


def check_rules(
    session: Session, *, person_id: str, host: models.Host, start: date, end: date, renewal_of: str | None
) -> None:
    """The duration, renewal and same-host rules, each refused with its French message."""
    if end > start + relativedelta(months=1) - timedelta(days=1):
        raise ServiceError(
            f"Règle de durée : une immersion dure un mois au plus (du {start:%d/%m/%Y} au "
            f"{(start + relativedelta(months=1) - timedelta(days=1)):%d/%m/%Y} au plus tard) ; elle peut être "
            "renouvelée une fois.",
            "invalid",
            {"end_date": "Un mois au plus."},
        )
    if renewal_of:
        previous = session.get(models.Immersion, renewal_of)
        if previous is None or previous.person_id != person_id or previous.host_id != host.id:
            raise ServiceError("Renouvellement : l'immersion renouvelée est inconnue pour cette personne et ce lieu.")
        if previous.renewal_of:
            raise ServiceError(
                "Règle de renouvellement : une immersion n'est renouvelable qu'une fois ; celle-ci est déjà un "
                "renouvellement.",
                "conflict",
                {"renewal_of": "Déjà renouvelée une fois."},
            )
    since = end - relativedelta(months=12)
    earlier = session.exec(
        select(models.Immersion).where(
            models.Immersion.person_id == person_id,
            models.Immersion.host_siret == host.siret,
            col(models.Immersion.status).in_(["proposed", "accepted", "signed"]),
            col(models.Immersion.end_date) >= since,
        )
    ).all()
    total = days(start, end) + sum(days(max(i.start_date, since), i.end_date) for i in earlier)
    if total > SAME_HOST_DAYS:
        raise ServiceError(
            f"Règle des deux mois : une personne passe au plus deux mois ({SAME_HOST_DAYS} jours) dans la même "
            f"structure d'accueil sur douze mois ; avec celle-ci, {total} jours chez « {quoted(host.name, 60)} ».",
            "conflict",
            {"end_date": "Deux mois au plus sur douze mois avec ce lieu."},
        )


# --- Proposal and the host's answer ----------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A link created for someone: to e-mail, and to show once to the prescriber."""

    immersion: models.Immersion
    url: str
    email: str
    party: str


def propose(engine: Engine, user: Viewer, pathway_id: str, proposal: Proposal, *, public_url: str) -> Sent:
    """A new immersion of the pathway's person with a host, and the host's link to answer it."""
    pathway, _ = readable_pathway(engine, user, pathway_id)
    organisation = q.get_organisation(engine, organisation_id=user.organisation_id)
    allowed = prescribers(engine)
    if organisation is None or organisation.type not in allowed:
        raise ServiceError(
            "Règle du prescripteur : seules les organisations habilitées prescrivent une immersion "
            f"({', '.join(allowed)}) ; la vôtre ({organisation.type if organisation else '—'}) ne l'est pas.",
            "forbidden",
        )
    if pathway.status == "closed":
        raise ServiceError("Ce parcours est clos : aucune immersion ne peut y être proposée.", "conflict")
    errors: dict[str, str] = {}
    span = _dates(proposal, errors)
    try:
        hours = int(str(proposal.weekly_hours).strip())
        if not 1 <= hours <= MAX_WEEKLY_HOURS:
            raise ValueError
    except ValueError:
        hours = 0
        errors["weekly_hours"] = f"Durée hebdomadaire : un nombre d'heures de 1 à {MAX_WEEKLY_HOURS}."
    objectives = [o for o in proposal.objectives if o in OBJECTIVES]
    if not objectives:
        errors["objectives"] = "Objectifs : au moins un (découvrir, confirmer, recrutement)."
    accompanying = proposal.accompanying_org.strip() or None
    if accompanying == user.organisation_id:
        accompanying = None  # the prescriber accompanies: no fourth party
    if accompanying and q.get_organisation(engine, organisation_id=accompanying) is None:
        errors["accompanying_org"] = f"Structure d'accompagnement inconnue : {quoted(accompanying, 40)}."
    if errors or span is None:
        raise ServiceError(
            "La proposition d'immersion contient des erreurs : " + " ".join(errors.values()), "invalid", errors
        )
    start, end = span
    if start <= q.now().date():
        raise ServiceError(
            "Règle des signatures : tous signent avant le début de l'immersion ; choisissez un début à partir de "
            "demain.",
            "invalid",
            {"start_date": "À partir de demain."},
        )
    with session_scope(engine) as session:
        host = session.get(models.Host, proposal.host_id)
        if host is None:
            raise ServiceError(
                f"Structure d'accueil inconnue : {quoted(proposal.host_id, 40)}.", "invalid", {"host_id": "Inconnue."}
            )
        check_rules(
            session,
            person_id=pathway.person_id,
            host=host,
            start=start,
            end=end,
            renewal_of=proposal.renewal_of.strip() or None,
        )
        row = models.Immersion(
            task_id=_immersion_task(session, pathway, user.organisation_id),
            id=q.new_id("imm"),
            pathway_id=pathway.id,
            person_id=pathway.person_id,
            host_id=host.id,
            host_siret=host.siret,
            prescriber_org=user.organisation_id,
            prescriber_user=user.id,
            accompanying_org=accompanying,
            renewal_of=proposal.renewal_of.strip() or None,
            start_date=start,
            end_date=end,
            weekly_hours=hours,
            objectives=objectives,
            created_at=q.now(),
        )
        session.add(row)
        token = links.create(
            session,
            purpose=ANSWER,
            subject_id=row.id,
            sent_to=host.contact_email,
            created_by=user.id,
            valid_for=timedelta(days=LINK_DAYS),
        )
        _audit(session, user.id, user.organisation_id, row, "immersion_proposed", {"host": host.id})
    return Sent(row, f"{public_url.rstrip('/')}/immersion/reponse/{token}", host.contact_email, "host")


@dataclass(frozen=True)
class ForHost:
    immersion: models.Immersion
    host: models.Host
    prescriber: str


def for_host(engine: Engine, token: str) -> ForHost:
    """What the host's link shows: the proposal (no more of the person than their first name)."""
    link = links.open_link(engine, token=token, purpose=ANSWER)
    with session_scope(engine) as session:
        row = _immersion(session, link.subject_id)
        host = session.get(models.Host, row.host_id)
        org = session.get(models.Organisation, row.prescriber_org)
    assert host is not None
    return ForHost(row, host, org.name if org else row.prescriber_org)


def answer(engine: Engine, token: str, *, accept: bool, part: HostPart, public_url: str) -> list[Sent]:
    """The host accepts, completing its part of the convention (then every party gets a link to
    sign), or declines. The link is spent with the answer, in one transaction."""
    clean = _check_host_part(part) if accept else None
    with session_scope(engine) as session:
        link = links.spend(session, token=token, purpose=ANSWER)
        row = _immersion(session, link.subject_id)
        if row.status != "proposed":
            raise ServiceError("Cette proposition a déjà reçu une réponse.", "conflict")
        row.answered_at = q.now()
        if not accept:
            row.status = "declined"
            session.add(row)
            _audit(session, links.LINK_ACTOR, f"host:{row.host_id}", row, "immersion_declined", {})
            return []
        assert clean is not None
        row.status, row.convention = "accepted", clean
        session.add(row)
        _audit(session, links.LINK_ACTOR, f"host:{row.host_id}", row, "immersion_accepted", {})
        return _signature_links(session, row, public_url)


def _check_host_part(part: HostPart) -> dict[str, str]:
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for name, label, required in (
        ("tutor_name", "Nom du tuteur", True),
        ("tutor_job", "Fonction du tuteur", True),
        ("tutor_email", "E-mail du tuteur", True),
        ("place", "Lieu de l'immersion", True),
        ("schedule", "Horaires", True),
        ("tasks", "Activités confiées", True),
        ("risk_prevention", "Prévention des risques", True),
    ):
        value = (getattr(part, name) or "").strip()
        if required and not value:
            errors[name] = f"{label} : à renseigner."
        elif len(value) > 2000:
            errors[name] = f"{label} : 2 000 caractères au plus."
        clean[name] = value
    if "tutor_email" not in errors and ("@" not in clean["tutor_email"] or " " in clean["tutor_email"]):
        errors["tutor_email"] = "E-mail du tuteur : adresse invalide."
    if errors:
        raise ServiceError("La convention n'est pas complète : " + " ".join(errors.values()), "invalid", errors)
    return clean


def _signature_links(session: Session, row: models.Immersion, public_url: str) -> list[Sent]:
    """A link for each party to sign, e-mailed by the caller."""
    person = session.get(models.Person, row.person_id)
    host = session.get(models.Host, row.host_id)
    prescriber = session.get(models.User, row.prescriber_user)
    accompanying = session.get(models.Organisation, row.accompanying_org) if row.accompanying_org else None
    recipients = {
        # A person without an e-mail gets the link through the prescriber, who passes it on.
        "person": (person.email if person and person.email else "") or (prescriber.email if prescriber else ""),
        "host": host.contact_email if host else "",
        "prescriber": prescriber.email if prescriber else "",
        **({"accompanying": accompanying.email} if accompanying else {}),
    }
    sent = []
    for party, email in recipients.items():
        token = links.create(
            session,
            purpose=SIGNATURE,
            subject_id=f"{row.id}:{party}",
            sent_to=email,
            created_by=row.prescriber_user,
            valid_for=timedelta(days=LINK_DAYS),
        )
        sent.append(Sent(row, f"{public_url.rstrip('/')}/immersion/signature/{token}", email, party))
    return sent


# --- Signatures -------------------------------------------------------------------------------


def parties(row: models.Immersion) -> list[str]:
    return ["person", "host", "prescriber", *(["accompanying"] if row.accompanying_org else [])]


def convention_text(engine: Engine, row: models.Immersion) -> list[tuple[str, str]]:
    """The convention, as every party sees and signs it: (heading, text) pairs."""
    with session_scope(engine) as session:
        person = session.get(models.Person, row.person_id)
        host = session.get(models.Host, row.host_id)
        prescriber = session.get(models.Organisation, row.prescriber_org)
        accompanying = session.get(models.Organisation, row.accompanying_org) if row.accompanying_org else None
    c = row.convention
    return [
        ("Bénéficiaire", f"{person.first_name} {person.last_name}" if person else row.person_id),
        ("Structure d'accueil", f"{host.name}, SIRET {host.siret}, {host.address}" if host else row.host_id),
        ("Prescripteur", prescriber.name if prescriber else row.prescriber_org),
        ("Structure d'accompagnement", accompanying.name if accompanying else "le prescripteur"),
        ("Tuteur", f"{c.get('tutor_name', '')}, {c.get('tutor_job', '')} ({c.get('tutor_email', '')})"),
        (
            "Dates",
            f"du {row.start_date:%d/%m/%Y} au {row.end_date:%d/%m/%Y} ({days(row.start_date, row.end_date)} jours)"
            + (" — renouvellement" if row.renewal_of else ""),
        ),
        ("Durée hebdomadaire", f"{row.weekly_hours} heures ; horaires : {c.get('schedule', '')}"),
        ("Lieu", c.get("place", "")),
        ("Objectifs", " ; ".join(OBJECTIVES[o] for o in row.objectives)),
        ("Activités confiées", c.get("tasks", "")),
        ("Prévention des risques", c.get("risk_prevention", "")),
    ]


def text_hash(text: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(text, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class ToSign:
    immersion: models.Immersion
    party: str
    text: list[tuple[str, str]]
    signed: list[models.ImmersionSignature]


def _party_link(link: links.Link) -> tuple[str, str]:
    immersion_id, _, party = link.subject_id.rpartition(":")
    return immersion_id, party


def to_sign(engine: Engine, token: str, *, signed_ok: bool = False) -> ToSign:
    """What a party's link shows; `signed_ok`: the party signed already and reads it again (the
    convention's PDF stays theirs until the link expires)."""
    link = links.open_link(engine, token=token, purpose=SIGNATURE, spent_ok=signed_ok)
    immersion_id, party = _party_link(link)
    with session_scope(engine) as session:
        row = _immersion(session, immersion_id)
        signed = list(
            session.exec(select(models.ImmersionSignature).where(models.ImmersionSignature.immersion_id == row.id))
        )
    return ToSign(row, party, convention_text(engine, row), signed)


@dataclass(frozen=True)
class Signed:
    immersion: models.Immersion
    bilan: Sent | None  # the tutor's link, once every party has signed


def sign(engine: Engine, token: str, *, signer_name: str, agreed: bool, seen_hash: str, public_url: str = "") -> Signed:
    """A party's signature of the text it saw (its hash must be the convention's current one),
    before the start date. The last signature makes the convention signed."""
    signer_name = signer_name.strip()
    if not agreed or not signer_name or len(signer_name) > 200:
        raise ServiceError(
            "Pour signer, écrivez votre nom et cochez « J'ai lu et j'accepte la convention ».",
            "invalid",
            {"signer_name": "Nom et accord requis."},
        )
    link = links.open_link(engine, token=token, purpose=SIGNATURE)
    immersion_id, party = _party_link(link)
    row = _immersion_readonly(engine, immersion_id)
    current = text_hash(convention_text(engine, row))
    if seen_hash != current:
        raise ServiceError(
            "La convention a changé depuis que vous l'avez ouverte : relisez-la avant de signer.", "conflict"
        )
    if q.now().date() >= row.start_date:
        raise ServiceError(
            f"Règle des signatures : tous signent avant le début de l'immersion (le {row.start_date:%d/%m/%Y}) ; "
            "il est trop tard pour signer cette convention.",
            "conflict",
        )
    with session_scope(engine) as session:
        links.spend(session, token=token, purpose=SIGNATURE)
        row = _immersion(session, immersion_id)
        if row.status not in ("accepted",):
            raise ServiceError("Cette convention n'attend plus de signature.", "conflict")
        session.add(
            models.ImmersionSignature(
                id=q.new_id("sig"),
                immersion_id=row.id,
                party=party,
                signer_name=signer_name,
                signed_at=q.now(),
                document_hash=current,
            )
        )
        session.flush()
        done = {
            s.party
            for s in session.exec(
                select(models.ImmersionSignature).where(models.ImmersionSignature.immersion_id == row.id)
            )
        }
        _audit(session, links.LINK_ACTOR, f"{party}:{row.id}", row, "immersion_signed", {"party": party})
        bilan = None
        if set(parties(row)) <= done:
            row.status, row.signed_at = "signed", q.now()
            session.add(row)
            _audit(session, links.LINK_ACTOR, f"{party}:{row.id}", row, "immersion_convention_signed", {})
            tutor = row.convention.get("tutor_email", "")
            token = links.create(
                session,
                purpose=BILAN,
                subject_id=row.id,
                sent_to=tutor,
                created_by=row.prescriber_user,
                valid_for=(row.end_date - q.now().date()) + timedelta(days=BILAN_DAYS_AFTER),
            )
            bilan = Sent(row, f"{public_url.rstrip('/')}/immersion/bilan/{token}", tutor, "tutor")
            for reminder in tutor_reminders(row, bilan.url):
                session.add(reminder)
        return Signed(row, bilan)


# --- The tutor's reminders --------------------------------------------------------------------

REMINDER_HOUR = time(9, 0)
"""Tutors are reminded at 9:00 (Paris) on a working day."""


def reminder_days(start: date, end: date) -> tuple[date, date]:
    """The mid-point check (the working day halfway through) and the bilan (the immersion's last
    working day), in working days."""
    working = [start + timedelta(days=i) for i in range(days(start, end)) if is_working_day(start + timedelta(days=i))]
    if not working:
        return start, end
    return working[(len(working) - 1) // 2], working[-1]


def tutor_reminders(row: models.Immersion, bilan_url: str) -> list[models.Notification]:
    """The tutor's two reminders, as e-mails of the outbox due at their day: every worker's relay
    sends them then (and retries them), like every other e-mail."""
    tutor = row.convention.get("tutor_email", "")
    midpoint, last = reminder_days(row.start_date, row.end_date)
    texts = {
        "midpoint": (
            midpoint,
            "[Parcours] Point d'étape de l'immersion",
            "Bonjour,\n\nL'immersion que vous encadrez arrive à mi-parcours : c'est le moment du point "
            "d'étape avec la personne et son conseiller.\n",
        ),
        "bilan": (
            last,
            "[Parcours] Bilan de l'immersion à remplir",
            "Bonjour,\n\nL'immersion que vous encadrez se termine aujourd'hui. Merci de remplir son bilan "
            f"(objectifs, savoir-être, intention d'embauche) par ce lien, une seule fois :\n{bilan_url}\n",
        ),
    }
    return [
        models.Notification(
            key=f"immersion:{row.id}:{kind}",
            kind=f"immersion_{kind}",
            pathway_id=row.pathway_id,
            task_id=row.task_id or f"immersion:{row.id}",
            recipients=[tutor],
            subject=subject,
            body=body,
            status="pending",
            created_at=q.now(),
            next_attempt_at=datetime.combine(day, REMINDER_HOUR, tzinfo=PARIS).astimezone(UTC),
        )
        for kind, (day, subject, body) in texts.items()
    ]


# --- The tutor's bilan ------------------------------------------------------------------------


@dataclass(frozen=True)
class BilanIn:
    objectives_met: list[str] = field(default_factory=list)
    skills: dict[str, str] = field(default_factory=dict)  # skill id -> "1".."4" or ""
    hiring: str = ""  # "oui" or "non"
    comment: str = ""


@dataclass(frozen=True)
class Bilan:
    immersion: models.Immersion
    outcome: str  # the immersion step's outcome: embauche or sans_embauche


def for_tutor(engine: Engine, token: str, *, given_ok: bool = False) -> models.Immersion:
    link = links.open_link(engine, token=token, purpose=BILAN, spent_ok=given_ok)
    return _immersion_readonly(engine, link.subject_id)


def record_bilan(engine: Engine, token: str, entry: BilanIn) -> Bilan:
    """The tutor's bilan, once: objectives met, the savoir-être grid (kept for the passport as a
    form answer of the pathway), the hiring intention that decides the immersion step's outcome."""
    if entry.hiring not in ("oui", "non"):
        raise ServiceError(
            "Indiquez si la structure d'accueil envisage d'embaucher la personne.", "invalid", {"hiring": "Oui ou non."}
        )
    levels: dict[str, int] = {}
    for skill, value in entry.skills.items():
        if skill in SOFT_SKILLS and str(value).strip():
            if str(value).strip() not in {str(k) for k in SOFT_SKILL_SCALE}:
                raise ServiceError(f"Niveau invalide pour « {SOFT_SKILLS[skill]} » : de 1 à 4.", "invalid")
            levels[skill] = int(str(value).strip())
    if len(entry.comment) > 2000:
        raise ServiceError("Commentaire : 2 000 caractères au plus.", "invalid", {"comment": "2 000 au plus."})
    with session_scope(engine) as session:
        link = links.spend(session, token=token, purpose=BILAN)
        row = _immersion(session, link.subject_id)
        if row.status != "signed":
            raise ServiceError("Cette immersion n'a pas de convention signée : pas de bilan.", "conflict")
        tutor = row.convention.get("tutor_name", "le tuteur")
        row.bilan = {
            "objectives_met": [o for o in entry.objectives_met if o in row.objectives],
            "skills": levels,
            "hiring": entry.hiring == "oui",
            "comment": entry.comment.strip(),
            "by": tutor,
            "at": q.now().isoformat(),
        }
        session.add(row)
        if levels:  # the passport reads every savoir-être grid of the pathway
            session.add(
                models.Submission(
                    id=q.new_id("sub"),
                    pathway_id=row.pathway_id,
                    task_id=row.task_id or f"immersion:{row.id}",
                    data={"savoir_etre_tuteur": levels},
                    submitted_by=f"{TUTOR}{tutor}",
                    created_at=q.now(),
                )
            )
        _audit(session, links.LINK_ACTOR, f"tutor:{row.id}", row, "immersion_bilan", {"hiring": entry.hiring})
    return Bilan(row, "embauche" if entry.hiring == "oui" else "sans_embauche")


def _immersion_task(session: Session, pathway: models.Pathway, organisation_id: str) -> str | None:
    """The open task of the pathway's immersion step given to this organisation, if any."""
    version = session.get(models.DefinitionVersion, (pathway.definition_id, pathway.definition_version))
    if version is None:
        return None
    steps = {s.id for s in Definition.model_validate(version.body).steps if isinstance(s, ImmersionStep)}
    task = session.exec(
        select(models.Task).where(
            models.Task.pathway_id == pathway.id,
            models.Task.status == "open",
            models.Task.organisation_id == organisation_id,
            col(models.Task.step_id).in_(steps or [""]),
        )
    ).first()
    return task.id if task else None


# --- Reading, the PDF -------------------------------------------------------------------------


def of_pathway(engine: Engine, pathway_id: str) -> list[models.Immersion]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(models.Immersion)
                .where(models.Immersion.pathway_id == pathway_id)
                .order_by(col(models.Immersion.created_at))
            )
        )


def signatures(engine: Engine, immersion_id: str) -> list[models.ImmersionSignature]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(models.ImmersionSignature).where(models.ImmersionSignature.immersion_id == immersion_id)
            )
        )


def convention_pdf(engine: Engine, row: models.Immersion) -> bytes:
    """The convention with its signatures and, once given, the tutor's bilan."""
    document = Document("Convention de mise en situation en milieu professionnel")
    line = document.line

    line("Convention de mise en situation en milieu professionnel (PMSMP)", 15, "B", 8)
    line("Champs du formulaire officiel cerfa 13912.", 9)
    for heading, text in convention_text(engine, row):
        line(heading, 11, "B", 6)
        line(text)
    line("Signatures", 12, "B", 8)
    for s in signatures(engine, row.id):
        line(
            f"{PARTIES[s.party]} : {s.signer_name}, le {s.signed_at:%d/%m/%Y %H:%M} UTC (empreinte {s.document_hash[:16]}…)"
        )
    if row.bilan:  # the tutor's bilan, once given, with the convention
        bilan = row.bilan
        line("Bilan du tuteur", 12, "B", 8)
        line(f"Par {bilan.get('by', '')}, le {str(bilan.get('at', ''))[:10]}.")
        met = [OBJECTIVES[o] for o in bilan.get("objectives_met", []) if o in OBJECTIVES]
        line("Objectifs atteints : " + (" ; ".join(met) if met else "aucun"))
        for skill, level in bilan.get("skills", {}).items():
            line(f"• {SOFT_SKILLS.get(skill, skill)} : {level} – {SOFT_SKILL_SCALE.get(int(level), '')}")
        line("Intention d'embauche : " + ("oui" if bilan.get("hiring") else "non"))
        if bilan.get("comment"):
            line(f"Appréciation : {bilan['comment']}")
    return document.bytes()


def readable(engine: Engine, user: Viewer, immersion_id: str) -> models.Immersion:
    """An immersion, for who may read its pathway."""
    row = _immersion_readonly(engine, immersion_id)
    readable_pathway(engine, user, row.pathway_id)
    return row


def _immersion(session: Session, immersion_id: str) -> models.Immersion:
    row = session.get(models.Immersion, immersion_id)
    if row is None:
        raise ServiceError("Immersion inconnue.", "not_found")
    return row


def _immersion_readonly(engine: Engine, immersion_id: str) -> models.Immersion:
    with session_scope(engine) as session:
        return _immersion(session, immersion_id)


def _audit(session: Session, actor: str, org: str, row: models.Immersion, action: str, detail: dict[str, Any]) -> None:
    session.add(
        q.audit_event(
            actor_user_id=actor,
            actor_org_id=org,
            action=action,
            pathway_id=row.pathway_id,
            detail={"immersion": row.id, **detail},
        )
    )


def waiting_for_the_person(engine: Engine, person_id: str) -> list[models.Immersion]:
    """Conventions accepted by the host and not yet signed by the person (their space lists them)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.Immersion).where(
                models.Immersion.person_id == person_id, models.Immersion.status == "accepted"
            )
        ).all()
        signed = {
            s.immersion_id
            for s in session.exec(select(models.ImmersionSignature).where(models.ImmersionSignature.party == "person"))
        }
    return [r for r in rows if r.id not in signed]
