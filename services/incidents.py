"""Incidents: running pathways that cannot go on by themselves, for administrators (the
"Incidents" page, its JSON API and `parcours incidents list|retry`).

Two kinds, both found by a visibility query (never by describing every workflow):
- `commit`: the read model refuses the run's writes; the workflow retries them durably with
  backoff and sets the `ParcoursIncident` search attribute meanwhile;
- `task`: the run's workflow task keeps failing (a bug, bad data) and Temporal retries it;
  Temporal's own `TemporalReportedProblems` search attribute flags it after
  `system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute` failures in a row (2 in
  the dev server, see worker/temporal_server.py) and clears it once a task succeeds.

Only the pathways of one page are then described (and their history read from the end) to say
since when, what error in plain French, and how many attempts. No personal data: workflows hold
none, and database errors are stripped of their SQL and parameters."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.converter import PayloadConverter
from temporalio.service import RPCError, RPCStatusCode

from services.errors import ServiceError, quoted
from services.pathways import PathwayService
from store import queries as q
from store.views import Paged
from workflows import search_attributes as sa
from workflows.contract import COMMIT_ACTIVITY, Actor

log = logging.getLogger("parcours.incidents")

IncidentKind = Literal["commit", "task"]
KINDS: dict[str, str] = {
    "commit": "Écriture de la base de lecture",
    "task": "Traitement du parcours en échec",
}
REPORTED_PROBLEMS = "TemporalReportedProblems"
"""Temporal's own search attribute (server 1.28+): set after consecutive workflow task failures
or timeouts, cleared when a task succeeds."""
WORKFLOW_TYPE = "PathwayWorkflow"
RETRY_SIGNAL = "retry_now"
HISTORY_SCAN_LIMIT = 2000
"""Events read back from a run's end to find when its incident began (then: the attempt's time)."""
MAX_PAGES = 200
"""Pages are walked through from the first (visibility pages by token): a bound on the walk."""
RETRIERS = ("admin", "system")
"""Administrators (pages, API, `--by`) and the operator at the command line (no `--by`)."""
_ID_LIMIT = 200


@dataclass(frozen=True)
class Incident:
    """One pathway that cannot go on by itself, as an administrator reads it."""

    pathway_id: str
    kind: IncidentKind
    since: datetime | None
    error: str
    attempts: int
    next_retry: datetime | None
    definition_id: str | None
    basin_id: str | None

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pathway_id": self.pathway_id,
            "kind": self.kind,
            "kind_label": self.kind_label,
            "since": self.since.isoformat() if self.since else None,
            "error": self.error,
            "attempts": self.attempts,
            "next_retry": self.next_retry.isoformat() if self.next_retry else None,
            "definition_id": self.definition_id,
            "basin_id": self.basin_id,
        }


# --- Listing ----------------------------------------------------------------------------------


def incidents_query(task_queue: str, *, reported_problems: bool = True) -> str:
    """The visibility query of running pathways with an incident, on this task queue."""
    if "'" in task_queue or "\\" in task_queue:
        raise ServiceError(f"File de tâches invalide : « {quoted(task_queue)} ».")
    flagged = f"{sa.INCIDENT.name} IS NOT NULL"
    if reported_problems:
        flagged = f"({flagged} OR {REPORTED_PROBLEMS} IS NOT NULL)"
    return (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '{task_queue}' AND {flagged}"
    )


async def list_incidents(service: PathwayService, *, page: int = 1, page_size: int = 25) -> Paged[Incident]:
    """One page of incidents (Temporal's visibility order: the latest started first)."""
    page_size = max(1, min(page_size, 200))
    client = service.client
    try:
        query = incidents_query(service.task_queue)
        total = (await client.count_workflows(query)).count
    except RPCError as error:
        if error.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        # A server without TemporalReportedProblems (before 1.28): commit incidents only.
        log.warning("visibility refuses %s (%s): listing commit incidents only", REPORTED_PROBLEMS, error.message)
        query = incidents_query(service.task_queue, reported_problems=False)
        total = (await client.count_workflows(query)).count
    # The page asked for, or the last one (a list that shrank); walked through from the first.
    page = max(1, min(page, -(-total // page_size), MAX_PAGES))
    executions = []
    position = 0
    async for execution in client.list_workflows(query, page_size=page_size, limit=page * page_size):
        position += 1
        if position > (page - 1) * page_size:
            executions.append(execution)
    described = await asyncio.gather(*(_describe(client, e.id, e.run_id) for e in executions))
    items = [incident for incident in described if incident is not None]
    return Paged(items, page, page_size, max(total, (page - 1) * page_size + len(items)))


async def get_incident(service: PathwayService, pathway_id: str) -> Incident | None:
    """The pathway's incident now, None when it has none; refused when the pathway is unknown here."""
    description = await _pathway(service, pathway_id)
    return await _incident_of(service.client, description)


# --- Retrying ---------------------------------------------------------------------------------


async def retry(service: PathwayService, *, pathway_id: str, actor: Actor) -> str:
    """Ask the pathway to try again at once (signal `retry_now`): a read-model write waiting for
    its next attempt is tried now; a failing workflow task gets a fresh attempt, with its attempt
    count reset, as soon as the attempt in progress times out (Temporal lets each failed attempt
    time out, by up to about ten minutes after a long streak). Administrators only; audited."""
    if actor.role not in RETRIERS:
        raise ServiceError("Seul·es les administrateur·rices peuvent relancer un parcours en incident.", "forbidden")
    incident = await get_incident(service, pathway_id)
    if incident is None:
        raise ServiceError(f"Le parcours {quoted(pathway_id)} n'est pas en incident : rien à relancer.", "conflict")
    try:
        await service.client.get_workflow_handle(pathway_id).signal(RETRY_SIGNAL)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise ServiceError(f"Le parcours {quoted(pathway_id)} est terminé : rien à relancer.", "conflict") from None
    detail = {"kind": incident.kind, "attempts": str(incident.attempts)}
    audited = _audit(service, actor, pathway_id, detail)
    if incident.kind == "commit":
        message = f"Nouvel essai d'écriture demandé pour le parcours {pathway_id}."
    else:
        message = (
            f"Nouvel essai demandé pour le parcours {pathway_id} : le moteur le reprend dès la fin de "
            "l'essai en cours (de quelques secondes à une dizaine de minutes après une longue série d'échecs)."
        )
    if not audited:
        message += " La base de lecture ne répond pas : la relance est tracée dans le journal du serveur."
    return message


def _audit(service: PathwayService, actor: Actor, pathway_id: str, detail: dict[str, str]) -> bool:
    """The audit trail lives in the read model; when the read model is the incident, the retry
    still goes (it is what repairs it) and the trace goes to the server's log instead."""
    try:
        q.record_access(
            service.engine,
            actor_user_id=actor.user_id,
            actor_org_id=actor.organisation_id,
            action="incident_retried",
            pathway_id=pathway_id,
            detail=detail,
        )
    except SQLAlchemyError:
        log.warning(
            "incident_retried pathway=%s by=%s (%s) %s: audit trail unavailable",
            pathway_id,
            actor.user_id,
            actor.organisation_id,
            detail,
        )
        return False
    return True


# --- One pathway ------------------------------------------------------------------------------


async def _pathway(service: PathwayService, pathway_id: str) -> WorkflowExecutionDescription:
    """The running pathway's description, or a French refusal (unknown, not a pathway of this
    task queue, closed)."""
    unknown = ServiceError(f"Parcours inconnu : {quoted(pathway_id)}.", "not_found")
    if not pathway_id or len(pathway_id) > _ID_LIMIT:
        raise unknown
    try:
        description = await service.client.get_workflow_handle(pathway_id).describe()
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise unknown from None
        raise
    if description.workflow_type != WORKFLOW_TYPE or description.task_queue != service.task_queue:
        raise unknown
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise ServiceError(f"Le parcours {quoted(pathway_id)} est terminé : rien à relancer.", "conflict")
    return description


async def _describe(client: Client, workflow_id: str, run_id: str | None) -> Incident | None:
    try:
        description = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:  # deleted since the query (retention)
            return None
        raise
    return await _incident_of(client, description)


async def _incident_of(client: Client, description: WorkflowExecutionDescription) -> Incident | None:
    """What is wrong with this run now (None: nothing, e.g. recovered since the query)."""
    raw = description.raw_description
    attributes = _search_attributes(description)
    task = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
    task_failing = bool(attributes.get(REPORTED_PROBLEMS)) or (task is not None and task.attempt > 1)
    commit = next((a for a in raw.pending_activities if a.activity_type.name == COMMIT_ACTIVITY), None)
    pathway_id = description.id
    definition_id = _first(attributes.get(sa.DEFINITION.name))
    basin_id = _first(attributes.get(sa.BASIN.name))
    if task_failing:
        failed, first = await _task_streak(client, description)
        return Incident(
            kind="task",
            since=_time(first.event_time) if first else _time(task.original_scheduled_time) if task else None,
            error=_task_error(failed),
            attempts=max(task.attempt if task else 1, 1),
            next_retry=None,  # the attempt in progress ends at its (server-side, backed-off) timeout
            pathway_id=pathway_id,
            definition_id=definition_id,
            basin_id=basin_id,
        )
    if attributes.get(sa.INCIDENT.name) or commit is not None and commit.attempt > 1:
        since = await _commit_since(client, description)
        return Incident(
            kind="commit",
            since=since or (_time(commit.scheduled_time) if commit else None),
            error=_commit_error(commit.last_failure if commit and commit.HasField("last_failure") else None),
            attempts=commit.attempt if commit else 0,
            next_retry=_time(commit.next_attempt_schedule_time) if commit else None,
            pathway_id=pathway_id,
            definition_id=definition_id,
            basin_id=basin_id,
        )
    return None


def _search_attributes(description: WorkflowExecutionDescription) -> dict[str, Any]:
    """The run's search attributes by name, Temporal's own included."""
    info = description.raw_description.workflow_execution_info
    if not info.HasField("search_attributes"):
        return {}
    converter = PayloadConverter.default
    values: dict[str, Any] = {}
    for name, payload in info.search_attributes.indexed_fields.items():
        try:
            values[name] = converter.from_payloads([payload])[0]
        except Exception:  # an attribute this converter cannot read says nothing about incidents
            continue
    return values


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _time(stamp: Timestamp | None) -> datetime | None:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)


async def _reversed_history(client: Client, description: WorkflowExecutionDescription) -> AsyncIterator[HistoryEvent]:
    """The run's events from the last one backwards, at most HISTORY_SCAN_LIMIT of them."""
    token = b""
    seen = 0
    while seen < HISTORY_SCAN_LIMIT:
        response = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=description.id, run_id=description.run_id),
                maximum_page_size=200,
                next_page_token=token,
            )
        )
        for event in response.history.events:
            seen += 1
            yield event
        token = response.next_page_token
        if not token:
            return


