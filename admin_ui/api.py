"""The JSON API: the same reads and actions as the pages, with the same need-to-know rules.

Authentication: `POST /api/auth/token` gives a bearer token (12 h) to send as
`Authorization: Bearer <token>`; a signed-in browser session also works, with its CSRF token in
`X-CSRF-Token` on every POST. Errors are JSON `{detail}` (plus `fields` when a form is refused,
`errors` when a definition is invalid): 401 not signed in, 403 denied, 404 unknown, 409 conflict
with the pathway's state, 422 invalid, 429 too many failed sign-ins.

Who sees what: caseworkers see the pathways whose follow-up group their organisation belongs to
and their organisation's tasks; GTO leads see their basin's stuck pathways and escalations and
decide on them; designers publish definitions and read anonymous step counts; admins decide on
escalations of every basin. Every read of a person's data is written to the audit log."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from admin_ui import access
from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, Service, User, require_roles, verify_csrf
from admin_ui.security import API_TOKEN_SECONDS, api_token, authenticate
from definitions.loader import DefinitionError, InvalidDefinition, parse_data, parse_text
from definitions.schema import Definition
from store import models, views
from store import queries as q
from store.db import session_scope
from workflows.model import UpdateResult

T = TypeVar("T")
MAX_DEFINITION_BYTES = 1_000_000
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

bearer = HTTPBearer(auto_error=False, description="Jeton obtenu par POST /api/auth/token.")
router = APIRouter()  # each route carries its tag (the groups of /docs)


# --- Models ---------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: the read model stores UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


When = Annotated[datetime | None, AfterValidator(_utc)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str


class RefusedOut(BaseModel):
    """An action refused by the service or the workflow; `fields` locates form errors."""

    detail: str
    fields: dict[str, str] = {}


class DefinitionProblem(BaseModel):
    step: str | None
    field: str | None
    message: str


class InvalidDefinitionOut(BaseModel):
    detail: str
    errors: list[DefinitionProblem]


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    size: int
    total: int
    pages: int


class TokenIn(BaseModel):
    email: str = Field(max_length=320, examples=["camille.martin@example.org"])
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(API_TOKEN_SECONDS, description="seconds")


class MeOut(Out):
    id: str
    email: str
    name: str
    role: str
    organisation_id: str
    organisation_name: str
    organisation_type: str
    basin_id: str | None


class DefinitionOut(Out):
    id: str
    version: int
    title: str
    status: str
    basins: list[str]
    published_at: When = None


class PublishedOut(BaseModel):
    id: str
    version: int
    created: bool = Field(description="false when the same content was already the latest version")


class PathwayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition_id: str = Field(examples=["rsa_socio_pro"])
    basin: str = Field(examples=["annecien"])
    referent_org: str = Field(description="the referent organisation: your own", examples=["departement74"])
    person: dict[str, Any] = Field(
        description="first_name, last_name, birth_date, email, phone, nir, france_travail_id, "
        "and consent (must be true)",
        examples=[
            {
                "first_name": "Alex",
                "last_name": "Exemple",
                "birth_date": "1990-05-17",
                "consent": True,
            }
        ],
    )


class PathwayStartedOut(BaseModel):
    pathway_id: str


class PathwayOut(Out):
    """A pathway without personal data (the person is only shown by GET /api/pathways/{id})."""

    id: str
    definition_id: str
    definition_version: int
    basin_id: str
    referent_org: str
    status: str
    current_steps: list[str]
    sla: str | None
    stuck_since: When = None
    started_at: When = None
    updated_at: When = None
    last_progress_at: When = None
    closed_at: When = None
    exit_reason: str | None


class StepOut(Out):
    id: str
    step_id: str
    title: str
    kind: str
    track: str
    status: str
    opened_at: When = None
    closed_at: When = None
    outcome: str | None


class TaskOut(Out):
    id: str
    pathway_id: str
    step_id: str
    title: str
    definition_id: str
    basin_id: str
    organisation_id: str
    status: str
    sla: str | None
    due_at: When = None
    opened_at: When = None
    closed_at: When = None
    escalation_level: int
    outcome: str | None


class EscalationOut(Out):
    id: str
    pathway_id: str
    task_id: str
    step_id: str
    basin_id: str
    level: int
    to: str
    status: str
    opened_at: When = None
    decided_at: When = None
    decided_by: str | None
    action: str | None


class FollowUpOut(Out):
    organisation_id: str
    since: When = None
    until: When = None


class PathwayDetailOut(BaseModel):
    pathway: PathwayOut
    access_reason: str = Field(description="why you may read this pathway (traced in the audit log)")
    person: dict[str, Any] | None = Field(description="the person, NIR masked unless your organisation may read it")
    steps: list[StepOut]
    tasks: list[TaskOut]
    escalations: list[EscalationOut]
    follow_up: list[FollowUpOut]


class CompleteIn(BaseModel):
    outcome: str = Field(examples=["fait"])
    data: dict[str, Any] = Field(default_factory=dict, description="the task's form answers, by field id")


class ReassignIn(BaseModel):
    organisation: str = Field(examples=["ml_annecy"])
    reason: str | None = Field(None, max_length=5000)


class DecisionIn(BaseModel):
    action: Literal["reassign", "extend", "add_step", "close", "unblock"]
    note: str | None = Field(None, max_length=5000)
    organisation: str | None = Field(None, description="reassign: the organisation to give the task to")
    extend_by: str | None = Field(None, description="extend: e.g. '5 working days' or 'PT1H'")
    module_id: str | None = Field(None, description="add_step: a module of the pathway's definition")
    exit_reason: str | None = Field(None, description="close: emploi_durable, formation, abandon…")


class ActionOut(BaseModel):
    message: str
    opened: list[str]
    pathway_id: str


class StepCountOut(BaseModel):
    definition_id: str
    step_id: str
    total: int
    on_time: int
    due_soon: int
    overdue: int
    escalated: int


Responses = dict[int | str, dict[str, Any]]
DENIED: Responses = {403: {"model": ErrorOut, "description": "not allowed for your role, organisation or basin"}}
UNKNOWN: Responses = {404: {"model": ErrorOut, "description": "unknown id"}}
REFUSED: Responses = {
    403: {"model": RefusedOut, "description": "not allowed"},
    404: {"model": RefusedOut, "description": "unknown id"},
    409: {"model": RefusedOut, "description": "not possible in the pathway's current state"},
    422: {"model": RefusedOut, "description": "invalid request; `fields` names the form fields"},
}


# --- Access helpers ----------------------------------------------------------------------------


def signed_in_as(*roles: str, change: bool = False) -> Callable[..., Awaitable[CurrentUser]]:
    """The signed-in user, refused (403) unless in one of `roles`, before the body is read; a
    change made with a session cookie (not a bearer token) must carry its CSRF token too."""

    async def check(request: Request, user: User) -> CurrentUser:
        if change:
            await verify_csrf(request)
        require_roles(*roles)(user)
        return user

    return check


Caseworker = Annotated[CurrentUser, Depends(signed_in_as("caseworker"))]
CaseworkerActing = Annotated[CurrentUser, Depends(signed_in_as("caseworker", change=True))]
CaseworkerOrGto = Annotated[CurrentUser, Depends(signed_in_as("caseworker", "gto_lead"))]
GtoOrAdmin = Annotated[CurrentUser, Depends(signed_in_as("gto_lead", "admin"))]
GtoOrAdminActing = Annotated[CurrentUser, Depends(signed_in_as("gto_lead", "admin", change=True))]
DesignerActing = Annotated[CurrentUser, Depends(signed_in_as("designer", "admin", change=True))]
signed_in = APIRouter(
    dependencies=[Depends(bearer)],
    responses={401: {"model": ErrorOut, "description": "not signed in"}},
)


def _page(paged: views.Paged[Any], model: type[Out]) -> dict[str, Any]:
    return paged.as_dict([model.model_validate(row) for row in paged.items])


def _gto_basin(user: CurrentUser, basin: str | None) -> str:
    """A GTO lead's basin, refusing any other one."""
    if user.basin_id is None:
        raise HTTPException(403, "Aucun bassin n'est rattaché à votre compte d'animateur·rice GTO.")
    if basin is not None and basin != user.basin_id:
        raise HTTPException(
            403,
            f"Vous animez le GTO du bassin « {user.basin_id} » : le bassin « {basin} » ne vous est pas ouvert.",
        )
    return user.basin_id


