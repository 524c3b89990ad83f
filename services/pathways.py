"""How people and scripts act on pathways (CLI, admin UI and API): check the request against the
read model, keep free text and form answers in the read model, then send the workflow an update
and report its answer. Shared so every entry point says the same thing.

Every write takes a `request_id` (services/requests.py): the same request sent again (a client
that timed out and retries) gets the first answer and writes nothing twice."""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import Engine
from stdnum.fr import nir as stdnum_nir
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from definitions.calendar import DEFAULT_CLOSES, DEFAULT_OPENS, work_calendar
from definitions.durations import PARIS, TOO_LONG, Delay, too_long
from definitions.forms import check_submission, routing_values
from definitions.schema import TRIAL_SUFFIX, Definition
from parcours.presenters import GTO_ACTIONS
from parcours.settings import Settings
from services.errors import ID_MAX, ServiceError, bounded, french_validation_message, quoted
from services.requests import Request, open_request
from store import models
from store import queries as q
from store.db import session_scope
from workflows import search_attributes as sa
from workflows.contract import Actor
from workflows.model import (
    AddModule,
    ClosePathway,
    CompleteTask,
    GtoDecision,
    PathwayInput,
    PauseClock,
    ReassignTask,
    ResumeClock,
    SkipStep,
    UpdateResult,
)
from workflows.pathway import PathwayWorkflow


