"""Pages of the GTO lead (animateur·rice du Groupe Territorialisé Opérationnel): the basin's
dashboard (stuck pathways, heat map of where pathways wait, trends), the escalations, the
decision on one escalation (like an EP: case file in, decision out) and the meeting agenda.

Need-to-know: person names appear only on stuck pathways of the lead's own basin, and every
such view is traced; the agenda and its CSV export carry no personal data."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlmodel import col, select
from starlette.responses import Response

from admin_ui.access import (
    CurrentUser,
    access_reason,
    record_views,
)
from admin_ui.deps import Engine_, Service, require_roles, verify_csrf
from admin_ui.diagram import count_sentence, render_definition_diagram, worst_sla
from admin_ui.web import (
    attachment,
    flash,
    fr_date,
    fr_datetime,
    organisation_names,
    posted_request_id,
    render,
    waited_label,
)
from definitions.durations import PARIS, Delay
from definitions.schema import EXIT_REASONS, Definition, ParallelStep
from parcours.presenters import AUDIT_LABELS, GTO_ACTIONS, csv_cell
from services import exchanges, reading
from services.errors import ServiceError
from store import models, views
from store import queries as q
from store.db import session_scope

router = APIRouter(include_in_schema=False)
GtoLead = Annotated[CurrentUser, Depends(require_roles("gto_lead"))]
Decider = Annotated[CurrentUser, Depends(require_roles("gto_lead", "direction"))]

DECISIONS = {action: gto.label for action, gto in GTO_ACTIONS.items()}
ACTIONS = {action: gto.done for action, gto in GTO_ACTIONS.items()}
LEVELS = {1: "Niveau 1 — GTO du bassin", 2: "Niveau 2 — direction du SPIE"}
TIMELINE_ACTIONS = set(AUDIT_LABELS) - {"personal_data_viewed", "signed_in", "definition_published"}
TREND_WEEKS = 8


# --- Lookups shared by the pages -------------------------------------------------------------


@dataclass
class Lookup:
    """Names for ids (organisations, definitions, steps), cached for one request."""

    engine: Any
    orgs: dict[str, str] = field(default_factory=dict)
    _definitions: dict[tuple[str, int | None], Definition | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.orgs = organisation_names(self.engine)

    def org(self, org_id: str | None) -> str:
        return self.orgs.get(org_id or "", org_id or "—")

    def definition(self, definition_id: str, version: int | None = None) -> Definition | None:
        key = (definition_id, version)
        if key not in self._definitions:
            if version is None:
                self._definitions[key] = q.latest_definition(self.engine, definition_id=definition_id)
            else:
                with session_scope(self.engine) as session:
                    row = session.get(models.DefinitionVersion, (definition_id, version))
                self._definitions[key] = Definition.model_validate(row.body) if row else None
        return self._definitions[key]

    def step_title(self, definition: Definition | None, step_id: str) -> str:
        return step_titles(definition).get(step_id, step_id) if definition else step_id


def parse_when(value: Any) -> datetime | None:
    """Dates from pathway_detail() come as ISO strings."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def with_dates(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{**row, **{k: parse_when(row.get(k)) for k in keys}} for row in rows]


def step_titles(definition: Definition) -> dict[str, str]:
    titles = {}
    for step in definition.steps:
        titles[step.id] = step.title
        if isinstance(step, ParallelStep):
            titles.update({b.id: b.title for b in step.branches})
    for module in definition.modules:
        titles.update({t.id: t.title for t in module.steps})
    return titles


def basin_of(engine: Any, user: CurrentUser) -> models.Basin:
    basin = q.get_basin(engine, basin_id=user.basin_id) if user.basin_id else None
    if basin is None:
        raise HTTPException(
            403,
            "Votre compte n'est rattaché à aucun bassin : demandez à l'administrateur de le faire.",
        )
    return basin