def _result(result: UpdateResult) -> ActionOut:
    return ActionOut(message=result.message, opened=result.opened, pathway_id=result.pathway_id)


# --- Authentication -----------------------------------------------------------------------------


@router.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["Authentification"],
    responses={
        401: {"model": ErrorOut, "description": "wrong e-mail or password"},
        429: {"model": ErrorOut, "description": "too many failures"},
    },
)
def create_token(body: TokenIn, request: Request, engine: Engine_) -> TokenOut:
    """Exchange an e-mail and password for a bearer token (valid 12 hours). After 5 failures for
    the same address from the same client, sign-in is refused for 15 minutes (429)."""
    limiter = request.app.state.sign_in_limiter
    key = f"{body.email.strip().lower()}|{request.client.host if request.client else ''}"
    if limiter.blocked(key):
        raise HTTPException(
            429,
            "Trop de tentatives de connexion : réessayez dans 15 minutes.",
            headers={"Retry-After": str(int(limiter.window))},
        )
    user = authenticate(engine, email=body.email, password=body.password)
    if user is None:
        limiter.failed(key)
        raise HTTPException(401, "Adresse e-mail ou mot de passe incorrect.", headers={"WWW-Authenticate": "Bearer"})
    limiter.succeeded(key)
    access.record_action(engine, user, "signed_in", detail={"method": "api_token"})
    return TokenOut(access_token=api_token(request.app.state.settings.secret_key, user.id))


