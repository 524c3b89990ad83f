"""Pages of the process designer (concepteur·rice de parcours): the definitions and their versions,
each drawn from its own text, the diff between two versions, publishing a new version (validated
on the spot, errors located at the step and field), status and basins of a version, and trial
runs with short durations. Designers see anonymous counts only, never a person."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import RedirectResponse
from pydantic import StringConstraints
from sqlmodel import select
from starlette.responses import Response

from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, Service, require_roles, verify_csrf
from admin_ui.diagram import (
    KIND_LABELS,
    delay_label,
    escalation_label,
    render_definition_diagram,
    role_label,
)
from admin_ui.pages.gto import parse_when, step_titles
from admin_ui.web import basin_names, flash, organisation_names, render
from definitions.schema import (
    TRIAL_SUFFIX,
    DecisionStep,
    Definition,
    EndStep,
    ParallelStep,
    TaskStep,
    WaitStep,
)
from services import definitions as service_definitions
from services.definitions import SECONDS_PER_WORKING_DAY, STATUSES
from services.errors import ServiceError
from store import models, views
from store import queries as q
from store.db import session_scope

router = APIRouter(include_in_schema=False)
DesignerUser = Annotated[CurrentUser, Depends(require_roles("designer", "admin"))]

STATUS_BADGES = {"experimental": "fr-badge--new", "active": "fr-badge--success", "retired": ""}
MAX_SOURCE = 512 * 1024
NOTIFICATION_KINDS = {
    "task_assigned": "Nouvelle tâche",
    "reminder": "Relance",
    "overdue": "Retard",
    "escalated": "Escalade",
    "escalation_decided": "Décision du GTO",
}


# --- Reading definitions ----------------------------------------------------------------------


def all_versions(engine: Any) -> dict[str, list[models.DefinitionVersion]]:
    return service_definitions.all_versions(engine)


def version_row(engine: Any, definition_id: str, version: int) -> models.DefinitionVersion:
    return service_definitions.version_row(engine, definition_id, version)


def basins_label(basins: list[str], names: dict[str, str]) -> str:
    if "all" in basins:
        return "Tous les bassins"
    return ", ".join(names.get(b, b) for b in basins) or "—"


def user_names(engine: Any) -> dict[str, str]:
    with session_scope(engine) as session:
        return {u.id: u.name for u in session.exec(select(models.User))}


# --- The list -----------------------------------------------------------------------------------


@router.get("/definitions")
def definitions_page(request: Request, engine: Engine_, user: DesignerUser) -> Response:
    names, people = basin_names(engine), user_names(engine)
    items = []
    for definition_id, rows in sorted(all_versions(engine).items()):
        latest = rows[-1]
        items.append(
            {
                "id": definition_id,
                "latest": latest,
                "basins": basins_label(latest.basins, names),
                "versions": [
                    {
                        "row": r,
                        "basins": basins_label(r.basins, names),
                        "by": people.get(r.published_by or "", r.published_by),
                    }
                    for r in reversed(rows)
                ],
                "trial": definition_id.endswith(TRIAL_SUFFIX),
            }
        )
    return render_page(
        request,
        "designer/list.html",
        title="Définitions de parcours",
        nav="definitions",
        items=items,
    )


def render_page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    return render(
        request,
        template,
        status_code=status_code,
        STATUSES=STATUSES,
        STATUS_BADGES=STATUS_BADGES,
        KIND_LABELS=KIND_LABELS,
        **context,
    )


# --- One version: drawing, steps, source ----------------------------------------------------------


def step_rows(definition: Definition) -> list[dict[str, Any]]:
    """The steps as a table (the drawing's text alternative)."""
    rows = []

    def task_row(task: TaskStep, where: str) -> dict[str, Any]:
        nexts = [f"{o.label} → {o.next}" if o.next else o.label for o in task.outcomes]
        if task.skip_to:
            nexts.append(f"si passée → {task.skip_to}")
        return {
            "id": task.id,
            "kind": "task",
            "where": where,
            "title": task.title,
            "who": role_label(task.role),
            "deadline": delay_label(task.deadline) or "—",
            "escalation": escalation_label(definition, task),
            "next": nexts,
        }

    for step in definition.steps:
        if isinstance(step, TaskStep):
            rows.append(task_row(step, "parcours"))
            continue
        row: dict[str, Any] = {
            "id": step.id,
            "kind": step.kind,
            "where": "parcours",
            "title": step.title,
            "who": "—",
            "deadline": "—",
            "escalation": "",
            "next": [],
        }
        if isinstance(step, ParallelStep):
            row["next"] = [f"→ {step.next}"]
            row["who"] = "toutes les branches" if step.completion == "all" else "la première branche"
            rows.append(row)
            rows.extend(task_row(b, f"branche de {step.id}") for b in step.branches)
            continue
        if isinstance(step, DecisionStep):
            row["who"] = f"selon {step.based_on}"
            row["next"] = [f"{c.when} → {c.next}" for c in step.cases] + (
                [f"sinon → {step.default}"] if step.default else []
            )
        elif isinstance(step, WaitStep):
            row["deadline"] = delay_label(step.duration)
            row["next"] = [f"→ {step.next}"]
        elif isinstance(step, EndStep):
            row["who"] = step.exit_reason
        rows.append(row)
    for module in definition.modules:
        rows.extend(task_row(t, f"module {module.id}") for t in module.steps)
    return rows


def counts_of(engine: Any, definition_id: str) -> dict[str, dict[str, Any]]:
    return {e["step_id"]: e for e in views.step_counts(engine, definition_id=definition_id)}


@router.get("/definitions/{definition_id}/v/{version}")
def version_page(request: Request, engine: Engine_, user: DesignerUser, definition_id: str, version: int) -> Response:
    row = version_row(engine, definition_id, version)
    return _version_page(request, engine, row, status_values={"status": row.status, "basins": row.basins})


def _version_page(
    request: Request,
    engine: Any,
    row: models.DefinitionVersion,
    *,
    status_values: dict[str, Any],
    status_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The page of one version, with the status form showing `status_values` (and its errors)."""
    definition = Definition.model_validate(row.body)
    names = basin_names(engine)
    rows = all_versions(engine).get(row.id, [])
    counts = counts_of(engine, row.id)
    trial_basins = [(b, n) for b, n in names.items() if definition.runs_in(b)]
    return render_page(
        request,
        "designer/definition.html",
        status_code=status_code,
        title=f"{definition.title} — version {row.version}",
        nav="definitions",
        row=row,
        definition=definition,
        svg=render_definition_diagram(definition, counts=counts, dom_id="schema"),
        steps=step_rows(definition),
        counts=counts,
        total_open=sum(e["total"] for e in counts.values()),
        basins=basins_label(row.basins, names),
        basin_names=names,
        versions=list(reversed(rows)),
        published_by=user_names(engine).get(row.published_by or "", row.published_by),
        trial_basins=trial_basins,
        is_trial=row.id.endswith(TRIAL_SUFFIX),
        status_errors=status_errors or {},
        status_values=status_values,
    )


# --- Diff -----------------------------------------------------------------------------------------


def _index(definition: Definition) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every step (main flow, branches, module steps) and module by id -> (where, content)."""
    items: dict[str, tuple[str, dict[str, Any]]] = {}
    for step in definition.steps:
        items[step.id] = ("étape", step.model_dump(mode="json"))
        if isinstance(step, ParallelStep):
            for branch in step.branches:
                items[branch.id] = (f"branche de {step.id}", branch.model_dump(mode="json"))
    for module in definition.modules:
        items[f"module {module.id}"] = ("module", module.model_dump(mode="json", exclude={"steps"}))
        for task in module.steps:
            items[task.id] = (f"module {module.id}", task.model_dump(mode="json"))
    return items


def diff_summary(old: Definition, new: Definition) -> dict[str, Any]:
    before, after = _index(old), _index(new)
    changed = []
    for key in before.keys() & after.keys():
        a, b = before[key][1], after[key][1]
        if a != b:
            if isinstance(a.get("branches"), list):  # branches are compared on their own
                a = {k: v for k, v in a.items() if k != "branches"} | {"branches": [x["id"] for x in a["branches"]]}
                b = {k: v for k, v in b.items() if k != "branches"} | {"branches": [x["id"] for x in b["branches"]]}
                if a == b:
                    continue
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            changed.append(
                {
                    "id": key,
                    "where": after[key][0],
                    "fields": fields,
                    "title": (a.get("title"), b.get("title")) if a.get("title") != b.get("title") else None,
                }
            )
    top = []
    labels = {
        "title": "Titre",
        "description": "Description",
        "status": "Statut",
        "basins": "Bassins",
        "publics": "Publics",
        "start": "Début",
        "escalation": "Chaîne d'escalade par défaut",
    }
    a_top, b_top = old.model_dump(mode="json"), new.model_dump(mode="json")
    for key, label in labels.items():
        if a_top.get(key) != b_top.get(key):
            top.append(
                {
                    "label": label,
                    "old": _short_value(a_top.get(key)),
                    "new": _short_value(b_top.get(key)),
                }
            )
    return {
        "added": [{"id": k, "where": after[k][0], "title": after[k][1].get("title")} for k in after if k not in before],
        "removed": [
            {"id": k, "where": before[k][0], "title": before[k][1].get("title")} for k in before if k not in after
        ],
        "changed": sorted(changed, key=lambda c: list(after).index(c["id"])),
        "top": top,
    }


def _short_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(_short_value(v) for v in value) or "—"
    if isinstance(value, dict):
        return yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, sort_keys=False).strip()
    return str(value)


def diff_lines(old: str, new: str, old_label: str, new_label: str) -> list[dict[str, str]]:
    lines = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append({"kind": kind, "text": line})
    return lines


@router.get("/definitions/{definition_id}/diff")
def diff_page(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    definition_id: str,
    from_version: Annotated[int | None, Query(alias="from")] = None,
    to_version: Annotated[int | None, Query(alias="to")] = None,
) -> Response:
    rows = all_versions(engine).get(definition_id)
    if not rows:
        raise HTTPException(404, f"Définition inconnue : « {definition_id} ».")
    by_version = {r.version: r for r in rows}
    to_version = to_version or rows[-1].version
    from_version = from_version or max(1, to_version - 1)
    if from_version not in by_version or to_version not in by_version:
        raise HTTPException(404, f"Versions {from_version} ou {to_version} de « {definition_id} » introuvables.")
    old, new = by_version[from_version], by_version[to_version]
    return render_page(
        request,
        "designer/diff.html",
        title=f"Comparer les versions — {new.title}",
        nav="definitions",
        definition_id=definition_id,
        versions=rows,
        old=old,
        new=new,
        summary=diff_summary(Definition.model_validate(old.body), Definition.model_validate(new.body)),
        lines=diff_lines(old.source, new.source, f"version {old.version}", f"version {new.version}"),
    )


# --- Publishing: validate on the spot, then publish -----------------------------------------------


@dataclass
class Checked:
    """The outcome of validating a pasted or uploaded definition."""

    source: str
    definition: Definition | None
    errors: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    latest: models.DefinitionVersion | None = None
    unchanged: bool = False


def check_source(engine: Any, source: str) -> Checked:
    """The validation report: errors come from the loader in French, with their step, field and line."""
    if not source.strip():
        return _read_error(source, "Collez le texte YAML de la définition ou choisissez un fichier.")
    checked = service_definitions.check(engine, source, source="définition")
    if checked.definition is None:
        errors: list[dict[str, Any]] = [
            {"step": e.step, "field": e.field, "message": e.message, "line": e.line} for e in checked.errors
        ]
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for item in errors:
            groups.setdefault(item["step"], []).append(item)
        marked: dict[int, list[str]] = {}
        for item in errors:
            if item["line"]:
                where = f"champ {item['field']} : " if item["field"] else ""
                marked.setdefault(item["line"], []).append(where + item["message"])
        numbered = [
            {"n": i + 1, "text": text, "messages": marked.get(i + 1, [])} for i, text in enumerate(source.splitlines())
        ]
        return Checked(source, None, errors, [{"step": k, "errors": v} for k, v in groups.items()], numbered)
    return Checked(source, checked.definition, [], [], [], checked.latest, checked.unchanged)


async def read_source(source: str, fichier: UploadFile | None) -> tuple[str, str | None]:
    """The text to check: the uploaded file if any, else the pasted text."""
    if fichier is not None and fichier.filename:
        data = await fichier.read(MAX_SOURCE + 1)
        if len(data) > MAX_SOURCE:
            return (
                "",
                "Le fichier dépasse 512 Ko : une définition tient en quelques centaines de lignes.",
            )
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            return (
                "",
                "Le fichier n'est pas un texte UTF-8 : enregistrez-le en UTF-8 et recommencez.",
            )
    if len(source) > MAX_SOURCE:
        return "", "Le texte dépasse 512 Ko."
    return source, None


async def _check_form(engine: Any, source: str, fichier: UploadFile | None) -> tuple[str, Checked]:
    """The posted text (uploaded file or pasted text) and its validation report."""
    text, problem = await read_source(source, fichier)
    return text, _read_error(text, problem) if problem else check_source(engine, text)


def _read_error(source: str, message: str) -> Checked:
    return Checked(
        source,
        None,
        [{"step": None, "field": None, "message": message, "line": None}],
        [{"step": None, "errors": [{"field": None, "message": message, "line": None}]}],
        [],
    )


@router.get("/definitions/nouvelle")
def new_page(request: Request, engine: Engine_, user: DesignerUser, depuis: str | None = None) -> Response:
    source = ""
    if depuis:  # start from the latest version of an existing definition
        rows = all_versions(engine).get(depuis)
        source = rows[-1].source if rows else ""
    return render_page(
        request,
        "designer/new.html",
        title="Publier une définition",
        nav="new_definition",
        source=source,
        checked=None,
    )


@router.post("/definitions/valider", dependencies=[Depends(verify_csrf)])
async def validate(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    source: Annotated[str, Form(max_length=500_000)] = "",
    fichier: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """htmx: the validation report as a fragment."""
    text, checked = await _check_form(engine, source, fichier)
    return render_page(request, "designer/_validation.html", checked=checked)


@router.post("/definitions/nouvelle", dependencies=[Depends(verify_csrf)])
async def publish(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    source: Annotated[str, Form(max_length=500_000)] = "",
    fichier: Annotated[UploadFile | None, File()] = None,
) -> Response:
    text, checked = await _check_form(engine, source, fichier)
    if checked.definition is None:
        return render_page(
            request,
            "designer/new.html",
            status_code=422,
            title="Publier une définition",
            nav="new_definition",
            source=text or source,
            checked=checked,
        )
    published = service_definitions.publish_definition(engine, user.actor, checked.definition, text)
    version, created = published.version, published.created
    if created:
        message = f"Version {version} de « {checked.definition.title} » publiée."
    else:
        message = f"Contenu identique à la version {version} déjà publiée : aucune nouvelle version n'a été créée."
    flash(request, message, "success" if created else "info")
    return RedirectResponse(f"/definitions/{checked.definition.id}/v/{version}", status_code=303)


# --- Status and basins of a version ---------------------------------------------------------------


@router.post("/definitions/{definition_id}/v/{version}/statut", dependencies=[Depends(verify_csrf)])
def set_status(
    request: Request,
    engine: Engine_,
    user: DesignerUser,
    definition_id: str,
    version: int,
    status: Annotated[str, Form(max_length=20)] = "",
    basins: Annotated[list[Annotated[str, StringConstraints(max_length=100)]] | None, Form(max_length=200)] = None,
) -> Response:
    row = version_row(engine, definition_id, version)
    names = basin_names(engine)
    try:
        chosen = service_definitions.set_status(
            engine, user.actor, definition_id, version, status=status, basins=basins or []
        )
    except ServiceError as refused:
        if not refused.fields:
            raise
        return _version_page(
            request,
            engine,
            row,
            status_code=422,
            status_errors=refused.fields,
            status_values={"status": status, "basins": [b for b in basins or [] if b]},
        )
    flash(
        request,
        f"Version {version} : statut « {STATUSES[status].lower()} », {basins_label(chosen, names).lower()}.",
    )
    return RedirectResponse(f"/definitions/{definition_id}/v/{version}", status_code=303)


# --- Trial runs with short durations --------------------------------------------------------------


@router.post("/definitions/{definition_id}/v/{version}/essai", dependencies=[Depends(verify_csrf)])
async def start_trial(
    request: Request,
    engine: Engine_,
    service: Service,
    user: DesignerUser,
    definition_id: str,
    version: int,
    basin: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    back = RedirectResponse(f"/definitions/{definition_id}/v/{version}#essai", status_code=303)
    try:
        started = await service_definitions.start_trial(
            engine, service, user.actor, definition_id, version, basin=basin
        )
    except ServiceError as error:
        if error.kind == "not_found":
            raise
        flash(request, error.message, "error")
        return back
    pathway_id, trial, trial_version = started.pathway_id, started.definition, started.version
    flash(
        request,
        f"Essai {pathway_id} démarré sur « {trial.title} » (version {trial_version}) : "
        f"1 jour ouvré y dure {SECONDS_PER_WORKING_DAY} secondes.",
    )
    return RedirectResponse(f"/definitions/essais/{pathway_id}", status_code=303)


@router.get("/definitions/essais/{pathway_id}")
def trial_page(request: Request, engine: Engine_, user: DesignerUser, pathway_id: str) -> Response:
    detail = q.pathway_detail(engine, pathway_id=pathway_id)
    if detail is None or not detail["pathway"]["definition_id"].endswith(TRIAL_SUFFIX):
        raise HTTPException(404, f"Aucun parcours d'essai « {pathway_id} ».")
    pathway = detail["pathway"]
    row = version_row(engine, pathway["definition_id"], pathway["definition_version"])
    definition = Definition.model_validate(row.body)
    titles = step_titles(definition)
    orgs = organisation_names(engine)
    tasks = [
        {
            **t,
            "org": orgs.get(t["organisation_id"], t["organisation_id"]),
            "due_at": parse_when(t["due_at"]),
            "opened_at": parse_when(t["opened_at"]),
            "closed_at": parse_when(t["closed_at"]),
        }
        for t in detail["tasks"]
    ]
    counts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task["status"] == "open":
            entry = counts.setdefault(
                task["step_id"],
                {"total": 0, "on_time": 0, "due_soon": 0, "overdue": 0, "escalated": 0},
            )
            entry["total"] += 1
            entry[task["sla"] or "on_time"] += 1
    emails = [
        {
            "at": n.created_at,
            "kind": NOTIFICATION_KINDS.get(n.kind, n.kind),
            "subject": n.subject,
            "to": ", ".join(n.recipients),
            "status": n.status,
            "body": n.body,
        }
        for n in q.list_notifications(engine, pathway_id=pathway_id)
    ]
    context = {
        "pathway": {
            **pathway,
            "started_at": parse_when(pathway["started_at"]),
            "closed_at": parse_when(pathway["closed_at"]),
        },
        "definition": definition,
        "row": row,
        "current": [titles.get(s, s) for s in pathway["current_steps"]],
        "steps": [
            {**s, "opened_at": parse_when(s["opened_at"]), "closed_at": parse_when(s["closed_at"])}
            for s in detail["steps"]
        ],
        "tasks": tasks,
        "emails": emails,
        "escalations": detail["escalations"],
        "svg": render_definition_diagram(definition, counts=counts, dom_id="essai-schema"),
        "source_id": definition.id.removesuffix(TRIAL_SUFFIX),
    }
    if request.headers.get("hx-request"):
        return render_page(request, "designer/_trial_live.html", **context)
    return render_page(request, "designer/trial.html", title=f"Essai {pathway_id}", nav="definitions", **context)
