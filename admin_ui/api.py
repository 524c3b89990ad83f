"""The JSON API: the same reads and actions as the pages, with the same need-to-know rules.

Authentication: `POST /api/auth/token` gives a bearer token (12 h) to send as
`Authorization: Bearer <token>`; a signed-in browser session also works, with its CSRF token in
`X-CSRF-Token` on every POST. Errors are JSON `{detail}` (plus `fields` when a form is refused,
`errors` when a definition is invalid): 401 not signed in, 403 denied, 404 unknown, 409 conflict
with the pathway's state, 422 invalid, 429 too many failed sign-ins, 503 Temporal did not answer in
time (the action may or may not have happened: send the same request again).

Retries: every write takes an optional `Idempotency-Key` header (1 to 100 letters, digits, `-`, `_`,
`.` or `:`; a UUID fits), scoped to the signed-in user. The same request sent again with the same
key (after a timeout, a 503, a lost connection) acts once and gets the first answer; the same key
with other values is refused (422). Keys are kept 30 days.

Who sees what: caseworkers see the pathways whose follow-up group their organisation belongs to
and their organisation's tasks; GTO leads see their basin's stuck pathways and escalations and
decide on them; designers publish definitions and read anonymous step counts; admins decide on
escalations of every basin. Every read of a person's data is written to the audit log."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, Service, User, client_of, require_roles, verify_csrf
from definitions.loader import InvalidDefinition
from services import definitions as service_definitions
from services import hosts, identity, reading, requests
from services.identity import API_TOKEN_SECONDS, SignInRefused
from store import views
from store.models import (
    DefinitionVersionPublic,
    EscalationPublic,
    HostPublic,
    ImmersionOfferPublic,
    PathwayPublic,
    PathwayStepPublic,
    PersonPublic,
    Public,
    TaskPublic,
    UserPublic,
)
from workflows.model import UpdateResult

T = TypeVar("T")
MAX_DEFINITION_BYTES = 1_000_000
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

bearer = HTTPBearer(auto_error=False, description="Jeton obtenu par POST /api/auth/token.")
router = APIRouter()  # each route carries its tag (the groups of /docs)


# --- Models ---------------------------------------------------------------------------------
# What the API answers for a read-model row is that table's `XPublic` (store/models.py), built
# from the same `XBase` as the table; only compositions and requests are declared here.


class ErrorOut(BaseModel):
    detail: str


class RefusedOut(BaseModel):
    """An action refused by the service or the workflow; `fields` locates form errors."""

    detail: str
    fields: dict[str, str] = {}


class DefinitionProblem(BaseModel):
    step: str | None
    field: str | None
    message: str = Field(description="in French")
    line: int | None = Field(None, description="the line of the YAML (or JSON) source")


class InvalidDefinitionOut(BaseModel):
    detail: str
    errors: list[DefinitionProblem]


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    size: int
    total: int
    pages: int
    total_capped: bool = Field(
        False, description="true: more than `total` items match (a large list counts up to a cap); narrow the filters"
    )


class TokenIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    email: str = Field(max_length=320, examples=["camille.martin@example.org"])
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(API_TOKEN_SECONDS, description="seconds")


class MeOut(UserPublic):
    """The user's public fields (never the password's hash or the sessions' version), with the
    organisation's name and type."""

    organisation_name: str
    organisation_type: str


class PublishedOut(BaseModel):
    id: str
    version: int
    created: bool = Field(description="false when the same content was already the latest version")


ID_MAX, TEXT_MAX, ANSWER_MAX, ANSWER_ITEMS, NUMBER_MAX = 100, 5000, 10_000, 200, 10**15


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """Answers as plain JSON: finite, bounded numbers and bounded strings, however nested (Python's
    JSON parser accepts NaN, Infinity and 1e999; they would reach the workflow): else a 422."""

    def check(item: Any, depth: int) -> None:
        if depth > 5:
            raise ValueError("réponses trop imbriquées")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("nombre non fini (NaN ou infini) refusé")
        if isinstance(item, int | float) and not isinstance(item, bool) and abs(item) > NUMBER_MAX:
            raise ValueError(f"nombre trop grand (au plus {NUMBER_MAX:.0e})")
        if isinstance(item, str) and len(item) > ANSWER_MAX:
            raise ValueError(f"texte de plus de {ANSWER_MAX} caractères")
        if isinstance(item, dict | list) and len(item) > ANSWER_ITEMS:
            raise ValueError(f"plus de {ANSWER_ITEMS} éléments")
        for child in item.items() if isinstance(item, dict) else item if isinstance(item, list) else ():
            for part in child if isinstance(child, tuple) else (child,):
                check(part, depth + 1)

    check(value, 0)
    return value