@signed_in.get("/me", response_model=MeOut, tags=["Authentification"])
def me(user: User) -> MeOut:
    """Who you are: role, organisation, basin (GTO leads)."""
    return MeOut.model_validate(user)


# --- Definitions ------------------------------------------------------------------------------


@signed_in.get("/definitions", response_model=list[DefinitionOut], tags=["Définitions"])
def list_definitions(user: User, engine: Engine_) -> list[DefinitionOut]:
    """The latest version of every published definition."""
    latest: dict[str, models.DefinitionVersion] = {}
    for row in q.list_definitions(engine):  # ordered by id, version
        latest[row.id] = row
    return [DefinitionOut.model_validate(row) for row in latest.values()]


@signed_in.post(
    "/definitions",
    response_model=PublishedOut,
    status_code=201,
    tags=["Définitions"],
    responses={
        200: {
            "model": PublishedOut,
            "description": "unchanged: the latest version already has this content",
        },
        **DENIED,
        415: {"model": ErrorOut, "description": "neither YAML nor JSON"},
        422: {
            "model": InvalidDefinitionOut,
            "description": "invalid definition: every error with its step and field",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "text/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def publish_definition(request: Request, response: Response, user: DesignerActing, engine: Engine_) -> Any:
    """Validate and publish a definition (designers and admins). Version n+1 is created (201)
    unless the latest version has the same content (200, `created: false`)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if not is_json and content_type not in YAML_TYPES:
        raise HTTPException(
            415,
            "Envoyez la définition en YAML (Content-Type: application/yaml) ou en JSON (application/json).",
        )
    raw = await request.body()
    if len(raw) > MAX_DEFINITION_BYTES:
        raise HTTPException(413, "Définition trop volumineuse (1 Mo au plus).")
    try:
        text = raw.decode("utf-8")
        definition = _parse_definition(text, is_json)
    except UnicodeDecodeError:
        return _invalid_definition([DefinitionProblem(step=None, field=None, message="the body is not UTF-8 text")])
    except InvalidDefinition as error:
        return _invalid_definition(
            [DefinitionProblem(step=e.step, field=e.field, message=e.message) for e in error.errors]
        )
    version, created = q.publish_definition(engine, definition=definition, source=text, published_by=user.email)
    if created:
        access.record_action(
            engine,
            user,
            "definition_published",
            detail={"definition": definition.id, "version": str(version)},
        )
    response.status_code = 201 if created else 200
    return PublishedOut(id=definition.id, version=version, created=created)


def _parse_definition(text: str, is_json: bool) -> Definition:
    if not is_json:
        return parse_text(text, source="api")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidDefinition(
            [
                DefinitionError(
                    "api",
                    None,
                    None,
                    f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}",
                )
            ]
        ) from None
    return parse_data(data, source="api")


def _invalid_definition(problems: list[DefinitionProblem]) -> JSONResponse:
    def located(problem: DefinitionProblem) -> str:
        where = ([f"étape « {problem.step} »"] if problem.step else []) + (
            [f"champ « {problem.field} »"] if problem.field else []
        )
        return " : ".join([*where, problem.message])

    body = InvalidDefinitionOut(
        detail="Définition invalide : " + " ; ".join(located(p) for p in problems), errors=problems
    )
    return JSONResponse(body.model_dump(), status_code=422)


# --- Pathways -------------------------------------------------------------------------------------


@signed_in.post(
    "/pathways",
    response_model=PathwayStartedOut,
    status_code=201,
    tags=["Parcours"],
    responses=REFUSED,
)
async def start_pathway(
    body: PathwayIn, response: Response, user: CaseworkerActing, service: Service
) -> PathwayStartedOut:
    """Start a pathway for a person (caseworkers, with their own organisation as referent).
    The person's consent to share with the follow-up group is required."""
    if body.referent_org != user.organisation_id:
        raise HTTPException(
            403,
            "Vous ne pouvez démarrer un parcours qu'avec votre organisation "
            f"({user.organisation_id}) comme structure référente.",
        )
    pathway_id = await service.start_pathway(
        definition_id=body.definition_id,
        basin_id=body.basin,
        referent_org=body.referent_org,
        person=body.person,
        actor=user.actor,
    )
    response.headers["Location"] = f"/api/pathways/{pathway_id}"
    return PathwayStartedOut(pathway_id=pathway_id)


@signed_in.get("/pathways", response_model=Page[PathwayOut], tags=["Parcours"], responses=DENIED)
def list_pathways(
    user: CaseworkerOrGto,
    engine: Engine_,
    basin: Annotated[str | None, Query(description="a basin id")] = None,
    stuck: Annotated[bool | None, Query(description="true: only stuck pathways (always on for GTO leads)")] = None,
    definition: Annotated[str | None, Query(description="a definition id")] = None,
    status: Annotated[Literal["active", "paused", "closed"] | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Caseworkers: the pathways their organisation follows (active follow-up group member).
    GTO leads: the stuck pathways of their basin only. No personal data in this list."""
    follow_up_org: str | None = None
    if user.role == "gto_lead":
        basin = _gto_basin(user, basin)
        if stuck is False:
            raise HTTPException(403, "Le GTO ne voit que les parcours bloqués de son bassin.")
        stuck = True
    else:
        follow_up_org = user.organisation_id
    cutoff = access.stuck_since_cutoff(q.now()) if stuck else None
    paged = views.pathway_list(
        engine,
        basin_id=basin,
        definition_id=definition,
        status=status,
        stuck_cutoff=cutoff,
        follow_up_org=follow_up_org,
        page=page,
        size=size,
    )
    return _page(paged, PathwayOut)


@signed_in.get(
    "/pathways/{pathway_id}",
    response_model=PathwayDetailOut,
    tags=["Parcours"],
    responses={**DENIED, **UNKNOWN},
)
def get_pathway(pathway_id: str, user: User, engine: Engine_) -> PathwayDetailOut:
    """A pathway with its timeline, tasks, escalations, follow-up group and person, for those
    who need to know: caseworkers of a follow-up group organisation, the basin's GTO lead while
    the pathway is stuck. Each read is traced in the audit log."""
    pathway = q.get_pathway(engine, pathway_id=pathway_id)
    if pathway is None:
        raise HTTPException(404, f"Parcours inconnu : « {pathway_id} ».")
    reason = access.access_reason(engine, user, pathway)
    if reason is None:
        raise HTTPException(
            403,
            "Vous n'avez pas accès à ce parcours : il est réservé aux organisations de son groupe "
            "de suivi et, tant qu'il est bloqué, à l'animateur·rice du GTO de son bassin.",
        )
    detail = q.pathway_detail(engine, pathway_id=pathway_id)
    assert detail is not None
    with session_scope(engine) as session:
        person = session.get(models.Person, pathway.person_id)
        person_data = access.person_view(person, user) if person is not None else None
    access.record_view(engine, user, pathway_id=pathway_id, what="pathway", reason=reason)
    return PathwayDetailOut(
        pathway=PathwayOut.model_validate(pathway),
        access_reason=reason,
        person=person_data,
        steps=[StepOut.model_validate(s) for s in detail["steps"]],
        tasks=[TaskOut.model_validate(t) for t in detail["tasks"]],
        escalations=[EscalationOut.model_validate(e) for e in detail["escalations"]],
        follow_up=[FollowUpOut.model_validate(m) for m in detail["follow_up"]],
    )


# --- Tasks --------------------------------------------------------------------------------------


@signed_in.get("/tasks", response_model=Page[TaskOut], tags=["Tâches"], responses=DENIED)
def list_tasks(
    user: Caseworker,
    engine: Engine_,
    scope: Annotated[
        Literal["mine", "organisation"],
        Query(
            description="tasks are given to organisations, not to people: both scopes list your organisation's tasks"
        ),
    ] = "mine",
    status: Annotated[Literal["open", "done"], Query()] = "open",
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Your organisation's inbox, by deadline (caseworkers)."""
    paged = views.task_inbox(engine, organisation_id=user.organisation_id, status=status, page=page, size=size)
    return _page(paged, TaskOut)


@signed_in.post("/tasks/{task_id}/complete", response_model=ActionOut, tags=["Tâches"], responses=REFUSED)
async def complete_task(task_id: str, body: CompleteIn, user: CaseworkerActing, service: Service) -> ActionOut:
    """Complete a task of your organisation with an outcome and its form's answers. The answer
    lists the tasks it opened, already visible in GET /api/tasks (read-your-writes)."""
    return _result(await service.complete_task(task_id=task_id, actor=user.actor, outcome=body.outcome, data=body.data))


@signed_in.post("/tasks/{task_id}/reassign", response_model=ActionOut, tags=["Tâches"], responses=REFUSED)
async def reassign_task(task_id: str, body: ReassignIn, user: CaseworkerActing, service: Service) -> ActionOut:
    """Give a task to another organisation (the task's organisation or the pathway's referent);
    that organisation joins the follow-up group."""
    return _result(
        await service.reassign_task(
            task_id=task_id, actor=user.actor, organisation_id=body.organisation, reason=body.reason
        )
    )


# --- Escalations --------------------------------------------------------------------------------


@signed_in.get("/escalations", response_model=Page[EscalationOut], tags=["GTO"], responses=DENIED)
def list_escalations(
    user: GtoOrAdmin,
    engine: Engine_,
    basin: Annotated[str | None, Query(description="GTO leads: their own basin only")] = None,
    status: Annotated[Literal["open", "decided", "resolved"], Query()] = "open",
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Escalations of a basin's GTO (GTO leads: their basin; admins: every basin)."""
    if user.role == "gto_lead":
        basin = _gto_basin(user, basin)
    return _page(
        views.escalation_list(engine, basin_id=basin, status=status, page=page, size=size),
        EscalationOut,
    )


@signed_in.post(
    "/escalations/{escalation_id}/decision",
    response_model=ActionOut,
    tags=["GTO"],
    responses=REFUSED,
)
async def decide_escalation(
    escalation_id: str, body: DecisionIn, user: GtoOrAdminActing, engine: Engine_, service: Service
) -> ActionOut:
    """The GTO's decision on an escalation (the basin's GTO lead, or an admin): reassign
    (`organisation`), extend (`extend_by`), add_step (`module_id`), close (`exit_reason`),
    unblock."""
    with session_scope(engine) as session:
        escalation = session.get(models.Escalation, escalation_id)
    if escalation is None:
        raise HTTPException(404, f"Escalade inconnue : « {escalation_id} ».")
    if user.role == "gto_lead":
        _gto_basin(user, escalation.basin_id)
    result = await service.decide_escalation(
        escalation_id=escalation_id,
        actor=user.actor,
        action=body.action,
        note=body.note,
        organisation_id=body.organisation,
        extend_by=body.extend_by,
        module_id=body.module_id,
        exit_reason=body.exit_reason,
    )
    return _result(result)


# --- Statistics ---------------------------------------------------------------------------------


@signed_in.get("/stats/steps", response_model=list[StepCountOut], tags=["Statistiques"])
def step_stats(
    user: User,
    engine: Engine_,
    definition: Annotated[str | None, Query(description="a definition id")] = None,
    basin: Annotated[str | None, Query(description="a basin id")] = None,
) -> list[dict[str, Any]]:
    """Open tasks per step and SLA state: where pathways wait. Anonymous counts, for everyone
    signed in."""
    return views.step_counts(engine, definition_id=definition, basin_id=basin)


router.include_router(signed_in)
