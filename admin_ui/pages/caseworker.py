"""Pages for caseworkers (conseillers): the inbox of their organisation's tasks, the task page
with the form generated from the step definition, the pathways their organisation follows
(timeline, follow-up group, notes, history, referent actions) and starting a pathway.

Every action goes through PathwayService; refusals are shown next to the field or as an alert."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from admin_ui.access import access_reason
from admin_ui.deps import Engine_, Service, User, require_roles, verify_csrf
from admin_ui.web import (
    PAGE_SIZE,
    SLA_BADGES,
    attachment,
    basin_names,
    flash,
    fr_date,
    fr_datetime,
    organisation_names,
    posted_request_id,
    render,
)
from definitions.schema import (
    EXIT_REASONS,
    TRIAL_SUFFIX,
    DecisionStep,
    Definition,
    FormField,
    ParallelStep,
    TaskStep,
    WaitStep,
)
from parcours.presenters import AUDIT_LABELS, GTO_ACTIONS, aware
from services import hosts, immersions, passport, reading
from services.errors import ServiceError
from services.pathways import PathwayService, PersonIn, person_errors
from services.reading import read_person
from store import models
from store import queries as q
from store import views as v

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_roles("caseworker"))])
CSRF = [Depends(verify_csrf)]

ESCALATION_TARGETS = {"gto": "GTO du bassin", "spie_direction": "direction du SPIE"}
PATHWAY_STATUSES = {
    "open": "Ouverts (en cours ou suspendus)",
    "active": "En cours",
    "paused": "Suspendu",
    "closed": "Clos",
}
TASK_STATUSES = {"open": "À traiter", "done": "Terminées"}
SHORT_TEXT_HINTS = (
    "nom",
    "numero",
    "telephone",
    "email",
    "mail",
    "ville",
    "siret",
    "code",
    "reference",
    "identifiant",
)
"""A text field whose id contains one of these gets a one-line input, others a textarea."""
PERSON_FIELDS = (
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "nir",
    "france_travail_id",
    "consent",
)
PERSON_FORMATS = {
    "email": "adresse e-mail invalide (exemple : nom@domaine.fr)",
    "phone": "numéro de téléphone invalide (chiffres, espaces, points ou tirets, 6 à 20)",
    "france_travail_id": "identifiant France Travail invalide (7 à 11 lettres ou chiffres)",
    "first_name": "le prénom est obligatoire",
    "last_name": "le nom est obligatoire",
    "birth_date": "date de naissance invalide (AAAA-MM-JJ)",
}
NOT_FOUND_TASK = "Cette tâche n'existe pas (ou plus)."


# --- Small helpers ----------------------------------------------------------------------------


def _is_htmx(request: Request) -> bool:
    """An htmx request that swaps part of the page (not a history restore, which wants it all)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-history-restore-request") != "true"


