"""Read-model tables. Personal data lives only in `person` (and free text in `note`,
`submission`), where it can be masked, exported and anonymised.

A table the API shows is one family (DESIGN.md): `XBase` holds the fields the API shows (the
table's settings with them), the table `X(XBase, table=True)` adds what stays inside, and
`XPublic(XBase)` is what the API answers, so the two never drift apart."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import ConfigDict, field_validator
from sqlalchemy import JSON, Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

from parcours.presenters import aware


def _json() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _when(index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), index=index, nullable=nullable))


class Public(SQLModel):
    """What the API answers for a row, read from its attributes: every field always present (so
    required in the OpenAPI), datetimes in UTC (SQLite gives them back naive; the read model
    stores UTC)."""

    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)  # type: ignore[assignment]

    @field_validator("*")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return aware(value) if isinstance(value, datetime) else value


class Basin(SQLModel, table=True):
    """Bassin d'emploi, with its GTO's shared mailbox."""

    id: str = Field(primary_key=True)
    name: str
    gto_email: str


class Organisation(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    type: str = Field(index=True)
    email: str
    basins: list[str] = _json()
    retention_days: int = 730


class UserBase(SQLModel):
    id: str = Field(primary_key=True)
    email: str = Field(unique=True, index=True)
    name: str
    organisation_id: str = Field(foreign_key="organisation.id", index=True)
    role: str
    basin_id: str | None = Field(default=None, foreign_key="basin.id")


class User(UserBase, table=True):
    # Never shown: the password's hash, the sessions' version.
    password_hash: str | None = None
    active: bool = True
    # Carried in every session and API token; bumped to end them all (sign-out, new password,
    # deactivation).
    session_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class UserPublic(UserBase, Public):
    pass


class Setting(SQLModel, table=True):
    """Territory-wide values, e.g. the SPIE direction's mailbox."""

    key: str = Field(primary_key=True)
    value: str


class PersonBase(SQLModel):
    id: str = Field(primary_key=True)
    first_name: str
    last_name: str
    birth_date: date | None = None
    email: str | None = None
    phone: str | None = None
    nir: str | None = None
    france_travail_id: str | None = None
    consent_at: datetime | None = _when()
    consent_by: str | None = None
    created_at: datetime | None = _when()
    anonymised_at: datetime | None = _when()


class Person(PersonBase, table=True):
    """The person accompanied (personal data: only here)."""


class PersonPublic(PersonBase):
    """The person as the API shows them (services.reading.person_view: NIR masked unless the
    viewer's organisation may read it); its dates as the read model gives them back."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # type: ignore[assignment]


class DefinitionVersionBase(SQLModel):
    # (id, version) is the key, in that order: session.get(DefinitionVersion, (id, version)).
    id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    title: str
    status: str
    basins: list[str] = _json()
    published_at: datetime | None = _when()


class DefinitionVersion(DefinitionVersionBase, table=True):
    __tablename__ = "definition"

    content_hash: str = Field(index=True)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    published_by: str | None = None


class DefinitionVersionPublic(DefinitionVersionBase, Public):
    pass


class PathwayBase(SQLModel):
    id: str = Field(primary_key=True)
    definition_id: str = Field(index=True)
    definition_version: int
    basin_id: str = Field(index=True)
    referent_org: str = Field(index=True)
    status: str = Field(index=True)
    current_steps: list[str] = _json()
    sla: str | None = Field(default=None, index=True)
    stuck_since: datetime | None = _when(index=True)
    started_at: datetime | None = _when()
    updated_at: datetime | None = _when()
    last_progress_at: datetime | None = _when(index=True)
    closed_at: datetime | None = _when()
    exit_reason: str | None = None


class Pathway(PathwayBase, table=True):
    # The GTO dashboard's filters: stuck pathways of a basin, weekly trends.
    __table_args__ = (
        Index("ix_pathway_basin_status_sla", "basin_id", "status", "sla", "last_progress_at"),
        Index("ix_pathway_basin_started", "basin_id", "started_at"),
        Index("ix_pathway_basin_closed", "basin_id", "closed_at"),
        # A basin's stuck pathways, longest stuck first (the GTO's list, one page at a time).
        Index("ix_pathway_basin_stuck", "basin_id", "stuck_since", "last_progress_at", "id"),
        # Every pathway newest first: the walk of a large organisation's list (views.WALK_FROM).
        Index("ix_pathway_started", "started_at", "id"),
    )

    person_id: str = Field(index=True)  # personal data: only GET /api/pathways/{id} shows the person
    revision: int = 0


class PathwayPublic(PathwayBase, Public):
    """A pathway without personal data (the person is only shown by GET /api/pathways/{id})."""


class FollowUpMember(SQLModel, table=True):
    """Groupe de suivi: an organisation following the pathway, since when, until when."""

    __tablename__ = "follow_up_member"

    pathway_id: str = Field(primary_key=True)
    organisation_id: str = Field(primary_key=True, index=True)
    since: datetime | None = _when()
    until: datetime | None = _when()


class PathwayStepBase(SQLModel):
    id: str = Field(primary_key=True)
    step_id: str
    title: str
    kind: str
    track: str
    status: str
    opened_at: datetime | None = _when()
    closed_at: datetime | None = _when()
    outcome: str | None = None


class PathwayStep(PathwayStepBase, table=True):
    """One entry of a pathway's timeline (task, wait, decision, group, end)."""

    __tablename__ = "pathway_step"

    pathway_id: str = Field(index=True)