async def _task_streak(
    client: Client, description: WorkflowExecutionDescription
) -> tuple[HistoryEvent | None, HistoryEvent | None]:
    """The latest failed (or timed-out) workflow task since the last one completed, and the
    first of that streak."""
    latest: HistoryEvent | None = None
    first: HistoryEvent | None = None
    async for event in _reversed_history(client, description):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            break
        if event.event_type in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        ):
            latest = latest or event
            first = event
    return latest, first


async def _commit_since(client: Client, description: WorkflowExecutionDescription) -> datetime | None:
    """When the run set `ParcoursIncident` (the start of its durable write attempts)."""
    async for event in _reversed_history(client, description):
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if sa.INCIDENT.name in fields:
            return _time(event.event_time) if fields[sa.INCIDENT.name].data not in (b"", b"null") else None
    return None


# --- Errors in plain French ---------------------------------------------------------------------

_DATABASE_ERRORS: tuple[tuple[str, str], ...] = (
    (r"connection ?refused|connectionrefused", "connexion refusée"),
    (r"could not translate host|name or service not known|nodename nor servname", "serveur introuvable"),
    (r"password authentication failed|authentication failed", "authentification refusée"),
    (r"too many connections|remaining connection slots", "trop de connexions ouvertes"),
    (r"database is locked", "base verrouillée par une autre écriture"),
    (r"readonly database|read-only|read only", "base en lecture seule"),
    (r"unable to open database file", "fichier de la base inaccessible"),
    (r"no space left|disk is full|disk full", "disque plein"),
    (
        r"no such table|no such column|undefinedtable|undefinedcolumn|does not exist",
        "schéma de la base incomplet (migrations à appliquer : parcours setup)",
    ),
    (
        r"server closed the connection|terminating connection|connection reset|broken pipe",
        "connexion interrompue par le serveur",
    ),
    (r"timed? ?out|timeout", "délai dépassé"),
    (r"connection failed|could not connect|connection to server", "connexion impossible"),
)