PlainJson = Annotated[dict[str, Any], AfterValidator(_plain_json)]


class PathwayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    definition_id: str = Field(max_length=ID_MAX, examples=["rsa_socio_pro"])
    basin: str = Field(max_length=ID_MAX, examples=["annecien"])
    referent_org: str = Field(
        max_length=ID_MAX, description="the referent organisation: your own", examples=["departement74"]
    )
    person: PlainJson = Field(
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


class FollowUpOut(Public):
    # Not a FollowUpMember family: its key is (pathway_id, organisation_id), in that order, and
    # pathway_id is not shown here; a base without it would reorder the key.
    organisation_id: str
    since: datetime | None = None
    until: datetime | None = None


class AnonymisedPersonOut(BaseModel):
    id: str
    first_name: str
    last_name: str
    anonymised: Literal[True]


class PathwayDetailOut(BaseModel):
    pathway: PathwayPublic
    access_reason: str = Field(description="why you may read this pathway (traced in the audit log)")
    # Left to right: an anonymised person would also pass as a PersonPublic with empty fields.
    person: AnonymisedPersonOut | PersonPublic | None = Field(
        description="the person, NIR masked unless your organisation may read it", union_mode="left_to_right"
    )
    steps: list[PathwayStepPublic]
    tasks: list[TaskPublic]
    escalations: list[EscalationPublic]
    follow_up: list[FollowUpOut]


class CompleteIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    outcome: str = Field(max_length=ID_MAX, examples=["fait"])
    data: PlainJson = Field(default_factory=dict, description="the task's form answers, by field id")


class ReassignIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    organisation: str = Field(max_length=ID_MAX, examples=["ml_annecy"])
    reason: str | None = Field(None, max_length=TEXT_MAX)


class DecisionIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    action: Literal["reassign", "extend", "add_step", "close", "unblock"]
    note: str | None = Field(None, max_length=TEXT_MAX)
    organisation: str | None = Field(
        None, max_length=ID_MAX, description="reassign: the organisation to give the task to"
    )
    extend_by: str | None = Field(None, max_length=ID_MAX, description="extend: e.g. '5 working days' or 'PT1H'")
    module_id: str | None = Field(None, max_length=ID_MAX, description="add_step: a module of the pathway's definition")
    exit_reason: str | None = Field(None, max_length=ID_MAX, description="close: emploi_durable, formation, abandon…")


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
    422: {
        "model": RefusedOut,
        "description": "invalid request; `fields` names the form fields; also an invalid Idempotency-Key, "
        "or one already used for another request",
    },
    503: {
        "model": RefusedOut,
        "description": "Temporal did not answer in time: send the same request again (same Idempotency-Key)",
    },
}


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="optional: the same key again (same user, same values) acts once and gets the "
            "first answer; 1 to 100 letters, digits, `-`, `_`, `.` or `:` (a UUID fits)",
        ),
    ] = None,
) -> str | None:
    """The request's Idempotency-Key, refused (422, in French, naming the header) when malformed."""
    if key is not None and not requests.valid_request_id(key):
        raise HTTPException(422, f"En-tête Idempotency-Key invalide : {requests.REQUEST_ID_RULE}.")
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


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
CaseworkerOrAdminActing = Annotated[CurrentUser, Depends(signed_in_as("caseworker", "admin", change=True))]
GtoOrAdmin = Annotated[CurrentUser, Depends(signed_in_as("gto_lead", "admin"))]
GtoOrAdminActing = Annotated[CurrentUser, Depends(signed_in_as("gto_lead", "direction", "admin", change=True))]
DesignerActing = Annotated[CurrentUser, Depends(signed_in_as("designer", "admin", change=True))]
signed_in = APIRouter(
    dependencies=[Depends(bearer)],
    responses={401: {"model": ErrorOut, "description": "not signed in"}},
)