def person_names(engine: Any, user: CurrentUser, pathways: list[models.Pathway], what: str) -> dict[str, str]:
    """The persons' names this lead may see (stuck pathways of the basin), each view traced; one
    query for the persons and one transaction for the audit, whatever the page size."""
    reasons = {p.id: reason for p in pathways if (reason := access_reason(engine, user, p)) is not None}
    allowed = [p for p in pathways if p.id in reasons]
    if not allowed:
        return {}
    with session_scope(engine) as session:
        persons = {
            person.id: person
            for person in session.exec(
                select(models.Person).where(col(models.Person.id).in_([p.person_id for p in allowed]))
            )
        }
    names: dict[str, str] = {}
    for pathway in allowed:
        person = persons.get(pathway.person_id)
        if person is not None:
            names[pathway.id] = (
                "Personne anonymisée" if person.anonymised_at else f"{person.first_name} {person.last_name}"
            )
    record_views(engine, user, [(pid, what, reasons[pid]) for pid in names])
    return names


def person_name(engine: Any, user: CurrentUser, pathway: models.Pathway, what: str) -> str | None:
    return person_names(engine, user, [pathway], what).get(pathway.id)


def open_escalations_by_pathway(engine: Any, pathway_ids: list[str]) -> dict[str, list[str]]:
    """The open escalations' ids of each pathway (the dashboard links to the escalation itself)."""
    found: dict[str, list[str]] = {}
    if not pathway_ids:
        return found
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.Escalation.pathway_id, models.Escalation.id)
            .where(
                col(models.Escalation.pathway_id).in_(pathway_ids),
                models.Escalation.status == "open",
            )
            .order_by(col(models.Escalation.opened_at))
        ).all()
    for pathway_id, escalation_id in rows:
        found.setdefault(pathway_id, []).append(escalation_id)
    return found


# --- Dashboard ---------------------------------------------------------------------------------


@router.get("/gto")
def dashboard(request: Request, engine: Engine_, user: GtoLead, page: int = 1) -> Response:
    basin = basin_of(engine, user)
    lookup = Lookup(engine)
    now = q.now()
    stuck = reading.pathways(engine, user, basin_id=basin.id, stuck=True, page=page)
    names = person_names(engine, user, stuck.items, "tableau de bord GTO (nom de la personne)")
    rows = [{**row, "person": names.get(row["pathway"].id)} for row in stuck_rows(engine, stuck.items, lookup)]
    open_escalations = views.escalation_list(engine, basin_id=basin.id, status="open", size=1).total
    step_counts = views.step_counts(engine, basin_id=basin.id)
    open_tasks_total = sum(entry["total"] for entry in step_counts)  # the heat map's counts, summed
    return render(
        request,
        "gto/dashboard.html",
        title=f"Tableau de bord — {basin.name}",
        nav="gto",
        basin=basin,
        stuck=stuck,
        rows=rows,
        open_escalations=open_escalations,
        open_tasks_total=open_tasks_total,
        heatmaps=heatmaps(step_counts, lookup),
        trends=trends(engine, basin.id, now),
    )


def stuck_rows(engine: Any, pathways: list[models.Pathway], lookup: Lookup) -> list[dict[str, Any]]:
    """Stuck pathways as the dashboard and the agenda show them: where each waits, on whom, since
    when, why, and its open escalations (no personal data)."""
    tasks = views.open_tasks_by_pathway(engine, pathway_ids=[p.id for p in pathways])
    escalated = open_escalations_by_pathway(engine, [p.id for p in pathways])
    rows = []
    for pathway in pathways:
        definition = lookup.definition(pathway.definition_id, pathway.definition_version)
        rows.append(
            {
                "pathway": pathway,
                "definition": definition.title if definition else pathway.definition_id,
                "steps": [lookup.step_title(definition, s) for s in pathway.current_steps],
                "partners": sorted({lookup.org(t.organisation_id) for t in tasks.get(pathway.id, [])}),
                "since": pathway.stuck_since or pathway.last_progress_at,
                "reason": "en retard" if pathway.stuck_since else "sans avancée",
                "escalations": len(escalated.get(pathway.id, [])),
                "escalation_ids": escalated.get(pathway.id, []),
            }
        )
    return rows