class PersonIn(BaseModel):
    """A person to accompany, as entered by a professional; consent to share is required."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    birth_date: date | None = None
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, pattern=r"^\+?[0-9 .\-]{6,20}$")
    nir: str | None = Field(None, max_length=30)
    france_travail_id: str | None = Field(None, pattern=r"^[0-9A-Za-z]{7,11}$")
    consent: bool = Field(description="the person agreed to share their pathway with the follow-up group")

    @field_validator("nir")
    @classmethod
    def _valid_nir(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return str(stdnum_nir.validate(value))
        except Exception:
            raise ValueError("numéro de sécurité sociale (NIR) invalide") from None

    @field_validator("consent")
    @classmethod
    def _consented(cls, value: bool) -> bool:
        if not value:
            raise ValueError("le consentement de la personne au partage avec le groupe de suivi est requis")
        return value


def person_errors(error: ValidationError) -> dict[str, str]:
    return {".".join(str(p) for p in e["loc"]) or "person": french_validation_message(dict(e)) for e in error.errors()}


def _id(value: str | None, *, field: str, label: str) -> str | None:
    """An id the user chose (organisation, module, outcome, exit reason…), refused when longer
    than any id can be, before it is quoted in a refusal or sent to the workflow."""
    if value is not None and len(value) > ID_MAX:
        raise ServiceError(
            f"{label} invalide : « {quoted(value)} » ({ID_MAX} caractères au plus).",
            fields={field: f"{ID_MAX} caractères au plus."},
        )
    return value


def _answers(data: dict[str, Any]) -> None:
    """Form answers: field ids and texts of bounded length, before they are stored or routed."""
    for name, value in data.items():
        _id(name, field="form", label="Champ")
        texts = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for text in texts:
            if isinstance(text, str):
                bounded(text, field=name, label=f"Réponse « {quoted(name)} »")


def check_extension(extend_by: str) -> Delay:
    """A GTO extension is a delay of at most about two years, like the delays of definitions."""
    try:
        delay = Delay.model_validate(extend_by)
    except ValueError:
        raise ServiceError(
            f"Prolongation invalide « {quoted(extend_by)} » : écrivez « 5 jours ouvrés » ou une durée ISO 8601 (PT2H, P3D).",
            fields={"extend_by": "Délai invalide."},
        ) from None
    if too_long(delay):
        raise ServiceError(f"Prolongation refusée : {TOO_LONG}.", fields={"extend_by": TOO_LONG})
    return delay


UNKNOWN_OUTCOME = frozenset(
    {
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
    }
)
"""Temporal errors after which an update or a start may or may not have happened."""


def outcome_unknown(error: BaseException) -> bool:
    """The call may have reached Temporal and been applied (the client timed out, the server was
    unreachable or overloaded): only a retry with the same request id can tell."""
    if isinstance(error, RPCTimeoutOrCancelledError | TimeoutError):
        return True
    return isinstance(error, RPCError) and error.status in UNKNOWN_OUTCOME


def not_ready(error: BaseException) -> bool:
    """Temporal refused the update before the workflow saw it: the pathway's last workflow task
    failed (its worker was killed mid-task, or a bug) and no worker has taken it up again yet.
    Nothing was applied; the same request goes through once a worker has the pathway again."""
    return (
        isinstance(error, RPCError)
        and error.status == RPCStatusCode.FAILED_PRECONDITION
        and any(detail.type_url.endswith("WorkflowNotReadyFailure") for detail in error.grpc_status.details)
    )


def unavailable(request: Request) -> ServiceError:
    """The answer when the outcome is unknown: the same request again completes it (or, without a
    request id of the caller's, check before retrying)."""
    if request.given:
        return ServiceError(
            "Service momentanément indisponible : l'action n'a peut-être pas abouti. Réessayez la même "
            "demande : elle ne sera pas appliquée deux fois.",
            "unavailable",
        )
    return ServiceError(
        "Service momentanément indisponible : l'action a peut-être été enregistrée ; vérifiez l'état "
        "du parcours avant de réessayer.",
        "unavailable",
    )


class PathwayService:
    def __init__(
        self,
        client: Client,
        engine: Engine,
        *,
        task_queue: str,
        history_event_limit: int = 2000,
        opens: time = DEFAULT_OPENS,
        closes: time = DEFAULT_CLOSES,
        commit_local_seconds: float = 30.0,
        answer_within_seconds: float = 10.0,
        commit_retry_seconds: tuple[float, float] = (5.0, 600.0),
    ) -> None:
        self.client = client
        # How long a read-model write may hold a run, how long an action waits for it, then the
        # backoff of its durable retries (workflows.model.PathwayInput; scaled down by tests).
        self.commit_local_seconds, self.answer_within_seconds = commit_local_seconds, answer_within_seconds
        self.commit_retry_seconds = commit_retry_seconds
        self.engine = engine
        self.task_queue = task_queue
        self.history_event_limit = history_event_limit
        self.opens, self.closes = opens, closes
        self._definitions: dict[tuple[str, int], Definition] = {}

    @classmethod
    def from_settings(cls, client: Client, engine: Engine, settings: Settings) -> PathwayService:
        return cls(
            client,
            engine,
            task_queue=settings.task_queue,
            history_event_limit=settings.history_event_limit,
            opens=settings.day_opens,
            closes=settings.day_closes,
            commit_local_seconds=settings.commit_local_seconds,
            answer_within_seconds=settings.answer_within_seconds,
            commit_retry_seconds=(settings.commit_retry_first_seconds, settings.commit_retry_max_seconds),
        )

    # --- Who acts ---------------------------------------------------------------------------

    def actor_for(self, email: str) -> Actor:
        user = q.get_user_by_email(self.engine, email=email)
        if user is None or not user.active:
            raise ServiceError(f"Utilisateur inconnu : {quoted(email)}", "forbidden")
        return Actor(user_id=user.id, organisation_id=user.organisation_id, role=user.role, basin_id=user.basin_id)

    # --- Starting ---------------------------------------------------------------------------

    async def start_pathway(
        self,
        *,
        definition_id: str,
        basin_id: str,
        referent_org: str,
        person: dict[str, Any],
        actor: Actor,
        request_id: str | None = None,
    ) -> str:
        """Start a real person's pathway, with the actor's own organisation as referent (admins and
        system scripts may name another); trial copies are refused here (see start_trial). The
        same `request_id` again gives the same pathway (one pathway, one person)."""
        if actor.role not in ("admin", "system") and referent_org != actor.organisation_id:
            raise ServiceError(
                "Vous ne pouvez démarrer un parcours qu'avec votre organisation "
                f"({actor.organisation_id}) comme structure référente.",
                "forbidden",
            )
        _id(definition_id, field="definition", label="Parcours")
        _id(basin_id, field="basin", label="Bassin")
        _id(referent_org, field="referent_org", label="Organisation référente")
        if definition_id.endswith(TRIAL_SUFFIX):
            raise ServiceError(
                f"« {quoted(definition_id)} » est une copie d'essai : elle ne peut pas être démarrée pour une vraie "
                "personne (utilisez « Essayer » sur la page de la définition).",
                "forbidden",
            )
        return await self._start(
            definition_id=definition_id,
            basin_id=basin_id,
            referent_org=referent_org,
            person=person,
            actor=actor,
            request=self._request(
                actor,
                request_id,
                "start",
                definition_id,
                basin_id=basin_id,
                referent_org=referent_org,
                person=person,
            ),
        )

    async def start_trial(
        self, *, definition_id: str, basin_id: str, referent_org: str, actor: Actor, request_id: str | None = None
    ) -> str:
        """A designer's trial run of a trial copy (`…_essai`), for a fictitious person."""
        if actor.role not in ("designer", "admin"):
            raise ServiceError("Seuls les concepteur·rices de parcours peuvent lancer un essai.", "forbidden")
        if not definition_id.endswith(TRIAL_SUFFIX):
            raise ServiceError(f"« {quoted(definition_id)} » n'est pas une copie d'essai.", "conflict")
        person = {"first_name": "Personne", "last_name": "Fictive (essai)", "consent": True}
        return await self._start(
            definition_id=definition_id,
            basin_id=basin_id,
            referent_org=referent_org,
            person=person,
            actor=actor,
            request=self._request(
                actor, request_id, "trial", definition_id, basin_id=basin_id, referent_org=referent_org
            ),
        )

    async def _start(
        self,
        *,
        definition_id: str,
        basin_id: str,
        referent_org: str,
        person: dict[str, Any],
        actor: Actor,
        request: Request,
    ) -> str:
        """Check everything first, then record the person and start the workflow. With a request id
        the pathway and person ids derive from it: a retry finds (or completes) the same start. The
        person is removed only when the workflow certainly does not exist; when the outcome is
        unknown it is kept, and the caller is told to retry."""
        if request.answer is not None:
            return str(request.answer["pathway_id"])
        derived = request.derived("P", 16)
        pathway_id = derived.upper() if derived else "P-" + uuid.uuid4().hex[:16].upper()
        if request.pending and await self._started(pathway_id, request):
            # The first attempt started it and lost its answer: wait for its first steps.
            await self._ready(pathway_id, request)
            request.finish({"pathway_id": pathway_id})
            return pathway_id
        try:
            person_in = PersonIn.model_validate(person)
        except ValidationError as error:
            raise ServiceError(
                "Les informations de la personne sont incomplètes ou invalides.", fields=person_errors(error)
            ) from None
        definition = q.latest_definition(self.engine, definition_id=definition_id)
        if definition is None:
            raise ServiceError(f"Parcours inconnu : « {quoted(definition_id)} » (publiez-le d'abord).", "not_found")
        if definition.status == "retired":
            raise ServiceError(
                f"Le parcours « {definition.title} » est retiré : il ne peut plus être démarré.", "conflict"
            )
        basin = q.get_basin(self.engine, basin_id=basin_id)
        if basin is None:
            raise ServiceError(f"Bassin inconnu : « {quoted(basin_id)} ».", "not_found")
        if not definition.runs_in(basin_id):
            raise ServiceError(
                f"Le parcours « {definition.title} » n'est pas ouvert sur le bassin {basin.name} (bassins : {', '.join(definition.basins)}).",
                "conflict",
            )
        referent = q.get_organisation(self.engine, organisation_id=referent_org)
        if referent is None:
            raise ServiceError(f"Organisation référente inconnue : « {quoted(referent_org)} ».", "not_found")
        if basin_id not in referent.basins and "all" not in referent.basins:
            raise ServiceError(f"{referent.name} n'intervient pas sur le bassin {basin.name}.", "conflict")
        parties = self._resolve_parties(definition, basin)
        request.begin(pathway_id)
        person_id = q.create_person(
            self.engine,
            data={**person_in.model_dump(exclude={"consent"}), "consent_at": q.now()},
            created_by=actor.user_id,
            person_id=request.derived("pers", 24),
        )
        # Update-with-start: one round trip starts the run and returns once its first steps are in
        # the read model. An existing run with this id is joined (a retry, a double submit); a
        # closed one is never started again.
        start = WithStartWorkflowOperation(
            PathwayWorkflow.run,
            PathwayInput(
                pathway_id=pathway_id,
                definition=definition,
                basin_id=basin_id,
                referent_org=referent_org,
                person_ref=person_id,
                parties=parties,
                started_by=actor,
                history_event_limit=self.history_event_limit,
                calendar=work_calendar(q.now().astimezone(PARIS).year, opens=self.opens, closes=self.closes),
                commit_local_seconds=self.commit_local_seconds,
                answer_within_seconds=self.answer_within_seconds,
                commit_retry_seconds=self.commit_retry_seconds,
            ),
            id=pathway_id,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_queue=self.task_queue,
            search_attributes=sa.at_start(basin_id, definition.id, definition.version),
        )
        try:
            await self.client.execute_update_with_start_workflow(
                PathwayWorkflow.ready, start_workflow_operation=start, id=request.update_id
            )
        except WorkflowAlreadyStartedError:
            pass  # closed since: this request started it (checked below)
        except Exception as error:
            await self._failed_start(pathway_id, person_id, request, error)
        pathway = q.get_pathway(self.engine, pathway_id=pathway_id)
        if pathway is not None and pathway.person_id != person_id:
            # Another start holds this id (ids are 64 random or derived bits: never seen).
            self._forget_person(person_id)
            request.forget()
            raise ServiceError("Identifiant de parcours déjà pris : recommencez avec une nouvelle demande.", "conflict")
        request.finish({"pathway_id": pathway_id})
        return pathway_id

    async def _started(self, pathway_id: str, request: Request) -> bool:
        """Whether Temporal knows this workflow id (False: certainly not started); 503 when it
        cannot tell."""
        try:
            await self.client.get_workflow_handle(pathway_id).describe()
            return True
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise unavailable(request) from None
        except (RPCTimeoutOrCancelledError, TimeoutError):
            raise unavailable(request) from None

    async def _ready(self, pathway_id: str, request: Request) -> None:
        """Wait for a started pathway's first steps (at once when it has closed since)."""
        try:
            await self.client.get_workflow_handle(pathway_id).execute_update(PathwayWorkflow.ready)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: closed since
                raise unavailable(request) from None
        except (RPCTimeoutOrCancelledError, TimeoutError):
            raise unavailable(request) from None

    async def _failed_start(self, pathway_id: str, person_id: str, request: Request, error: Exception) -> None:
        """After a start that did not answer: remove the person only when the workflow certainly
        does not exist; otherwise keep it (and the request) so that a retry completes the start."""
        if outcome_unknown(error):
            raise unavailable(request) from None
        try:
            exists = await self._started(pathway_id, request)
        except ServiceError:
            raise unavailable(request) from None
        if exists:
            raise unavailable(request) from None
        self._forget_person(person_id)
        request.forget()
        raise error

    def _forget_person(self, person_id: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(models.Person, person_id)
            if row is not None:
                session.delete(row)

    def _resolve_parties(self, definition: Definition, basin: models.Basin) -> dict[str, str]:
        """Each `partner:<type>` role to the organisation serving the basin (one read of the
        organisations, whatever the number of roles)."""
        organisations = q.list_organisations(self.engine)
        serving = q.serving_by_type(organisations, basin_id=basin.id)
        known = {org.id for org in organisations}
        parties: dict[str, str] = {}
        missing: list[str] = []
        for task in definition.all_tasks():
            if task.role.startswith("partner:"):
                org_type = task.role.removeprefix("partner:")
                if org_type in serving:
                    parties[task.role] = serving[org_type].id
                else:
                    missing.append(org_type)
            elif task.role.startswith("organisation:"):
                org_id = task.role.removeprefix("organisation:")
                if org_id not in known:
                    missing.append(org_id)
        if missing:
            raise ServiceError(
                f"Aucune organisation ne dessert le bassin {basin.name} pour : {', '.join(sorted(set(missing)))}.",
                "conflict",
            )
        return parties

    # --- Human work ---------------------------------------------------------------------------

    def definition_of(self, pathway: models.Pathway) -> Definition:
        """The version the pathway runs on (published versions never change: cached)."""
        key = (pathway.definition_id, pathway.definition_version)
        cached = self._definitions.get(key)
        if cached is None:
            with session_scope(self.engine) as session:
                row = session.get(models.DefinitionVersion, key)
                if row is None:
                    raise ServiceError(
                        f"Version {pathway.definition_version} du parcours {pathway.definition_id} introuvable.",
                        "not_found",
                    )
                cached = self._definitions[key] = Definition.model_validate(row.body)
        return cached

    def _task_and_pathway(self, task_id: str) -> tuple[models.Task, models.Pathway]:
        task = q.get_task(self.engine, task_id=task_id)
        pathway = q.get_pathway(self.engine, pathway_id=task.pathway_id) if task else None
        if task is None or pathway is None:
            raise ServiceError(f"Tâche inconnue : « {quoted(task_id)} ».", "not_found")
        return task, pathway

    # --- Who may act: checked before anything the actor sent is stored ----------------------

    def _pathway(self, pathway_id: str) -> models.Pathway:
        pathway = q.get_pathway(self.engine, pathway_id=pathway_id)
        if pathway is None:
            raise ServiceError(f"Parcours inconnu : « {quoted(pathway_id)} ».", "not_found")
        return pathway

    @staticmethod
    def _check_task_org(
        actor: Actor, task: models.Task, pathway: models.Pathway, what: str, *, referent_too: bool = False
    ) -> None:
        """The organisation holding the task (or, when `referent_too`, the referent) — as the
        workflow's validator, but before any note or form answer is written."""
        allowed = {task.organisation_id} | ({pathway.referent_org} if referent_too else set())
        if actor.role != "admin" and actor.organisation_id not in allowed:
            raise ServiceError(
                f"Votre organisation ({actor.organisation_id}) ne peut pas {what} : "
                f"elle est confiée à {task.organisation_id}.",
                "forbidden",
            )

    @staticmethod
    def _check_referent(actor: Actor, pathway: models.Pathway, what: str) -> None:
        if actor.role != "admin" and actor.organisation_id != pathway.referent_org:
            raise ServiceError(f"Seule la structure référente ({pathway.referent_org}) peut {what}.", "forbidden")

    @staticmethod
    def check_decider(actor: Actor, basin_id: str, level: int) -> None:
        """The decision rule, written once (the workflow applies it too): the basin's GTO lead, the
        SPIE direction for a level-2 escalation (escalated to it), or an admin."""
        if actor.role == "admin":
            return
        if actor.role == "gto_lead" and actor.basin_id == basin_id:
            return
        if actor.role == "direction" and level >= 2:
            return
        raise ServiceError(
            "Seul l'animateur du GTO du bassin (ou la direction du SPIE) peut décider de cette escalade.",
            "forbidden",
        )

    def escalation(self, escalation_id: str) -> models.Escalation:
        with session_scope(self.engine) as session:
            escalation = session.get(models.Escalation, escalation_id)
        if escalation is None:
            raise ServiceError(f"Escalade inconnue : « {quoted(escalation_id)} ».", "not_found")
        return escalation

    # --- Requests: the same request twice acts once ---------------------------------------------

    def _request(self, actor: Actor, request_id: str | None, kind: str, target: str, **inputs: Any) -> Request:
        return open_request(
            self.engine, actor_user_id=actor.user_id, request_id=request_id, kind=kind, target=target, inputs=inputs
        )

    async def _first_answer(self, request: Request) -> UpdateResult | None:
        """The answer this request already got: kept in the request log, or — when its first
        attempt lost it (a crash, a client timeout) or still runs — the workflow's answer to its
        update id. Asked of this same user only, whose request passed every check when it was
        recorded; nothing is written to the pathway. None: it never reached the workflow."""
        if request.answer is not None:
            return UpdateResult.model_validate(request.answer)
        if not request.pending or request.pathway_id is None:
            return None
        handle = self.client.get_workflow_handle(request.pathway_id).get_update_handle(
            request.update_id, result_type=UpdateResult
        )
        try:
            result: UpdateResult = await handle.result()
        except WorkflowUpdateFailedError as error:
            request.forget()
            raise self._refusal(error) from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # never accepted: act now
                return None
            raise unavailable(request) from None
        except (RPCTimeoutOrCancelledError, TimeoutError):
            raise unavailable(request) from None
        request.finish(result.model_dump(mode="json"))
        return result

    # --- Acting on tasks and pathways ---------------------------------------------------------

    async def complete_task(
        self, *, task_id: str, actor: Actor, outcome: str, data: dict[str, Any], request_id: str | None = None
    ) -> UpdateResult:
        request = self._request(actor, request_id, "complete", task_id, outcome=outcome, data=data)
        if (first := await self._first_answer(request)) is not None:
            return first
        task, pathway = self._task_and_pathway(task_id)
        if actor.organisation_id != task.organisation_id and actor.role != "admin":
            raise ServiceError(
                f"Votre organisation ({actor.organisation_id}) ne peut pas traiter cette tâche : elle est confiée à {task.organisation_id}.",
                "forbidden",
            )
        if task.status != "open":
            raise ServiceError(f"La tâche « {task.title} » n'est plus ouverte ({task.status}).", "conflict")
        _id(outcome, field="outcome", label="Issue")
        _answers(data)
        definition = self.definition_of(pathway)
        checked = check_submission(definition.task(task.step_id), data)
        if checked.errors:
            raise ServiceError("Le formulaire contient des erreurs.", fields=checked.errors)
        request.begin(pathway.id)
        submission_id = (
            q.save_submission(
                self.engine,
                pathway_id=pathway.id,
                task_id=task_id,
                data=checked.values,
                submitted_by=actor.user_id,
                submission_id=request.derived("sub"),
            )
            if checked.values
            else None
        )
        command = CompleteTask(
            item_id=task_id,
            actor=actor,
            outcome=outcome,
            filled=checked.filled,
            routing=routing_values(definition, task.step_id, checked.values),
            submission_id=submission_id,
        )
        try:
            return await self._update(pathway.id, PathwayWorkflow.complete_task, command, request)
        except ServiceError as error:
            if submission_id and error.kind != "unavailable":
                q.delete_submission(self.engine, submission_id=submission_id)
            raise

    async def reassign_task(
        self,
        *,
        task_id: str,
        actor: Actor,
        organisation_id: str,
        reason: str | None,
        request_id: str | None = None,
    ) -> UpdateResult:
        request = self._request(actor, request_id, "reassign", task_id, organisation_id=organisation_id, reason=reason)
        if (first := await self._first_answer(request)) is not None:
            return first
        task, pathway = self._task_and_pathway(task_id)
        self._check_task_org(actor, task, pathway, "réattribuer cette tâche", referent_too=True)
        bounded(reason, field="motif", label="Motif de la réattribution")
        self._known_organisation(organisation_id)
        request.begin(pathway.id)
        note_id = self._note(request, reason, actor, pathway.id)
        return await self._update(
            pathway.id,
            PathwayWorkflow.reassign_task,
            ReassignTask(item_id=task_id, actor=actor, organisation_id=organisation_id, note_id=note_id),
            request,
        )

    async def skip_step(
        self, *, task_id: str, actor: Actor, reason: str | None, request_id: str | None = None
    ) -> UpdateResult:
        request = self._request(actor, request_id, "skip", task_id, reason=reason)
        if (first := await self._first_answer(request)) is not None:
            return first
        task, pathway = self._task_and_pathway(task_id)
        self._check_task_org(actor, task, pathway, "passer cette étape", referent_too=True)
        if task.status != "open":
            raise ServiceError(f"L'étape « {task.title} » n'est plus ouverte ({task.status}).", "conflict")
        bounded(reason, field="motif", label="Motif")
        request.begin(pathway.id)
        note_id = self._note(request, reason, actor, pathway.id)
        return await self._update(
            pathway.id, PathwayWorkflow.skip_step, SkipStep(item_id=task_id, actor=actor, note_id=note_id), request
        )

    async def add_module(
        self,
        *,
        pathway_id: str,
        actor: Actor,
        module_id: str,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> UpdateResult:
        request = self._request(actor, request_id, "add_module", pathway_id, module_id=module_id, reason=reason)
        if (first := await self._first_answer(request)) is not None:
            return first
        self._check_referent(actor, self._pathway(pathway_id), "ajouter un module au parcours")
        _id(module_id, field="module", label="Module")
        bounded(reason, field="motif", label="Motif")
        request.begin(pathway_id)
        note_id = self._note(request, reason, actor, pathway_id)
        return await self._update(
            pathway_id,
            PathwayWorkflow.add_module,
            AddModule(module_id=module_id, actor=actor, note_id=note_id),
            request,
        )

    async def pause(
        self, *, pathway_id: str, actor: Actor, reason: str | None = None, request_id: str | None = None
    ) -> UpdateResult:
        request = self._request(actor, request_id, "pause", pathway_id, reason=reason)
        if (first := await self._first_answer(request)) is not None:
            return first
        self._check_referent(actor, self._pathway(pathway_id), "suspendre le parcours")
        bounded(reason, field="motif", label="Motif")
        request.begin(pathway_id)
        note_id = self._note(request, reason, actor, pathway_id)
        return await self._update(pathway_id, PathwayWorkflow.pause, PauseClock(actor=actor, note_id=note_id), request)

    async def resume(self, *, pathway_id: str, actor: Actor, request_id: str | None = None) -> UpdateResult:
        request = self._request(actor, request_id, "resume", pathway_id)
        if (first := await self._first_answer(request)) is not None:
            return first
        self._check_referent(actor, self._pathway(pathway_id), "reprendre le parcours")
        request.begin(pathway_id)
        return await self._update(pathway_id, PathwayWorkflow.resume, ResumeClock(actor=actor), request)

    async def close(
        self,
        *,
        pathway_id: str,
        actor: Actor,
        exit_reason: str,
        note: str | None = None,
        request_id: str | None = None,
    ) -> UpdateResult:
        request = self._request(actor, request_id, "close", pathway_id, exit_reason=exit_reason, note=note)
        if (first := await self._first_answer(request)) is not None:
            return first
        self._check_referent(actor, self._pathway(pathway_id), "clore le parcours")
        _id(exit_reason, field="sortie", label="Motif de sortie")
        bounded(note, field="note", label="Note")
        request.begin(pathway_id)
        note_id = self._note(request, note, actor, pathway_id)
        return await self._update(
            pathway_id,
            PathwayWorkflow.close,
            ClosePathway(actor=actor, exit_reason=exit_reason, note_id=note_id),
            request,
        )

    def add_note(self, *, pathway_id: str, actor: Actor, text: str, request_id: str | None = None) -> str:
        """A note shared with the follow-up group, by an organisation active in it; the same
        request again gives the same note (written once)."""
        request = self._request(actor, request_id, "note", pathway_id, text=text)
        if request.answer is not None:
            return str(request.answer["note_id"])
        pathway = self._pathway(pathway_id)
        with session_scope(self.engine) as session:
            member = session.get(models.FollowUpMember, (pathway.id, actor.organisation_id))
            following = member is not None and member.until is None
        if not following and actor.role != "admin":
            raise ServiceError("Seul le groupe de suivi du parcours peut y ajouter une note.", "forbidden")
        if pathway.status == "closed":
            raise ServiceError("Le parcours est clos : il n'accepte plus de note.", "conflict")
        bounded(text, field="note", label="Note")
        if not text or not text.strip():
            raise ServiceError("Écrivez la note avant de l'enregistrer.", fields={"note": "Écrivez la note."})
        request.begin(pathway.id)
        note_id = self._note(request, text, actor, pathway.id)
        assert note_id is not None
        request.finish({"note_id": note_id, "pathway_id": pathway.id})
        return note_id

    def _note(self, request: Request, text: str | None, actor: Actor, pathway_id: str) -> str | None:
        """The free text a command carries, kept in the read model once (its id derives from the
        request id), before the update that refers to it."""
        return q.save_note(
            self.engine,
            text=text,
            author_user_id=actor.user_id,
            pathway_id=pathway_id,
            note_id=request.derived("note"),
        )

    async def decide_escalation(
        self,
        *,
        escalation_id: str,
        actor: Actor,
        action: str,
        note: str | None = None,
        organisation_id: str | None = None,
        extend_by: str | None = None,
        module_id: str | None = None,
        exit_reason: str | None = None,
        escalation: models.Escalation | None = None,
        request_id: str | None = None,
    ) -> UpdateResult:
        """`escalation`: the row the caller already read (one read per request)."""
        request = self._request(
            actor,
            request_id,
            "decision",
            escalation_id,
            action=action,
            note=note,
            organisation_id=organisation_id,
            extend_by=extend_by,
            module_id=module_id,
            exit_reason=exit_reason,
        )
        if (first := await self._first_answer(request)) is not None:
            return first
        if escalation is None or escalation.id != escalation_id:
            escalation = self.escalation(escalation_id)
        self.check_decider(actor, escalation.basin_id, escalation.level)
        # The workflow forgets escalations once decided or resolved: the read model remembers.
        if escalation.status != "open":
            raise ServiceError("Cette escalade a déjà été traitée.", "conflict")
        if action not in GTO_ACTIONS:
            raise ServiceError(f"Décision inconnue « {quoted(action)} » (possibles : {', '.join(GTO_ACTIONS)}).")
        _id(organisation_id, field="organisation_id", label="Organisation")
        _id(extend_by, field="extend_by", label="Délai")
        _id(module_id, field="module_id", label="Module")
        _id(exit_reason, field="exit_reason", label="Motif de sortie")
        bounded(note, field="note", label="Note")
        if organisation_id:
            self._known_organisation(organisation_id)
        if action == "extend" and extend_by:
            check_extension(extend_by)
        try:
            decision = GtoDecision(
                escalation_id=escalation_id,
                actor=actor,
                action=action,
                organisation_id=organisation_id,
                extend_by=extend_by,
                module_id=module_id,
                exit_reason=exit_reason,
            )
        except ValidationError:
            raise ServiceError(
                f"Décision inconnue « {quoted(action)} » (possibles : {', '.join(GTO_ACTIONS)})."
            ) from None
        request.begin(escalation.pathway_id)
        decision.note_id = self._note(request, note, actor, escalation.pathway_id)
        return await self._update(escalation.pathway_id, PathwayWorkflow.decide_escalation, decision, request)

    def _known_organisation(self, organisation_id: str) -> None:
        if q.get_organisation(self.engine, organisation_id=organisation_id) is None:
            raise ServiceError(f"Organisation inconnue : « {quoted(organisation_id)} ».", "not_found")

    @staticmethod
    def _refusal(error: WorkflowUpdateFailedError) -> ServiceError:
        cause = error.cause
        if isinstance(cause, ApplicationError):
            return ServiceError(cause.message, cause.type or "conflict")
        return ServiceError(f"Action refusée : {cause}", "conflict")

    async def _update(self, pathway_id: str, update: Any, command: BaseModel, request: Request) -> UpdateResult:
        """Send the update under the request's id (Temporal answers a repeated id with its first
        outcome), keep its answer for retries; a refusal frees the key, an unknown outcome keeps
        the request open for its retry (503)."""
        handle = self.client.get_workflow_handle(pathway_id)
        try:
            result: UpdateResult = await handle.execute_update(update, command, id=request.update_id)
        except WorkflowUpdateFailedError as error:
            request.forget()
            raise self._refusal(error) from None
        except (RPCError, RPCTimeoutOrCancelledError, TimeoutError) as error:
            if outcome_unknown(error) or not_ready(error):
                raise unavailable(request) from None
            request.forget()
            if "not found" in str(error).lower() or "completed" in str(error).lower():
                raise ServiceError("Le parcours est clos : il n'accepte plus d'action.", "conflict") from None
            raise
        request.finish(result.model_dump(mode="json"))
        return result