def _redirect(request: Request, url: str) -> Response:
    """After a successful action: a 303, or for htmx a full navigation (so the flash shows)."""
    if _is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _opt(value: str | None) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _page_number(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1


def _pathway_or_home(engine: Any, pathway_id: str, home: str) -> str:
    """Where to go after an action: the pathway page, or `home` once the pathway is closed (the
    follow-up group's access ends with the pathway)."""
    pathway = q.get_pathway(engine, pathway_id=pathway_id)
    return home if pathway is None or pathway.status == "closed" else f"/parcours/{pathway_id}"


def _definition_titles(engine: Any) -> dict[str, str]:
    return {row.id: row.title for row in v.latest_definition_rows(engine)}


def _seq(item_id: str) -> int:
    tail = item_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _pages(current: int, total: int) -> list[int | None]:
    """Page numbers to show around the current one; None marks a gap."""
    wanted = sorted({1, total, current - 1, current, current + 1} & set(range(1, total + 1)))
    shown: list[int | None] = []
    for number in wanted:
        previous = shown[-1] if shown else None
        if previous is not None and number - previous > 1:
            shown.append(None)
        shown.append(number)
    return shown


def _url(path: str, params: dict[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(clean) if clean else "")


def _list_page(
    request: Request,
    template: str,
    results: str,
    path: str,
    filters: dict[str, Any],
    paged: v.Paged[Any],
    **context: Any,
) -> Response:
    """A filtered list with its pagination: the whole page, or for htmx only its `results`."""
    return render(
        request,
        results if _is_htmx(request) else template,
        filters=filters,
        pages=_pages(paged.page, paged.pages),
        page_url=lambda n: _url(path, {**filters, "page": n if n > 1 else None}),
        **context,
    )


# --- Inbox (GET /taches) ----------------------------------------------------------------------


@router.get("/taches")
def inbox(
    request: Request,
    engine: Engine_,
    user: User,
    bassin: str | None = None,
    type: str | None = None,
    statut: str | None = None,
    sla: str | None = None,
    page: str | None = None,
) -> Response:
    filters = {
        "bassin": _opt(bassin),
        "type": _opt(type),
        "statut": statut if statut in TASK_STATUSES else "open",
        "sla": sla if sla in SLA_BADGES else None,
    }

    tasks = reading.inbox(
        engine,
        user,
        status=filters["statut"] or "open",
        basin_id=filters["bassin"],
        definition_id=filters["type"],
        sla=filters["sla"],
        page=_page_number(page),
        size=PAGE_SIZE,
    )
    return _list_page(
        request,
        "caseworker/inbox.html",
        "caseworker/_inbox_results.html",
        "/taches",
        filters,
        tasks,
        title="Mes tâches",
        nav="inbox",
        tasks=tasks,
        counts=v.task_counts(engine, organisation_id=user.organisation_id),
        basins=basin_names(engine),
        definitions=_definition_titles(engine),
        task_statuses=TASK_STATUSES,
    )


# --- Task page (GET/POST /taches/{id}) --------------------------------------------------------


def _task_or_404(engine: Any, task_id: str) -> tuple[models.Task, models.Pathway]:
    task = q.get_task(engine, task_id=task_id)
    pathway = q.get_pathway(engine, pathway_id=task.pathway_id) if task else None
    if task is None or pathway is None:
        raise HTTPException(404, NOT_FOUND_TASK)
    return task, pathway


def _serves(org: models.Organisation, basin_id: str) -> bool:
    return "all" in org.basins or basin_id in org.basins


def _task_context(
    request: Request,
    engine: Any,
    service: PathwayService,
    user: Any,
    task: models.Task,
    pathway: models.Pathway,
) -> dict[str, Any]:
    """Everything the task page shows; 403 unless the user's organisation holds the task or
    follows the pathway."""
    reason = access_reason(engine, user, pathway)
    holds = task.organisation_id == user.organisation_id
    if reason is None and not holds:
        raise HTTPException(
            403,
            "Cette tâche est confiée à une autre organisation, et la vôtre ne fait pas partie"
            " du groupe de suivi de ce parcours.",
        )
    definition = service.definition_of(pathway)
    step = definition.task(task.step_id)
    person = None
    if reason is not None:
        # A POST acts on the task: only a GET reads (and traces a view of) personal data.
        person = read_person(
            engine,
            user,
            pathway,
            reason=reason,
            what="identité de la personne (page de tâche)",
            audit=request.method == "GET",
        )
    organisations = q.list_organisations(engine)
    names = {o.id: o.name for o in organisations}
    is_open = task.status == "open"
    submission = v.get_submission(engine, submission_id=task.submission_id) if task.submission_id and reason else None
    return {
        "title": task.title,
        "nav": "inbox",
        "task": task,
        "pathway": pathway,
        "definition": definition,
        "step": step,
        "person": person,
        "org_names": names,
        "basin_name": basin_names(engine).get(pathway.basin_id, pathway.basin_id),
        "may_complete": holds and is_open and pathway.status == "active",
        "may_reassign": is_open
        and pathway.status == "active"
        and (holds or user.organisation_id == pathway.referent_org),
        "may_note": reason is not None,
        "reassign_to": sorted(
            (o for o in organisations if o.id != task.organisation_id and _serves(o, pathway.basin_id)),
            key=lambda o: o.name.lower(),
        ),
        "outcome_label": _outcome_label(step, task.outcome),
        "submission": submission.data if submission else None,
        "values": {},
        "errors": {},
        "alert": None,
        "alert_fields": {},
        "long_text": _text_is_long,
        "reassign": {"organisation": "", "reason": ""},
        "reassign_errors": {},
        "note_text": "",
        "note_error": None,
    }


def _outcome_label(step: TaskStep, outcome_id: str | None) -> str | None:
    outcome = step.outcome(outcome_id) if outcome_id else None
    return outcome.label if outcome else outcome_id


def _text_is_long(field: FormField) -> bool:
    return not any(hint in field.id for hint in SHORT_TEXT_HINTS)


def _read_task_form(step: TaskStep, form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data for the service, raw values to show again). Inputs are named champ.<field>
    (champ.<field>.<skill> for soft skills) so no field id clashes with csrf or outcome."""
    data: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for field in step.form:
        name = f"champ.{field.id}"
        if field.type == "soft_skills":
            scores = {skill: _text(form, f"{name}.{skill}") for skill in field.assessed_skills}
            scores = {skill: score for skill, score in scores.items() if score}
            data[field.id] = scores
            values[field.id] = scores
        else:
            raw = _text(form, name)
            data[field.id] = raw
            values[field.id] = raw
    return data, values


@router.get("/taches/{task_id}")
def task_page(request: Request, engine: Engine_, service: Service, user: User, task_id: str) -> Response:
    task, pathway = _task_or_404(engine, task_id)
    return render(
        request,
        "caseworker/task.html",
        **_task_context(request, engine, service, user, task, pathway),
    )


@router.post("/taches/{task_id}", dependencies=CSRF)
async def complete_task(request: Request, engine: Engine_, service: Service, user: User, task_id: str) -> Response:
    task, pathway = _task_or_404(engine, task_id)
    context = _task_context(request, engine, service, user, task, pathway)
    if task.organisation_id != user.organisation_id:
        raise HTTPException(
            403,
            "Seule l'organisation à qui la tâche est confiée peut la traiter : vous pouvez"
            " la consulter, ou la réattribuer si vous êtes la structure référente.",
        )
    step: TaskStep = context["step"]
    form = await request.form()
    request_id = posted_request_id(request, "complete", form.get("request_id"))
    data, values = _read_task_form(step, form)
    outcome = _text(form, "outcome")
    chosen = step.outcome(outcome)
    try:
        if chosen is None:
            raise ServiceError("Choisissez l'issue de la tâche avec l'un des boutons en bas du formulaire.")
        await service.complete_task(
            task_id=task.id, actor=user.actor, outcome=outcome, data=data, request_id=request_id
        )
    except ServiceError as error:
        known = {f.id for f in step.form}
        others = {k: m for k, m in error.fields.items() if k not in known}
        return render(
            request,
            "caseworker/task.html",
            status_code=error.status,
            **{
                **context,
                "values": values,
                "errors": error.fields,
                "alert": error.message,
                "alert_fields": others,
            },
        )
    flash(request, f"Tâche terminée : « {step.title} » — {chosen.label}.")
    return _redirect(request, _pathway_or_home(engine, pathway.id, "/taches"))


@router.post("/taches/{task_id}/reattribuer", dependencies=CSRF)
async def reassign_task(request: Request, engine: Engine_, service: Service, user: User, task_id: str) -> Response:
    task, pathway = _task_or_404(engine, task_id)
    context = _task_context(request, engine, service, user, task, pathway)
    form = await request.form()
    request_id = posted_request_id(request, "reassign", form.get("request_id"))
    organisation_id, reason = _text(form, "organisation"), _text(form, "motif")
    errors: dict[str, str] = {}
    if not organisation_id:
        errors["organisation"] = "Choisissez l'organisation à qui confier la tâche."
    if not reason:
        errors["motif"] = "Indiquez le motif de la réattribution : il est partagé avec le groupe de suivi."
    retry = {
        **context,
        "reassign": {"organisation": organisation_id, "reason": reason},
        "reassign_errors": errors,
    }
    if errors:
        return render(
            request,
            "caseworker/task.html",
            status_code=422,
            **{
                **retry,
                "alert": "La réattribution n'a pas été enregistrée : corrigez le formulaire.",
            },
        )
    try:
        await service.reassign_task(
            task_id=task.id, actor=user.actor, organisation_id=organisation_id, reason=reason, request_id=request_id
        )
    except ServiceError as error:
        return render(
            request,
            "caseworker/task.html",
            status_code=error.status,
            **{**retry, "alert": error.message},
        )
    flash(
        request,
        f"Tâche « {task.title} » réattribuée à {context['org_names'].get(organisation_id, organisation_id)}.",
    )
    return _redirect(request, f"/parcours/{pathway.id}")


@router.post("/taches/{task_id}/note", dependencies=CSRF)
async def task_note(request: Request, engine: Engine_, service: Service, user: User, task_id: str) -> Response:
    task, pathway = _task_or_404(engine, task_id)
    context = _task_context(request, engine, service, user, task, pathway)
    if not context["may_note"]:
        raise HTTPException(403, "Seul le groupe de suivi du parcours peut y ajouter une note.")
    return await _save_note(request, service, user, pathway, context, "caseworker/task.html", f"/taches/{task.id}")


async def _save_note(
    request: Request,
    service: PathwayService,
    user: Any,
    pathway: models.Pathway,
    context: dict[str, Any],
    template: str,
    done_url: str,
) -> Response:
    """Share the posted note with the follow-up group, or show `template` again without it."""
    form = await request.form()
    text = _text(form, "note")
    request_id = posted_request_id(request, "note", form.get("request_id"))
    if not text:
        return render(
            request,
            template,
            status_code=422,
            **{**context, "note_error": "Écrivez la note avant de l'enregistrer."},
        )
    try:
        service.add_note(pathway_id=pathway.id, actor=user.actor, text=text, request_id=request_id)
    except ServiceError as error:
        return render(request, template, status_code=error.status, **{**context, "note_error": error.message})
    flash(request, "Note partagée avec le groupe de suivi.")
    return _redirect(request, done_url)


# --- Pathways followed (GET /parcours) ---------------------------------------------------------


@router.get("/parcours")
def pathways(
    request: Request,
    engine: Engine_,
    service: Service,
    user: User,
    bassin: str | None = None,
    type: str | None = None,
    statut: str | None = None,
    page: str | None = None,
) -> Response:
    filters = {
        "bassin": _opt(bassin),
        "type": _opt(type),
        "statut": statut if statut in PATHWAY_STATUSES else None,
    }

    rows = reading.pathways(
        engine,
        user,
        basin_id=filters["bassin"],
        definition_id=filters["type"],
        status=filters["statut"],
        page=_page_number(page),
        size=PAGE_SIZE,
    )
    definitions: dict[tuple[str, int], Definition] = {}
    current: dict[str, list[str]] = {}
    for pathway in rows.items:
        key = (pathway.definition_id, pathway.definition_version)
        if key not in definitions:
            definitions[key] = service.definition_of(pathway)
        current[pathway.id] = [_step_title(definitions[key], s) for s in pathway.current_steps]
    return _list_page(
        request,
        "caseworker/pathways.html",
        "caseworker/_pathways_results.html",
        "/parcours",
        filters,
        rows,
        title="Parcours suivis",
        nav="pathways",
        rows=rows,
        current=current,
        basins=basin_names(engine),
        definitions=_definition_titles(engine),
        org_names=organisation_names(engine),
        pathway_statuses=PATHWAY_STATUSES,
    )


def _step_title(definition: Definition, step_id: str) -> str:
    try:
        return definition.task(step_id).title
    except KeyError:
        try:
            return definition.step(step_id).title
        except KeyError:
            return step_id


# --- Start a pathway (GET/POST /parcours/nouveau) ---------------------------------------------


def _start_basins(engine: Any, user: Any) -> dict[str, str]:
    """The basins the user's organisation serves (the referent must serve the pathway's basin)."""
    basins = basin_names(engine)
    org = q.get_organisation(engine, organisation_id=user.organisation_id)
    if org is None or "all" in org.basins:
        return basins
    return {k: name for k, name in basins.items() if k in org.basins}


def _startable(engine: Any, basin_id: str | None) -> list[models.DefinitionVersion]:
    """Latest versions, active or experimental, whose basins include the chosen one."""
    if not basin_id:
        return []
    rows = [
        r
        for r in v.latest_definition_rows(engine)
        if r.status in ("active", "experimental") and not r.id.endswith(TRIAL_SUFFIX)
    ]
    return [r for r in rows if Definition.model_validate(r.body).runs_in(basin_id)]


def _start_context(engine: Any, user: Any, basin_id: str | None, **extra: Any) -> dict[str, Any]:
    basins = _start_basins(engine, user)
    if basin_id not in basins:
        basin_id = user.basin_id if user.basin_id in basins else next(iter(basins), None)
    referent = q.get_organisation(engine, organisation_id=user.organisation_id)
    return {
        "title": "Démarrer un parcours",
        "nav": "start",
        "basins": basins,
        "basin_id": basin_id,
        "definitions": _startable(engine, basin_id),
        "referent": referent.name if referent else user.organisation_name,
        "values": {},
        "errors": {},
        "alert": None,
        **extra,
    }


@router.get("/parcours/nouveau")
def start_page(request: Request, engine: Engine_, user: User, basin: str | None = None) -> Response:
    """The start form; `basin` (the select's name, as in the form posted) filters the definitions."""
    return render(request, "caseworker/start.html", **_start_context(engine, user, basin))


@router.get("/parcours/nouveau/definitions")
def start_definitions(
    request: Request,
    engine: Engine_,
    user: User,
    basin: str | None = None,
    definition: str | None = None,
) -> Response:
    """htmx: the definition select for the chosen basin (the select named `basin`)."""
    context = _start_context(engine, user, basin)
    return render(
        request,
        "caseworker/_definition_select.html",
        **{**context, "values": {"definition": definition or ""}},
    )


def _french_person_error(field: str, message: str) -> str:
    if field in PERSON_FORMATS and not message.startswith(("numéro", "le consentement")) and "au plus" not in message:
        return PERSON_FORMATS[field]
    return message


@router.post("/parcours/nouveau", dependencies=CSRF)
async def start_pathway(request: Request, engine: Engine_, service: Service, user: User) -> Response:
    form = await request.form()
    request_id = posted_request_id(request, "start", form.get("request_id"))
    values = {name: _text(form, name) for name in (*PERSON_FIELDS, "definition", "basin")}
    values["consent"] = "oui" if form.get("consent") else ""
    context = _start_context(engine, user, values["basin"], values=values)
    errors: dict[str, str] = {}
    if not values["basin"] or values["basin"] not in context["basins"]:
        errors["basin"] = "Choisissez un bassin desservi par votre organisation."
    if not values["definition"]:
        errors["definition"] = "Choisissez le type de parcours."
    elif values["definition"] not in {d.id for d in context["definitions"]}:
        errors["definition"] = "Ce parcours n'est pas ouvert sur le bassin choisi."
    person: dict[str, Any] = {k: (values[k] or None) for k in PERSON_FIELDS if k != "consent"}
    person["consent"] = bool(values["consent"])
    try:
        if errors:
            # Check the person too, so that every error shows at once.
            try:
                PersonIn.model_validate(person)
            except ValidationError as error:
                errors.update(person_errors(error))
            raise ServiceError("Le formulaire contient des erreurs.", fields=errors)
        pathway_id = await service.start_pathway(
            definition_id=values["definition"],
            basin_id=values["basin"],
            referent_org=user.organisation_id,
            person=person,
            actor=user.actor,
            request_id=request_id,
        )
    except ServiceError as error:
        fields = {k: _french_person_error(k, m) for k, m in error.fields.items()}
        return render(
            request,
            "caseworker/start.html",
            status_code=error.status,
            **{**context, "errors": fields, "alert": error.message},
        )
    flash(
        request,
        f"Parcours {pathway_id} démarré : les premières tâches sont chez les partenaires.",
    )
    return _redirect(request, f"/parcours/{pathway_id}")


# --- Pathway page (GET /parcours/{id}) and referent actions -----------------------------------


def _person_rows(person: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The person's fields as (label, text), already masked by person_view."""
    if person is None:
        return []
    if person.get("anonymised"):
        return [("Personne", "Données anonymisées (durée de conservation écoulée)")]

    def day(value: str | None) -> str | None:
        if not value:
            return None
        moment = date.fromisoformat(value[:10])
        return fr_date(datetime(moment.year, moment.month, moment.day, 12, tzinfo=UTC))

    consent = person.get("consent_at")
    rows = [
        ("Nom", f"{person.get('first_name', '')} {str(person.get('last_name', '')).upper()}"),
        ("Date de naissance", day(person.get("birth_date"))),
        ("Adresse e-mail", person.get("email")),
        ("Téléphone", person.get("phone")),
        ("N° de sécurité sociale (NIR)", person.get("nir")),
        ("Identifiant France Travail", person.get("france_travail_id")),
        (
            "Consentement au partage",
            "recueilli le " + fr_datetime(datetime.fromisoformat(consent)) if consent else None,
        ),
    ]
    return [(label, value or "—") for label, value in rows]


def _pathway_or_404(engine: Any, pathway_id: str) -> models.Pathway:
    pathway = q.get_pathway(engine, pathway_id=pathway_id)
    if pathway is None:
        raise HTTPException(404, "Ce parcours n'existe pas.")
    return pathway


def _successor(step: Any) -> str | None:
    """The usual next step of a main-flow step (first outcome, default case)."""
    if isinstance(step, TaskStep):
        return next((o.next for o in step.outcomes if o.next), None)
    if isinstance(step, ParallelStep | WaitStep):
        return step.next
    if isinstance(step, DecisionStep):
        return step.default or step.cases[0].next
    return None


def _upcoming(definition: Definition, steps: list[models.PathwayStep], pathway: models.Pathway) -> list[Any]:
    """Main-flow steps not yet entered, along the usual path from the open ones."""
    if pathway.status == "closed":
        return []
    main_ids = {s.id for s in definition.steps}
    entered = {s.step_id for s in steps}
    starts = [s.step_id for s in steps if s.status == "open" and s.track == "main" and s.step_id in main_ids]
    upcoming: list[Any] = []
    seen: set[str] = set(starts)
    for start in starts:
        following = _successor(definition.step(start))
        while following and following not in seen and len(seen) < 200:
            seen.add(following)
            step = definition.step(following)
            if following not in entered and not isinstance(step, DecisionStep):
                upcoming.append(step)
            following = _successor(step)
    return upcoming


def _timeline(
    definition: Definition,
    steps: list[models.PathwayStep],
    tasks: dict[str, models.Task],
    org_names: dict[str, str],
) -> list[dict[str, Any]]:
    entries = []
    modules = {m.id: m.title for m in definition.modules}
    for row in sorted(steps, key=lambda s: _seq(s.id)):
        entry: dict[str, Any] = {
            "row": row,
            "title": row.title,
            "detail": None,
            "task": tasks.get(row.id),
            "track": None,
        }
        if row.track.startswith("module:"):
            module_id = row.track.removeprefix("module:")
            entry["track"] = "Module : " + modules.get(module_id, module_id)
        if row.kind == "task":
            task = tasks.get(row.id)
            if task is not None:
                entry["detail"] = org_names.get(task.organisation_id, task.organisation_id)
            if row.outcome:
                try:
                    outcome = definition.task(row.step_id).outcome(row.outcome)
                except KeyError:
                    outcome = None
                entry["outcome"] = outcome.label if outcome else row.outcome
        elif row.kind == "decision":
            entry["title"] = f"Décision automatique : {row.title}"
            if row.outcome:
                entry["outcome"] = "vers « " + _step_title(definition, row.outcome) + " »"
        elif row.kind == "group":
            entry["title"] = f"{row.title} (accompagnement conjoint)"
        elif row.kind == "end":
            entry["title"] = f"Sortie : {row.title}"
            entry["outcome"] = EXIT_REASONS.get(row.outcome or "", row.outcome)
        elif row.kind == "wait":
            entry["title"] = f"Attente : {row.title}"
        entries.append(entry)
    return entries


def _audit_entries(
    definition: Definition,
    events: list[models.AuditEvent],
    steps: dict[str, models.PathwayStep],
    notes: dict[str, models.Note],
    users: dict[str, models.User],
    org_names: dict[str, str],
) -> list[dict[str, Any]]:
    def org(organisation_id: str) -> str:
        return org_names.get(organisation_id, organisation_id)

    def when(event: models.AuditEvent) -> datetime:
        return aware(event.at) if event.at else datetime.min.replace(tzinfo=UTC)

    entries = []
    for event in sorted(events, key=lambda e: (when(e), _seq(e.id.replace("-a", "-"))), reverse=True)[:200]:
        detail = event.detail or {}
        parts: list[str] = []
        step = steps.get(event.task_id or "")
        if step is not None:
            parts.append(f"« {step.title} »")
        if event.action == "pathway_started":
            parts.append(f"{definition.title} ({detail.get('definition', '')})")
        elif event.action == "task_completed" and step is not None:
            try:
                outcome = definition.task(step.step_id).outcome(detail.get("outcome", ""))
            except KeyError:
                outcome = None
            parts.append("issue : " + (outcome.label if outcome else detail.get("outcome", "")))
        elif event.action == "task_reassigned":
            parts.append(f"de {org(detail.get('from', '—'))} à {org(detail.get('to', ''))}")
        elif event.action == "module_added":
            module = definition.module(detail.get("module", ""))
            parts.append(module.title if module else detail.get("module", ""))
        elif event.action == "pathway_closed":
            parts.append("motif : " + EXIT_REASONS.get(detail.get("exit_reason", ""), detail.get("exit_reason", "")))
        elif event.action == "pathway_resumed":
            seconds = int(detail.get("paused_seconds", "0") or 0)
            parts.append(
                f"après {seconds // 86400} j {seconds % 86400 // 3600} h de suspension"
                if seconds >= 3600
                else "après moins d'une heure de suspension"
            )
        elif event.action == "reminder_sent":
            parts.append(f"relance n° {detail.get('reminder', '1')}")
        elif event.action == "escalated":
            parts.append(
                f"niveau {detail.get('level', '')}, vers le "
                f"{ESCALATION_TARGETS.get(detail.get('to', ''), detail.get('to', ''))}"
            )
        elif event.action == "escalation_decided":
            action = GTO_ACTIONS.get(detail.get("action", ""))
            parts.append("décision : " + (action.done if action else detail.get("action", "")))
        elif event.action == "personal_data_viewed":
            parts.append(f"{detail.get('what', '')} ({detail.get('reason', '')})")
        note = notes.get(detail.get("note_id", ""))
        if note is not None:
            parts.append(f"motif : « {note.text} »")
        if event.actor_user_id == "system":
            actor = "Parcours (automatique)"
        else:
            author = users.get(event.actor_user_id)
            actor = f"{author.name if author else event.actor_user_id} · {org(event.actor_org_id)}"
        entries.append(
            {
                "at": event.at,
                "action": event.action,
                "label": AUDIT_LABELS.get(event.action, event.action),
                "actor": actor,
                "detail": " — ".join(p for p in parts if p),
            }
        )
    return entries


def _pathway_context(
    request: Request, engine: Any, service: PathwayService, user: Any, pathway: models.Pathway
) -> dict[str, Any]:
    reason = access_reason(engine, user, pathway)
    if reason is None:
        raise HTTPException(
            403,
            "Votre organisation ne fait pas (ou plus) partie du groupe de suivi de ce parcours :"
            " ses informations ne vous sont pas accessibles.",
        )
    person = read_person(engine, user, pathway, reason=reason, what="fiche du parcours", audit=request.method == "GET")
    definition = service.definition_of(pathway)
    history = v.pathway_history(engine, pathway_id=pathway.id)
    notes = v.pathway_notes(engine, pathway_id=pathway.id)
    org_names = organisation_names(engine)
    tasks = {t.id: t for t in history["tasks"]}
    steps = {s.id: s for s in history["steps"]}
    users = v.users_by_id(engine, {e.actor_user_id for e in history["audit"]} | {n.author_user_id for n in notes})
    open_tasks = [t for t in history["tasks"] if t.status == "open"]
    running_modules = {
        s.track.removeprefix("module:")
        for s in history["steps"]
        if s.status == "open" and s.track.startswith("module:")
    }
    audit = _audit_entries(definition, history["audit"], steps, {n.id: n for n in notes}, users, org_names)
    optional_open = []
    for task in open_tasks:
        try:
            if definition.task(task.step_id).optional:
                optional_open.append(task)
        except KeyError:
            pass
    return {
        "title": f"Parcours {pathway.id}",
        "nav": "pathways",
        "pathway": pathway,
        "definition": definition,
        "person": person,
        "person_rows": _person_rows(person),
        "org_names": org_names,
        "basin_name": basin_names(engine).get(pathway.basin_id, pathway.basin_id),
        "timeline": _timeline(definition, history["steps"], tasks, org_names),
        "upcoming": _upcoming(definition, history["steps"], pathway),
        "follow_up": history["follow_up"],
        "open_tasks": open_tasks,
        "my_tasks": [t for t in open_tasks if t.organisation_id == user.organisation_id],
        "notes": [{"note": n, "author": users.get(n.author_user_id)} for n in reversed(notes)],
        "audit": [e for e in audit if e["action"] != "personal_data_viewed"],
        "views": [e for e in audit if e["action"] == "personal_data_viewed"],
        "is_referent": user.organisation_id == pathway.referent_org,
        "modules": [m for m in definition.modules if m.id not in running_modules],
        "running_modules": running_modules,
        "optional_open": optional_open,
        "exit_reasons": EXIT_REASONS,
        "alert": None,
        "form": {},
        "action_errors": {},
        "note_text": "",
        "note_error": None,
        **_passport_context(engine, user, pathway),
        **_immersions_context(engine, user, pathway),
    }


def _immersions_context(engine: Any, user: Any, pathway: models.Pathway) -> dict[str, Any]:
    """The pathway's immersions, with their signatures, and what a prescriber proposes from."""
    found = immersions.of_pathway(engine, pathway.id)
    may_prescribe = pathway.status != "closed" and user.organisation_type in immersions.prescribers(engine)
    directory = hosts.search(engine, basin_id=pathway.basin_id, size=200).items if may_prescribe else []
    return {
        "immersions": [
            {
                "row": row,
                "host": views_host(engine, row.host_id),
                "signed": {s.party for s in immersions.signatures(engine, row.id)},
                "parties": immersions.parties(row),
            }
            for row in found
        ],
        "may_prescribe": may_prescribe,
        "host_choices": [listing.host for listing in directory],
        "immersion_objectives": immersions.OBJECTIVES,
        "immersion_parties": immersions.PARTIES,
        "renewable": [row for row in found if row.status == "signed" and not row.renewal_of],
    }


def views_host(engine: Any, host_id: str) -> Any:
    return hosts.host_listing(engine, host_id=host_id).host


def _passport_context(engine: Any, user: Any, pathway: models.Pathway) -> dict[str, Any]:
    """The savoir-être passport on the pathway page: its table and chart, or why it is not shown
    (the person has not consented to share it beyond the referent)."""
    try:
        found = passport.passport(engine, user, pathway.id, audit=False)  # the page's view is audited
    except ServiceError as error:
        return {"passport": None, "passport_refusal": error.message}
    return {
        "passport": found,
        "passport_chart": Markup(passport.chart_svg(found)) if len(found.assessments) > 1 else None,
        "passport_refusal": None,
    }


@router.get("/parcours/{pathway_id}/passeport.pdf")
def passport_pdf(engine: Engine_, user: User, pathway_id: str) -> Response:
    found = passport.passport(engine, user, pathway_id)
    return attachment(passport.pdf(found), "application/pdf", f"passeport-savoir-etre-{pathway_id}.pdf")


@router.post("/parcours/{pathway_id}/passeport/consentement", dependencies=[Depends(verify_csrf)])
async def passport_consent(request: Request, engine: Engine_, user: User, pathway_id: str) -> Response:
    given = (await request.form()).get("accord") == "oui"
    try:
        passport.record_consent(engine, user, pathway_id, given=given)
    except ServiceError as error:
        flash(request, error.message, "error")
    else:
        flash(
            request,
            "Accord de la personne enregistré : son passeport est partagé avec le groupe de suivi."
            if given
            else "Accord retiré : le passeport n'est plus visible que de la structure référente.",
        )
    return RedirectResponse(f"/parcours/{pathway_id}#passeport", status_code=303)


@router.get("/parcours/{pathway_id}")
def pathway_page(request: Request, engine: Engine_, service: Service, user: User, pathway_id: str) -> Response:
    pathway = _pathway_or_404(engine, pathway_id)
    return render(
        request,
        "caseworker/pathway.html",
        **_pathway_context(request, engine, service, user, pathway),
    )


async def _pathway_action(
    request: Request, engine: Any, service: PathwayService, user: Any, pathway_id: str, action: str
) -> Response:
    """One referent action (module, skip, pause, resume, close): check the form, call the service,
    flash its answer or show the page again with the refusal."""
    pathway = _pathway_or_404(engine, pathway_id)
    context = _pathway_context(request, engine, service, user, pathway)
    form = await request.form()
    request_id = posted_request_id(request, action, form.get("request_id"))
    values = {name: _text(form, name) for name in ("module", "motif", "tache", "sortie", "note")}
    errors: dict[str, str] = {}
    actor = user.actor
    if action == "module" and not values["module"]:
        errors["module"] = "Choisissez le module à ajouter."
    if action == "passer":
        if not values["tache"]:
            errors["tache"] = "Choisissez l'étape à passer."
        elif values["tache"] not in {t.id for t in context["open_tasks"]} and request_id is None:
            # With a form token, the service answers: the first answer when this form was already
            # sent (a retry after a 503), else its refusal (409).
            errors["tache"] = "Cette étape n'est plus ouverte dans ce parcours."
        if not values["motif"]:
            errors["motif"] = "Indiquez pourquoi l'étape est passée (motif partagé avec le groupe de suivi)."
    if action == "clore" and values["sortie"] not in EXIT_REASONS:
        errors["sortie"] = "Choisissez le motif de sortie."
    retry = {**context, "form": {"action": action, **values}, "action_errors": errors}
    if errors:
        return render(
            request,
            "caseworker/pathway.html",
            status_code=422,
            **{**retry, "alert": "L'action n'a pas été enregistrée : corrigez le formulaire."},
        )
    try:
        if action == "module":
            result = await service.add_module(
                pathway_id=pathway.id,
                actor=actor,
                module_id=values["module"],
                reason=values["motif"] or None,
                request_id=request_id,
            )
        elif action == "passer":
            result = await service.skip_step(
                task_id=values["tache"], actor=actor, reason=values["motif"], request_id=request_id
            )
        elif action == "suspendre":
            result = await service.pause(
                pathway_id=pathway.id, actor=actor, reason=values["motif"] or None, request_id=request_id
            )
        elif action == "reprendre":
            result = await service.resume(pathway_id=pathway.id, actor=actor, request_id=request_id)
        else:
            result = await service.close(
                pathway_id=pathway.id,
                actor=actor,
                exit_reason=values["sortie"],
                note=values["note"] or None,
                request_id=request_id,
            )
    except ServiceError as error:
        return render(
            request,
            "caseworker/pathway.html",
            status_code=error.status,
            **{**retry, "alert": error.message},
        )
    flash(request, result.message)
    return _redirect(request, _pathway_or_home(engine, pathway.id, "/parcours"))


REFERENT_ACTIONS = {
    "module": "add_module",
    "passer": "skip_step",
    "suspendre": "pause",
    "reprendre": "resume",
    "clore": "close",
}
"""POST /parcours/{id}/<action> -> the name of its route."""


def _referent_action_route(action: str, name: str) -> None:
    async def route(request: Request, engine: Engine_, service: Service, user: User, pathway_id: str) -> Response:
        return await _pathway_action(request, engine, service, user, pathway_id, action)

    route.__name__ = route.__qualname__ = name
    router.post(f"/parcours/{{pathway_id}}/{action}", dependencies=CSRF, name=name)(route)


for _action, _name in REFERENT_ACTIONS.items():
    _referent_action_route(_action, _name)


@router.post("/parcours/{pathway_id}/notes", dependencies=CSRF)
async def pathway_note(request: Request, engine: Engine_, service: Service, user: User, pathway_id: str) -> Response:
    pathway = _pathway_or_404(engine, pathway_id)
    context = _pathway_context(request, engine, service, user, pathway)
    return await _save_note(
        request,
        service,
        user,
        pathway,
        context,
        "caseworker/pathway.html",
        f"/parcours/{pathway.id}#notes",
    )