def heatmaps(step_counts: list[dict[str, Any]], lookup: Lookup) -> list[dict[str, Any]]:
    """One diagram per definition with open tasks in the basin (laid out by ELK in the browser),
    each step showing its count (`views.step_counts`) and coloured by its worst deadline status."""
    by_definition: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in step_counts:
        by_definition.setdefault(entry["definition_id"], {})[entry["step_id"]] = entry
    maps = []
    for definition_id, counts in sorted(by_definition.items()):
        definition = lookup.definition(definition_id)
        if definition is None:
            continue
        titles = step_titles(definition)
        table = [
            {
                "step_id": sid,
                "title": titles.get(sid, sid),
                "entry": entry,
                "sla": worst_sla(entry),
                "sentence": count_sentence(entry),
            }
            for sid, entry in sorted(counts.items(), key=lambda kv: -kv[1]["total"])
        ]
        maps.append(
            {
                "id": definition_id,
                "title": definition.title,
                "total": sum(e["total"] for e in counts.values()),
                "svg": render_definition_diagram(definition, counts=counts, dom_id=f"carte-{definition_id}"),
                "table": table,
            }
        )
    return maps


def trends(engine: Any, basin_id: str, now: datetime) -> dict[str, Any]:
    """Pathways started / closed and escalations opened per week, the last TREND_WEEKS weeks."""
    today = now.astimezone(PARIS).date()
    first = today - timedelta(days=today.weekday() + 7 * (TREND_WEEKS - 1))
    starts = [first + timedelta(days=7 * i) for i in range(TREND_WEEKS + 1)]
    bounds = [datetime.combine(day, datetime.min.time(), tzinfo=PARIS) for day in starts]  # Mondays, Paris time
    counts = views.basin_week_counts(engine, basin_id=basin_id, bounds=bounds)
    weeks: list[dict[str, Any]] = [
        {"start": starts[i], **{kind: counts[kind][i] for kind in ("started", "closed", "escalated")}}
        for i in range(TREND_WEEKS)
    ]
    for week in weeks:
        week["label"] = "sem. du " + fr_date(datetime.combine(week["start"], datetime.min.time(), tzinfo=PARIS))
    peak: int = max([1] + [w[k] for w in weeks for k in ("started", "closed", "escalated")])
    return {
        "weeks": weeks,
        "svg": trend_svg(weeks, peak),
        "total": {k: sum(w[k] for w in weeks) for k in ("started", "closed", "escalated")},
    }