def _without_data(message: str) -> str:
    """A driver's message without what may quote data: SQLAlchemy's SQL, parameters and links."""
    message = re.split(r"\[SQL:|\[parameters:|\(Background on this error", message, maxsplit=1)[0]
    return " ".join(message.split())


def _failure_chain(failure: Failure | None) -> list[Failure]:
    chain: list[Failure] = []
    while failure is not None and len(chain) < 10:
        chain.append(failure)
        failure = failure.cause if failure.HasField("cause") else None
    return chain


def _failure_type(failure: Failure) -> str:
    if failure.HasField("application_failure_info"):
        return failure.application_failure_info.type
    if failure.HasField("timeout_failure_info"):
        return "Timeout"
    return ""


def _commit_error(failure: Failure | None) -> str:
    """'la base de lecture refuse les écritures : connexion refusée' (or another reason)."""
    prefix = "la base de lecture refuse les écritures"
    chain = _failure_chain(failure)
    if not chain:
        return f"{prefix} (détail indisponible)"
    text = " ".join(f"{_failure_type(f)} {_without_data(f.message)}" for f in chain).lower()
    for pattern, words in _DATABASE_ERRORS:
        if re.search(pattern, text):
            return f"{prefix} : {words}"
    root = chain[-1]
    return f"{prefix} : erreur inattendue ({_failure_type(root) or 'inconnue'} : {quoted(_without_data(root.message))})"


def _task_error(event: HistoryEvent | None) -> str:
    """'erreur du moteur : RuntimeError : …' (or why Temporal refused or timed out the task)."""
    if event is None:
        return "échecs répétés du traitement du parcours (détail indisponible)"
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        return "le moteur ne répond pas à temps (aucun worker lancé, ou un traitement trop long)"
    attributes = event.workflow_task_failed_event_attributes
    chain = _failure_chain(attributes.failure if attributes.HasField("failure") else None)
    cause = attributes.cause
    if cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR:
        detail = f" : {quoted(chain[0].message, 160)}" if chain else ""
        return "le code déployé ne rejoue plus l'historique du parcours (non-déterminisme)" + detail
    if chain and cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE:
        root = chain[-1]
        kind = _failure_type(root)
        return f"erreur du moteur : {kind + ' : ' if kind else ''}{quoted(root.message, 160)}"
    name = WorkflowTaskFailedCause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").lower()
    detail = f" : {quoted(chain[0].message, 160)}" if chain else ""
    return f"le serveur Temporal refuse le traitement du parcours ({name}){detail}"


__all__ = [
    "KINDS",
    "Incident",
    "get_incident",
    "incidents_query",
    "list_incidents",
    "retry",
]