class PathwayStepPublic(PathwayStepBase, Public):
    pass


class TaskBase(SQLModel):
    id: str = Field(primary_key=True)
    pathway_id: str = Field(index=True)
    step_id: str
    title: str
    definition_id: str = Field(index=True)
    basin_id: str = Field(index=True)
    organisation_id: str = Field(index=True)
    status: str
    sla: str | None = None
    due_at: datetime | None = _when(index=True)
    opened_at: datetime | None = _when()
    closed_at: datetime | None = _when()
    escalation_level: int = 0
    outcome: str | None = None


class Task(TaskBase, table=True):
    """A human task in an organisation's inbox."""

    # Inboxes (an organisation's open tasks by deadline) and the per-step counts of a basin.
    __table_args__ = (
        Index("ix_task_org_status_due", "organisation_id", "status", "due_at"),
        Index("ix_task_basin_status_step", "basin_id", "status", "definition_id", "step_id", "sla"),
        Index("ix_task_pathway_status", "pathway_id", "status"),
        # Counted from the index alone: an inbox under any filter, and the statistics per step.
        Index("ix_task_org_status_sla", "organisation_id", "status", "sla", "basin_id", "definition_id"),
        Index("ix_task_status_step", "status", "definition_id", "step_id", "sla"),
    )

    generation: int = 0
    submission_id: str | None = None


class TaskPublic(TaskBase, Public):
    pass


class EscalationBase(SQLModel):
    id: str = Field(primary_key=True)
    pathway_id: str = Field(index=True)
    task_id: str
    step_id: str
    basin_id: str = Field(index=True)
    level: int
    to: str
    status: str = Field(index=True)
    opened_at: datetime | None = _when()
    decided_at: datetime | None = _when()
    decided_by: str | None = None
    action: str | None = None


class Escalation(EscalationBase, table=True):
    __table_args__ = (
        Index("ix_escalation_basin_status", "basin_id", "status", "opened_at"),
        Index("ix_escalation_basin_opened", "basin_id", "opened_at"),
    )

    note_id: str | None = None  # the note's free text is shown on the pages, not in the API


class EscalationPublic(EscalationBase, Public):
    pass


class Notification(SQLModel, table=True):
    """Every e-mail, keyed by (task, generation, kind, level): the guard against sending twice.

    Written by the commit activity (the outbox); the relay in every worker process
    (activities/outbox.py) claims pending rows (`claimed_until`, `claim_token`: a lease), sends
    them and retries failures at `next_attempt_at`."""

    __table_args__ = (Index("ix_notification_relay", "status", "next_attempt_at"),)

    key: str = Field(primary_key=True)
    kind: str
    pathway_id: str = Field(index=True)
    task_id: str
    recipients: list[str] = _json()
    subject: str
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime | None = _when()
    sent_at: datetime | None = _when()
    next_attempt_at: datetime | None = _when()
    claimed_until: datetime | None = _when()
    claim_token: str | None = None


class AuditEvent(SQLModel, table=True):
    """Who did what, when, on which pathway: written by workflows and by every read of personal data."""

    __tablename__ = "audit_event"

    id: str = Field(primary_key=True)
    at: datetime | None = _when(index=True)
    pathway_id: str | None = Field(default=None, index=True)
    actor_user_id: str
    actor_org_id: str
    action: str
    task_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Note(SQLModel, table=True):
    """Free text (a reason, a GTO note): kept out of Temporal's history."""

    id: str = Field(primary_key=True)
    pathway_id: str | None = Field(default=None, index=True)
    author_user_id: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = _when()