def trend_svg(weeks: list[dict[str, Any]], peak: int) -> str:
    """Grouped bars (started, closed, escalated) per week; the table next to it carries the data."""
    from html import escape

    colours = {"started": "#000091", "closed": "#18753c", "escalated": "#ce0500"}
    bar, gap, group_gap, chart_h, top = 12, 2, 22, 120, 14
    group_w = 3 * bar + 2 * gap
    width = 40 + len(weeks) * (group_w + group_gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {chart_h + top + 40}" '
        f'width="{width}" '
        f'height="{chart_h + top + 40}" role="img" aria-labelledby="tendances-titre" '
        'font-family="Marianne, Arial, sans-serif" font-size="11" class="parcours-svg">',
        '<title id="tendances-titre">Parcours démarrés, clos et escalades par semaine</title>',
        f'<line x1="30" y1="{top + chart_h}" x2="{width}" y2="{top + chart_h}" stroke="#929292"/>',
        f'<text x="26" y="{top + 4}" text-anchor="end" fill="#666">{peak}</text>',
        f'<text x="26" y="{top + chart_h}" text-anchor="end" fill="#666">0</text>',
    ]
    for i, week in enumerate(weeks):
        x0 = 40 + i * (group_w + group_gap)
        for j, kind in enumerate(("started", "closed", "escalated")):
            value = week[kind]
            h = chart_h * value / peak
            x = x0 + j * (bar + gap)
            parts.append(
                f'<rect x="{x}" y="{top + chart_h - h:.1f}" width="{bar}" height="{h:.1f}" '
                f'fill="{colours[kind]}">'
                f"<title>{escape(week['label'])} : {value}</title></rect>"
            )
        day = week["start"]
        parts.append(
            f'<text x="{x0 + group_w / 2}" y="{top + chart_h + 16}" text-anchor="middle" '
            'fill="#3a3a3a">'
            f"{day.day:02d}/{day.month:02d}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


# --- Escalations --------------------------------------------------------------------------------


def escalation_rows(engine: Any, escalations: list[models.Escalation], lookup: Lookup) -> list[dict[str, Any]]:
    tasks = views.tasks_by_id(engine, task_ids=[e.task_id for e in escalations])
    pathways: dict[str, models.Pathway | None] = {}
    rows = []
    for escalation in escalations:
        if escalation.pathway_id not in pathways:
            pathways[escalation.pathway_id] = q.get_pathway(engine, pathway_id=escalation.pathway_id)
        pathway = pathways[escalation.pathway_id]
        task = tasks.get(escalation.task_id)
        definition = lookup.definition(pathway.definition_id, pathway.definition_version) if pathway else None
        rows.append(
            {
                "escalation": escalation,
                "pathway": pathway,
                "task": task,
                "definition": definition.title if definition else (pathway.definition_id if pathway else "—"),
                "step": task.title if task else lookup.step_title(definition, escalation.step_id),
                "partner": lookup.org(task.organisation_id if task else None),
                "waiting_since": task.opened_at if task else escalation.opened_at,
                "due_at": task.due_at if task else None,
                "level": LEVELS.get(escalation.level, f"Niveau {escalation.level}"),
            }
        )
    return rows


@router.get("/gto/escalades")
def escalations_page(request: Request, engine: Engine_, user: GtoLead, statut: str = "open", page: int = 1) -> Response:
    basin = basin_of(engine, user)
    status = statut if statut in ("open", "decided", "resolved", "all") else "open"
    listing = reading.escalations(
        engine, user, basin_id=basin.id, status=None if status == "all" else status, page=page
    )
    return render(
        request,
        "gto/escalations.html",
        title=f"Escalades — {basin.name}",
        nav="escalations",
        basin=basin,
        listing=listing,
        rows=escalation_rows(engine, listing.items, Lookup(engine)),
        status=status,
        filters=[
            ("open", "À décider"),
            ("decided", "Décidées"),
            ("resolved", "Résolues"),
            ("all", "Toutes"),
        ],
    )


def _escalation_of_basin(engine: Any, user: CurrentUser, escalation_id: str) -> tuple[models.Basin, models.Escalation]:
    """The escalation and its basin: the GTO lead's own, or for the direction (level 2) the escalation's."""
    if user.role == "direction":
        escalation = reading.escalation_for(engine, user, escalation_id)
        basin = q.get_basin(engine, basin_id=escalation.basin_id)
        if basin is None:
            raise HTTPException(404, f"Bassin inconnu : {escalation.basin_id}.")
        return basin, escalation
    basin = basin_of(engine, user)
    return basin, reading.escalation_for(engine, user, escalation_id)


def _escalation_page(
    request: Request,
    engine: Any,
    user: CurrentUser,
    basin: models.Basin,
    escalation: models.Escalation,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    lookup = Lookup(engine)
    detail = q.pathway_detail(engine, pathway_id=escalation.pathway_id)
    if detail is None:
        raise HTTPException(404, "Le parcours de cette escalade est introuvable.")
    pathway = q.get_pathway(engine, pathway_id=escalation.pathway_id)
    assert pathway is not None
    definition = lookup.definition(pathway.definition_id, pathway.definition_version)
    task = q.get_task(engine, task_id=escalation.task_id)
    name = person_name(engine, user, pathway, "page d'escalade GTO (nom de la personne)")
    decidable = (
        escalation.status == "open" and pathway.status != "closed" and task is not None and task.status == "open"
    )
    serving = [
        o
        for o in q.list_organisations(engine)
        if (basin.id in o.basins or "all" in o.basins) and (task is None or o.id != task.organisation_id)
    ]
    decided_by = None
    if escalation.decided_by:
        with session_scope(engine) as session:
            decider = session.get(models.User, escalation.decided_by)
            decided_by = decider.name if decider else escalation.decided_by
    others = [e for e in q.list_escalations(engine, pathway_id=pathway.id, status=None) if e.id != escalation.id]
    return render(
        request,
        "gto/escalation.html",
        status_code=status_code,
        title=f"Escalade — parcours {pathway.id}",
        nav="escalations",
        basin=basin,
        escalation=escalation,
        pathway=pathway,
        task=task,
        definition=definition,
        definition_title=definition.title if definition else pathway.definition_id,
        step_title=task.title if task else lookup.step_title(definition, escalation.step_id),
        partner=lookup.org(task.organisation_id if task else None),
        referent=lookup.org(pathway.referent_org),
        current_steps=[lookup.step_title(definition, s) for s in pathway.current_steps],
        person=name,
        timeline=timeline(engine, detail, definition, lookup, with_notes=name is not None),
        steps=with_dates(detail["steps"], "opened_at", "closed_at"),
        follow_up=[
            {"name": lookup.org(m["organisation_id"]), **m} for m in with_dates(detail["follow_up"], "since", "until")
        ],
        decidable=decidable,
        decisions=DECISIONS,
        organisations=sorted(serving, key=lambda o: o.name),
        modules=definition.modules if definition else [],
        level=LEVELS.get(escalation.level, str(escalation.level)),
        action_label=ACTIONS.get(escalation.action or "", escalation.action),
        decided_by=decided_by,
        others=others,
        errors=errors or {},
        values=values or {},
        alert=alert,
        lookup=lookup,
    )


def timeline(
    engine: Any,
    detail: dict[str, Any],
    definition: Definition | None,
    lookup: Lookup,
    *,
    with_notes: bool,
) -> list[dict[str, Any]]:
    """The pathway's history, in French, from its audit trail (views of personal data left out)."""
    titles = {row["id"]: row["title"] for row in detail["steps"]}
    titles.update({row["id"]: row["title"] for row in detail["tasks"]})
    outcomes: dict[str, str] = {}
    modules: dict[str, str] = {}
    if definition is not None:
        outcomes = {o.id: o.label for t in definition.all_tasks() for o in t.outcomes}
        modules = {m.id: m.title for m in definition.modules}
    notes: dict[str, str] = {}
    if with_notes:
        note_ids = [e["detail"].get("note_id") for e in detail["audit"] if e["detail"].get("note_id")]
        if note_ids:
            from sqlmodel import col, select

            with session_scope(engine) as session:
                notes = {
                    n.id: n.text for n in session.exec(select(models.Note).where(col(models.Note.id).in_(note_ids)))
                }
    entries = []
    for event in detail["audit"]:
        if event["action"] not in TIMELINE_ACTIONS:
            continue
        info = event["detail"]
        parts = []
        if event.get("task_id"):
            parts.append(f"« {titles.get(event['task_id'], event['task_id'])} »")
        if "outcome" in info:
            parts.append("issue : " + outcomes.get(info["outcome"], info["outcome"]))
        if "from" in info and "to" in info and event["action"] == "task_reassigned":
            parts.append(f"de {lookup.org(info['from'])} à {lookup.org(info['to'])}")
        if event["action"] == "escalated":
            parts.append(
                "niveau " + info.get("level", "?") + (" (GTO)" if info.get("to") == "gto" else " (direction du SPIE)")
            )
        if "action" in info:
            parts.append(ACTIONS.get(info["action"], info["action"]))
        if "module" in info:
            parts.append("module " + modules.get(info["module"], info["module"]))
        if "exit_reason" in info:
            parts.append("motif : " + EXIT_REASONS.get(info["exit_reason"], info["exit_reason"]))
        if "reminder" in info:
            parts.append("relance n° " + info["reminder"])
        actor_org = event["actor_org_id"]
        entries.append(
            {
                "at": parse_when(event["at"]),
                "label": AUDIT_LABELS[event["action"]],
                "text": " · ".join(parts),
                "by": "automatique" if actor_org == "system" else lookup.org(actor_org),
                "note": notes.get(info.get("note_id", "")),
                "kind": "is-done"
                if event["action"] in ("task_completed", "pathway_closed", "escalation_decided")
                else ("is-open" if event["action"] in ("escalated", "task_overdue") else ""),
            }
        )
    return entries


@router.get("/gto/escalades/{escalation_id}")
def escalation_page(request: Request, engine: Engine_, user: Decider, escalation_id: str) -> Response:
    basin, escalation = _escalation_of_basin(engine, user, escalation_id)
    return _escalation_page(request, engine, user, basin, escalation)


@router.post("/gto/escalades/{escalation_id}", dependencies=[Depends(verify_csrf)])
async def decide(
    request: Request,
    engine: Engine_,
    service: Service,
    user: Decider,
    escalation_id: str,
    action: Annotated[str, Form(max_length=40)] = "",
    organisation_id: Annotated[str, Form(max_length=100)] = "",
    extend_by: Annotated[str, Form(max_length=100)] = "",
    module_id: Annotated[str, Form(max_length=100)] = "",
    exit_reason: Annotated[str, Form(max_length=100)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    request_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    basin, escalation = _escalation_of_basin(engine, user, escalation_id)
    token = posted_request_id(request, "decision", request_id)
    values = {
        "action": action,
        "organisation_id": organisation_id,
        "extend_by": extend_by.strip(),
        "module_id": module_id,
        "exit_reason": exit_reason,
        "note": note,
    }
    errors: dict[str, str] = {}
    if action not in DECISIONS:
        errors["action"] = "Choisissez une décision."
    elif action == "reassign" and not organisation_id:
        errors["organisation_id"] = "Choisissez l'organisation à qui confier la tâche."
    elif action == "extend":
        if not values["extend_by"]:
            errors["extend_by"] = "Indiquez la prolongation, par exemple « 5 jours ouvrés »."
        else:
            try:
                Delay.model_validate(values["extend_by"])
            except ValueError:
                errors["extend_by"] = (
                    f"« {values['extend_by']} » n'est pas un délai : "
                    "écrivez par exemple « 5 jours ouvrés » "
                    "ou une durée ISO 8601 comme « PT1H »."
                )
    elif action == "add_step" and not module_id:
        errors["module_id"] = "Choisissez le module à ajouter au parcours."
    elif action == "close" and exit_reason not in EXIT_REASONS:
        errors["exit_reason"] = "Choisissez le motif de sortie."
    if errors:
        return _escalation_page(
            request,
            engine,
            user,
            basin,
            escalation,
            errors=errors,
            values=values,
            alert="La décision n'est pas complète : corrigez les champs signalés.",
            status_code=422,
        )
    try:
        await service.decide_escalation(
            escalation_id=escalation.id,
            actor=user.actor,
            action=action,
            note=note or None,
            organisation_id=organisation_id if action == "reassign" else None,
            extend_by=values["extend_by"] if action == "extend" else None,
            module_id=module_id if action == "add_step" else None,
            exit_reason=exit_reason if action == "close" else None,
            escalation=escalation,
            request_id=token,
        )
    except ServiceError as error:
        field_of = {
            "reassign": "organisation_id",
            "extend": "extend_by",
            "add_step": "module_id",
            "close": "exit_reason",
        }
        fields = dict(error.fields)
        if error.kind == "invalid" and action in field_of:
            fields.setdefault(field_of[action], error.message)
        # Re-read: the escalation may have been decided meanwhile.
        with session_scope(engine) as session:
            escalation = session.get(models.Escalation, escalation_id) or escalation
        return _escalation_page(
            request,
            engine,
            user,
            basin,
            escalation,
            errors=fields,
            values=values,
            alert=error.message,
            status_code=error.status,
        )
    lookup = Lookup(engine)
    extension = Delay.model_validate(values["extend_by"]) if action == "extend" else ""
    what = {
        "reassign": f"la tâche est confiée à {lookup.org(organisation_id)}",
        "extend": f"le délai est prolongé de {extension}",
        "add_step": "le module est ajouté au parcours",
        "close": "le parcours est clos (" + EXIT_REASONS.get(exit_reason, exit_reason) + ")",
        "unblock": "la situation est débloquée, le délai repart",
    }[action]
    flash(
        request,
        f"Décision enregistrée pour le parcours {escalation.pathway_id} : {what}. "
        "Les personnes concernées sont prévenues par e-mail.",
    )
    return RedirectResponse(f"/gto/escalades/{escalation.id}", status_code=303)


# --- Meeting agenda ---------------------------------------------------------------------------


def agenda_rows(engine: Any, basin_id: str, lookup: Lookup) -> list[dict[str, Any]]:
    escalations: list[models.Escalation] = []
    page = 1
    while True:
        chunk = views.escalation_list(engine, basin_id=basin_id, status="open", page=page, size=200)
        escalations.extend(chunk.items)
        if page >= chunk.pages:
            break
        page += 1
    return escalation_rows(engine, escalations, lookup)


AGENDA_STUCK = 100
"""Stuck pathways without an open escalation listed on the agenda (the longest waiting first)."""


def agenda_stuck(engine: Any, user: CurrentUser, basin_id: str, lookup: Lookup) -> tuple[list[dict[str, Any]], int]:
    """The basin's stuck pathways that no open escalation puts on the agenda yet, and how many
    stuck pathways there are in all."""
    stuck = reading.pathways(engine, user, basin_id=basin_id, stuck=True, size=AGENDA_STUCK)
    return [row for row in stuck_rows(engine, stuck.items, lookup) if not row["escalations"]], stuck.total


@router.get("/gto/ordre-du-jour")
def agenda(request: Request, engine: Engine_, user: GtoLead) -> Response:
    basin = basin_of(engine, user)
    lookup = Lookup(engine)  # the names, read once for both lists
    stuck, stuck_total = agenda_stuck(engine, user, basin.id, lookup)
    return render(
        request,
        "gto/agenda.html",
        title=f"Ordre du jour du GTO — {basin.name}",
        nav="agenda",
        basin=basin,
        rows=agenda_rows(engine, basin.id, lookup),
        stuck=stuck,
        stuck_total=stuck_total,
        stuck_listed=AGENDA_STUCK,
        meeting=exchanges.next_gto_meeting(engine, basin.id),
        today=q.now(),
    )


@router.get("/gto/ordre-du-jour.csv")
def agenda_csv(engine: Engine_, user: GtoLead) -> Response:
    basin = basin_of(engine, user)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            "Référence du parcours",
            "Parcours",
            "Étape",
            "Partenaire",
            "En attente depuis",
            "Attente",
            "Échéance",
            "Escaladée le",
            "Niveau",
            "Statut du parcours",
        ]
    )
    lookup = Lookup(engine)
    for row in agenda_rows(engine, basin.id, lookup):
        escalation, pathway = row["escalation"], row["pathway"]
        cells = [
            escalation.pathway_id,
            row["definition"],
            row["step"],
            row["partner"],
            fr_datetime(row["waiting_since"]),
            waited_label(row["waiting_since"]),
            fr_datetime(row["due_at"]),
            fr_datetime(escalation.opened_at),
            row["level"],
            _agenda_status(pathway.status if pathway else "—"),
        ]
        writer.writerow([csv_cell(cell) for cell in cells])
    for row in agenda_stuck(engine, user, basin.id, lookup)[0]:
        pathway = row["pathway"]
        cells = [
            pathway.id,
            row["definition"],
            ", ".join(row["steps"]),
            ", ".join(row["partners"]),
            fr_datetime(row["since"]),
            waited_label(row["since"]),
            "",
            "",
            f"bloqué ({row['reason']})",
            _agenda_status(pathway.status),
        ]
        writer.writerow([csv_cell(cell) for cell in cells])
    filename = f"ordre-du-jour-gto-{basin.id}-{q.now().astimezone(PARIS).date().isoformat()}.csv"
    return attachment("\ufeff" + out.getvalue(), "text/csv; charset=utf-8", filename)


def _agenda_status(status: str) -> str:
    """A pathway's status as the agenda's spreadsheet writes it."""
    return status.replace("active", "en cours").replace("paused", "suspendu")