def _page(paged: views.Paged[Any], model: type[BaseModel]) -> dict[str, Any]:
    return paged.as_dict([model.model_validate(row) for row in paged.items])


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
    settings = request.app.state.settings
    try:
        token = identity.sign_in_for_api(
            engine, settings, email=body.email, password=body.password, client=client_of(request)
        )
    except SignInRefused as refused:
        headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else {"WWW-Authenticate": "Bearer"}
        raise HTTPException(refused.status, refused.message, headers=headers) from None
    return TokenOut(access_token=token)


@signed_in.get("/me", response_model=MeOut, tags=["Authentification"])
def me(user: User) -> MeOut:
    """Who you are: role, organisation, basin (GTO leads)."""
    return MeOut.model_validate(user)


# --- Definitions ------------------------------------------------------------------------------


@signed_in.get("/definitions", response_model=list[DefinitionVersionPublic], tags=["Définitions"])
def list_definitions(user: User, engine: Engine_) -> list[DefinitionVersionPublic]:
    """The latest version of every published definition."""
    return [DefinitionVersionPublic.model_validate(row) for row in service_definitions.latest_versions(engine)]


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
async def publish_definition(
    request: Request, response: Response, user: DesignerActing, engine: Engine_, key: IdempotencyKey
) -> Any:
    """Validate and publish a definition (designers and admins). Version n+1 is created (201)
    unless the latest version has the same content (200, `created: false`); the same request
    again with the same Idempotency-Key gets the first answer (201 and its version)."""
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
    except UnicodeDecodeError:
        problem = DefinitionProblem(step=None, field=None, message="le corps n'est pas un texte UTF-8", line=None)
        return _invalid_definition([problem])
    logged = requests.open_request(
        engine,
        actor_user_id=user.id,
        request_id=key,
        kind="publish",
        target="definition",
        inputs={"content_type": content_type, "body": hashlib.sha256(raw).hexdigest()},
    )
    if logged.answer is not None:
        first = PublishedOut.model_validate(logged.answer)
    else:
        try:
            published = service_definitions.publish(engine, user.actor, text, source="api", is_json=is_json)
        except InvalidDefinition as error:
            return _invalid_definition(
                [DefinitionProblem(step=e.step, field=e.field, message=e.message, line=e.line) for e in error.errors]
            )
        first = PublishedOut(id=published.definition.id, version=published.version, created=published.created)
        logged.finish(first.model_dump())
    response.status_code = 201 if first.created else 200
    return first


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
    body: PathwayIn, response: Response, user: CaseworkerActing, service: Service, key: IdempotencyKey
) -> PathwayStartedOut:
    """Start a pathway for a person (caseworkers, with their own organisation as referent).
    The person's consent to share with the follow-up group is required. The same request again
    with the same Idempotency-Key gives the same pathway (201), never a second one."""
    pathway_id = await service.start_pathway(
        definition_id=body.definition_id,
        basin_id=body.basin,
        referent_org=body.referent_org,
        person=body.person,
        actor=user.actor,
        request_id=key,
    )
    response.headers["Location"] = f"/api/pathways/{pathway_id}"
    return PathwayStartedOut(pathway_id=pathway_id)