class Submission(SQLModel, table=True):
    """The answers of a completed task's form (kept out of Temporal's history)."""

    id: str = Field(primary_key=True)
    pathway_id: str = Field(index=True)
    task_id: str = Field(index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    submitted_by: str
    created_at: datetime | None = _when()


class CapturedEmail(SQLModel, table=True):
    """E-mails caught by the dev stack's SMTP capture, for demos."""

    __tablename__ = "captured_email"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime | None = _when()
    mail_from: str
    recipients: list[str] = _json()
    subject: str
    body: str = Field(sa_column=Column(Text, nullable=False))


class LoginToken(SQLModel, table=True):
    """A one-time sign-in link: stored hashed, usable once, short-lived."""

    __tablename__ = "login_token"

    token_hash: str = Field(primary_key=True)
    user_id: str = Field(index=True)
    created_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    used_at: datetime | None = _when()


class SignInAttempt(SQLModel, table=True):
    """Failed passwords and link requests, under a hashed key (address, client), counted over a
    window: the sign-in rate limits every UI process shares."""

    __tablename__ = "sign_in_attempt"

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str = Field(index=True)
    at: datetime | None = _when(index=True)


class DefinitionMigration(SQLModel, table=True):
    """Running pathways moved to a newer version of their definition: prepared by a designer (with
    its dry run), confirmed and run by an administrator, with its progress and per-pathway report."""

    __tablename__ = "definition_migration"

    id: str = Field(primary_key=True)
    definition_id: str = Field(index=True)
    from_versions: list[int] = _json()
    to_version: int
    step_map: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    basin_id: str | None = None
    prepared_by: str
    prepared_at: datetime | None = _when()
    status: str = Field(default="prepared", index=True)
    confirmed_by: str | None = None
    confirmed_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CommandRequest(SQLModel, table=True):
    """A write sent with a request id (the API's Idempotency-Key, a page's form token, the CLI's
    `--request-id`), per user: what it asked (kind, target, a fingerprint of its inputs) and, once
    done, its answer, so a retry gets the first answer instead of acting twice
    (services/requests.py)."""

    __tablename__ = "command_request"

    actor_user_id: str = Field(primary_key=True)
    request_id: str = Field(primary_key=True)
    kind: str
    target: str
    fingerprint: str
    pathway_id: str | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime | None = _when(index=True)
    finished_at: datetime | None = _when()


class HostBase(SQLModel):
    """A host structure for immersions (PMSMP) in a basin's directory: its own contact and tutors
    only, never anything about the people in insertion (services/hosts.py)."""

    id: str = Field(primary_key=True)
    basin_id: str = Field(index=True)
    name: str
    siret: str = Field(index=True)
    address: str = Field(sa_column=Column(Text, nullable=False))
    sector: str
    trades: list[str] = _json()
    accessibility: str = Field(default="", sa_column=Column(Text, nullable=False))
    contact_name: str
    contact_email: str
    contact_phone: str = ""
    tutors: list[dict[str, str]] = _json()
    added_by_org: str
    created_at: datetime | None = _when()
    updated_at: datetime | None = _when()


class Host(HostBase, table=True):
    __table_args__ = (Index("ux_host_basin_siret", "basin_id", "siret", unique=True),)

    search_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    """Name, sector and trades, lower case without accents: what the directory's search reads."""


class HostPublic(HostBase, Public):
    pass


class ImmersionOfferBase(SQLModel):
    """An immersion offer of a host: a trade, places and periods (ISO dates)."""

    id: str = Field(primary_key=True)
    host_id: str = Field(index=True)
    trade: str
    places: int = 1
    periods: list[dict[str, str]] = _json()
    active: bool = True
    created_at: datetime | None = _when()


class ImmersionOffer(ImmersionOfferBase, table=True):
    __tablename__ = "immersion_offer"

    search_text: str = ""


class ImmersionOfferPublic(ImmersionOfferBase, Public):
    pass


class AccessLink(SQLModel, table=True):
    """A one-time link for someone without an account (services/links.py): one purpose, one
    subject, stored hashed, spent by the write it allows, expiring."""

    __tablename__ = "access_link"

    token_hash: str = Field(primary_key=True)
    purpose: str
    subject_id: str = Field(index=True)
    sent_to: str
    created_by: str
    created_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    used_at: datetime | None = _when()


class Consent(SQLModel, table=True):
    """A person's consent to a purpose (sharing the savoir-être passport with the follow-up
    group), recorded by a caseworker of the referent organisation; withdrawn, never deleted."""

    id: str = Field(primary_key=True)
    person_id: str = Field(index=True)
    purpose: str
    given_at: datetime | None = _when()
    recorded_by: str
    recorded_by_org: str
    withdrawn_at: datetime | None = _when()
    withdrawn_by: str | None = None


class Immersion(SQLModel, table=True):
    """An immersion (PMSMP) of a person with a host (services/immersions.py): proposed by a
    prescriber, answered by the host through its link, its convention (the fields of cerfa 13912)
    signed by every party through their own link. No personal data in it beyond its ids: the
    person's identity stays in `person`."""

    id: str = Field(primary_key=True)
    pathway_id: str = Field(index=True)
    person_id: str = Field(index=True)
    host_id: str = Field(index=True)
    host_siret: str
    prescriber_org: str
    prescriber_user: str
    accompanying_org: str | None = None
    renewal_of: str | None = None
    status: str = "proposed"  # proposed, declined, accepted, signed, cancelled
    start_date: date
    end_date: date
    weekly_hours: int
    objectives: list[str] = _json()
    convention: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _when()
    answered_at: datetime | None = _when()
    signed_at: datetime | None = _when()
    task_id: str | None = None  # the pathway's immersion step that the tutor's bilan completes
    bilan: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ImmersionSignature(SQLModel, table=True):
    """A party's simple electronic signature: who, when, and the hash of the text they saw."""

    __tablename__ = "immersion_signature"

    id: str = Field(primary_key=True)
    immersion_id: str = Field(index=True)
    party: str  # person, host, prescriber, accompanying
    signer_name: str
    signed_at: datetime | None = _when()
    document_hash: str


class OrganisationProfile(SQLModel, table=True):
    """What a partner organisation offers, for the others to know (the partner directory): kept
    by the organisation itself (services/partners.py)."""

    __tablename__ = "organisation_profile"

    organisation_id: str = Field(primary_key=True)
    offer: str = Field(default="", sa_column=Column(Text, nullable=False))
    publics: str = Field(default="", sa_column=Column(Text, nullable=False))
    access_conditions: str = Field(default="", sa_column=Column(Text, nullable=False))
    contacts: list[dict[str, str]] = _json()
    updated_at: datetime | None = _when()
    updated_by: str | None = None


class ExchangeSession(SQLModel, table=True):
    """An exchange session of a basin's partners (interconnaissance: a GTO meeting, an employer
    breakfast, a cross-training), organised by a GTO lead or the direction
    (services/exchanges.py)."""

    __tablename__ = "exchange_session"

    id: str = Field(primary_key=True)
    kind: str  # gto, employeurs, formation_croisee, echange
    title: str
    basin_id: str = Field(index=True)
    starts_at: datetime = Field(sa_column=Column(DateTime(timezone=True), index=True, nullable=False))
    ends_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    place: str
    capacity: int
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str
    created_at: datetime | None = _when()
    cancelled_at: datetime | None = _when()
    attendance_recorded_at: datetime | None = _when()
    attendance_recorded_by: str | None = None
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """How many times it was changed after its creation: its iCalendar SEQUENCE, so that a
    calendar replaces the event it holds."""


class ExchangeRegistration(SQLModel, table=True):
    """Someone registered to an exchange session: a partner's user, or an employer through a
    one-time link. One row per (session, e-mail): registering again never duplicates."""

    __tablename__ = "exchange_registration"
    __table_args__ = (Index("ux_exchange_registration_email", "session_id", "email", unique=True),)

    id: str = Field(primary_key=True)
    session_id: str = Field(index=True)
    email: str
    name: str
    organisation: str  # the partner organisation's name, or the employer's
    user_id: str | None = None  # a partner's user; None for an employer
    registered_at: datetime | None = _when()
    cancelled_at: datetime | None = _when()
    attended: bool | None = None  # recorded after the session
    anonymised_at: datetime | None = _when()  # a year after the session (store/retention.py)


class WorkingDay(SQLModel, table=True):
    """The calendar of working days (French public holidays), for the database to count working
    days: between two days there are `index(last) − index(first)` of them."""

    __tablename__ = "working_day"

    day: date = Field(primary_key=True)
    index: int  # the working days from the calendar's first day up to this one, included


class EvaluationFact(SQLModel, table=True):
    """The evaluation's counts (services/evaluation.py), computed again from the read model by
    `evaluation_facts.refresh` (every worker runs it in turn, hourly by default): per definition,
    version, basin and month of start, each measure's count per key (a step, a status, an exit)
    and value (a delay in working days). An evaluation sums a few thousand of these instead of
    reading a cohort's pathways, steps and tasks."""

    __tablename__ = "evaluation_fact"
    __table_args__ = (Index("ix_evaluation_fact_cohort", "definition_id", "basin_id", "start_month"),)

    definition_id: str = Field(primary_key=True)
    definition_version: int = Field(primary_key=True)
    basin_id: str = Field(primary_key=True)
    start_month: str = Field(primary_key=True)  # AAAA-MM (UTC)
    measure: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: int = Field(primary_key=True)
    n: int