@signed_in.get("/pathways", response_model=Page[PathwayPublic], tags=["Parcours"], responses=DENIED)
def list_pathways(
    user: CaseworkerOrGto,
    engine: Engine_,
    basin: Annotated[str | None, Query(description="a basin id")] = None,
    stuck: Annotated[bool | None, Query(description="true: only stuck pathways (always on for GTO leads)")] = None,
    definition: Annotated[str | None, Query(description="a definition id")] = None,
    status: Annotated[
        Literal["open", "active", "paused", "closed"] | None,
        Query(description="open: active or paused; closed: the closed pathways you may still read"),
    ] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Caseworkers: the pathways their organisation may read (open ones while in the follow-up
    group; closed ones it followed when they closed, until anonymised). GTO leads: the stuck
    pathways of their basin only. No personal data in this list."""
    paged = reading.pathways(
        engine,
        user,
        basin_id=basin,
        stuck=stuck,
        definition_id=definition,
        status=status,
        page=page,
        size=size,
    )
    return _page(paged, PathwayPublic)


@signed_in.get(
    "/pathways/{pathway_id}",
    response_model=PathwayDetailOut,
    tags=["Parcours"],
    responses={**DENIED, **UNKNOWN},
)
def get_pathway(pathway_id: str, user: User, engine: Engine_) -> PathwayDetailOut:
    """A pathway with its timeline, tasks, escalations, follow-up group and person, for those
    who need to know: caseworkers of a follow-up group organisation, the basin's GTO lead while
    the pathway is stuck, and after it closes its referent and follow-up group until the person is
    anonymised. Each read is traced in the audit log."""
    read = reading.pathway_detail(engine, user, pathway_id)
    pathway, detail = read.pathway, read.detail
    return PathwayDetailOut(
        pathway=PathwayPublic.model_validate(pathway),
        access_reason=read.reason,
        person=read.person,  # a dict, validated into PersonPublic or AnonymisedPersonOut
        steps=[PathwayStepPublic.model_validate(s) for s in detail["steps"]],
        tasks=[TaskPublic.model_validate(t) for t in detail["tasks"]],
        escalations=[EscalationPublic.model_validate(e) for e in detail["escalations"]],
        follow_up=[FollowUpOut.model_validate(m) for m in detail["follow_up"]],
    )


# --- Tasks --------------------------------------------------------------------------------------


@signed_in.get("/tasks", response_model=Page[TaskPublic], tags=["Tâches"], responses=DENIED)
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
    return _page(reading.inbox(engine, user, status=status, page=page, size=size), TaskPublic)


@signed_in.post("/tasks/{task_id}/complete", response_model=ActionOut, tags=["Tâches"], responses=REFUSED)
async def complete_task(
    task_id: str, body: CompleteIn, user: CaseworkerActing, service: Service, key: IdempotencyKey
) -> ActionOut:
    """Complete a task of your organisation with an outcome and its form's answers. The answer
    lists the tasks it opened, already visible in GET /api/tasks (read-your-writes). Retried with
    the same Idempotency-Key, the first answer (200); another request on a closed task: 409."""
    return _result(
        await service.complete_task(
            task_id=task_id, actor=user.actor, outcome=body.outcome, data=body.data, request_id=key
        )
    )


@signed_in.post("/tasks/{task_id}/reassign", response_model=ActionOut, tags=["Tâches"], responses=REFUSED)
async def reassign_task(
    task_id: str, body: ReassignIn, user: CaseworkerActing, service: Service, key: IdempotencyKey
) -> ActionOut:
    """Give a task to another organisation (the task's organisation or the pathway's referent);
    that organisation joins the follow-up group."""
    return _result(
        await service.reassign_task(
            task_id=task_id,
            actor=user.actor,
            organisation_id=body.organisation,
            reason=body.reason,
            request_id=key,
        )
    )


# --- Escalations --------------------------------------------------------------------------------


@signed_in.get("/escalations", response_model=Page[EscalationPublic], tags=["GTO"], responses=DENIED)
def list_escalations(
    user: GtoOrAdmin,
    engine: Engine_,
    basin: Annotated[str | None, Query(description="GTO leads: their own basin only")] = None,
    status: Annotated[Literal["open", "decided", "resolved"], Query()] = "open",
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """Escalations of a basin's GTO (GTO leads: their basin; admins: every basin)."""
    return _page(
        reading.escalations(engine, user, basin_id=basin, status=status, page=page, size=size), EscalationPublic
    )


@signed_in.post(
    "/escalations/{escalation_id}/decision",
    response_model=ActionOut,
    tags=["GTO"],
    responses=REFUSED,
)
async def decide_escalation(
    escalation_id: str, body: DecisionIn, user: GtoOrAdminActing, service: Service, key: IdempotencyKey
) -> ActionOut:
    """The GTO's decision on an escalation (the basin's GTO lead, or an admin): reassign
    (`organisation`), extend (`extend_by`), add_step (`module_id`), close (`exit_reason`),
    unblock."""
    result = await service.decide_escalation(
        escalation_id=escalation_id,
        actor=user.actor,
        action=body.action,
        note=body.note,
        organisation_id=body.organisation,
        extend_by=body.extend_by,
        module_id=body.module_id,
        exit_reason=body.exit_reason,
        request_id=key,
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


# --- Host structures for immersions -------------------------------------------------------------


class TutorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    job: str = Field("", max_length=200)
    email: str = Field("", max_length=254)


class HostIn(BaseModel):
    """A host structure: SIRET checked (14 digits with its check digit), at least one trade."""

    model_config = ConfigDict(extra="forbid")
    basin: str = Field(max_length=100)
    name: str = Field(max_length=200)
    siret: str = Field(max_length=20)
    address: str = Field(max_length=2000)
    sector: str = Field(max_length=200)
    trades: list[str] = Field(max_length=30)
    accessibility: str = Field("", max_length=2000)
    contact_name: str = Field(max_length=200)
    contact_email: str = Field(max_length=254)
    contact_phone: str = Field("", max_length=30)
    tutors: list[TutorIn] = Field([], max_length=30)


class PeriodIn(BaseModel):
    start: str = Field(description="AAAA-MM-JJ", max_length=10)
    end: str = Field(description="AAAA-MM-JJ", max_length=10)


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trade: str = Field(max_length=200)
    places: int = Field(1, ge=1, le=50)
    periods: list[PeriodIn] = Field(min_length=1, max_length=12)


class HostOut(HostPublic):
    offers: list[ImmersionOfferPublic]


@signed_in.get("/hosts", response_model=Page[HostOut], tags=["Structures d'accueil"])
def list_hosts(
    user: User,
    engine: Engine_,
    basin: Annotated[str | None, Query(description="a basin id")] = None,
    trade: Annotated[str | None, Query(description="words of a trade or sector, any case and accents")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = views.DEFAULT_PAGE_SIZE,
) -> dict[str, Any]:
    """The directory of host structures for immersions, with their open offers (every signed-in
    user; it holds no personal data about the people accompanied)."""
    paged = hosts.search(engine, basin_id=basin, trade=trade, page=page, size=size)
    return paged.as_dict([_host_out(listing) for listing in paged.items])


def _host_out(listing: hosts.HostListing) -> HostOut:
    return HostOut(
        **HostPublic.model_validate(listing.host).model_dump(),
        offers=[ImmersionOfferPublic.model_validate(o) for o in listing.offers],
    )


@signed_in.post("/hosts", response_model=HostOut, status_code=201, tags=["Structures d'accueil"], responses=REFUSED)
def add_host(body: HostIn, response: Response, user: CaseworkerOrAdminActing, engine: Engine_) -> HostOut:
    """Add a host to a basin's directory (partners who prospect employers). The same SIRET again
    in the basin: 409, so a retried request never adds it twice."""
    entry = hosts.HostEntry(
        **body.model_dump(exclude={"basin", "tutors"}), tutors=[t.model_dump() for t in body.tutors]
    )
    host = hosts.add_host(engine, actor=user.actor, basin_id=body.basin, entry=entry)
    response.headers["Location"] = f"/api/hosts/{host.id}"
    return _host_out(hosts.HostListing(host, []))


@signed_in.get("/hosts/{host_id}", response_model=HostOut, tags=["Structures d'accueil"], responses=UNKNOWN)
def get_host(host_id: str, user: User, engine: Engine_) -> HostOut:
    return _host_out(hosts.host_listing(engine, host_id=host_id))


@signed_in.post(
    "/hosts/{host_id}/offers",
    response_model=ImmersionOfferPublic,
    status_code=201,
    tags=["Structures d'accueil"],
    responses=REFUSED,
)
def add_offer(
    host_id: str, body: OfferIn, user: CaseworkerOrAdminActing, engine: Engine_, key: IdempotencyKey
) -> ImmersionOfferPublic:
    """Add an immersion offer to a host. The same request again with the same Idempotency-Key
    answers the offer already added, never a second one."""
    entry = hosts.OfferEntry(trade=body.trade, places=body.places, periods=[p.model_dump() for p in body.periods])
    offer = hosts.add_offer(engine, actor=user.actor, host_id=host_id, entry=entry, request_id=key)
    return ImmersionOfferPublic.model_validate(offer)


router.include_router(signed_in)
