"""The evaluation of a pathway, for designers and administrators (issue 12 §1–4): a cohort's
indicators under the statistical-secrecy rule, its comparison with the reference pathway, a chart
with its table, and the figures as CSV. The rules are in services/evaluation.py."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any

import pygal
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from starlette.responses import Response

from admin_ui.access import CurrentUser
from admin_ui.deps import Engine_, get_settings, require_roles, verify_csrf
from admin_ui.web import attachment, basin_names, flash, render
from definitions.schema import EXIT_REASONS
from parcours.presenters import csv_cell, french_date, french_datetime
from services import definitions as service_definitions
from services import evaluation
from services.documents import CHART_STYLE, Document, inline_svg
from services.errors import ServiceError
from services.evaluation import Cohort
from store import queries as q

router = APIRouter(include_in_schema=False)
Evaluator = Annotated[CurrentUser, Depends(require_roles("designer", "direction", "admin"))]


def _month(value: str | None, label: str) -> date | None:
    """A month of start (AAAA-MM; a day AAAA-MM-JJ stands for its month), as its first day."""
    if not value:
        return None
    try:
        return date.fromisoformat(f"{value[:7]}-01") if len(value) in (7, 10) else date.fromisoformat(value)
    except ValueError:
        raise ServiceError(f"{label} : mois attendu au format AAAA-MM ({value[:20]!r}).", "invalid") from None


def _month_label(day: date | None) -> str:
    return f"{day:%m/%Y}" if day else "…"


def cohort_asked(
    definition_id: str,
    version: str | None = None,
    bassin: str | None = None,
    du: str | None = None,
    au: str | None = None,
) -> Cohort:
    """The cohort a page or an export asks for: a definition, a version, a basin, a period."""
    try:
        number = int(version) if version else None
    except ValueError:
        raise ServiceError("Version : un nombre entier.", "invalid") from None
    return Cohort(definition_id, number, bassin or None, _month(du, "Du"), _month(au, "Au"))


def funnel_chart(found: evaluation.Evaluation) -> str:
    """Reached and done per step, drawn on the server (no script); the table beside it is the
    accessible alternative. Hidden counts are drawn as absent."""
    chart = pygal.Bar(
        js=[],
        disable_xml_declaration=True,
        height=300,
        width=800,
        legend_at_bottom=True,
        style=CHART_STYLE,
        title="Étapes atteintes et terminées",
    )
    chart.x_labels = [s.title for s in found.steps]
    chart.add("Atteinte", [s.reached for s in found.steps])
    chart.add("Terminée", [s.done for s in found.steps])
    return inline_svg(chart)


CohortAsked = Annotated[Cohort, Depends(cohort_asked)]


@router.get("/definitions/{definition_id}/evaluation")
def evaluation_page(request: Request, engine: Engine_, user: Evaluator, cohort: CohortAsked) -> Response:
    found, compared = evaluation.evaluate_with_reference(
        engine, cohort, threshold=get_settings(request).secrecy_threshold
    )
    definition = found.definition
    return render(
        request,
        "designer/evaluation.html",
        title=f"Évaluation – {definition.title}",
        nav="definitions",
        definition=definition,
        found=found,
        compared=compared,
        chart=Markup(funnel_chart(found)) if found.steps and found.size else None,
        basins=basin_names(engine),
        filters={
            "version": str(cohort.version or ""),
            "bassin": cohort.basin_id or "",
            "du": cohort.started_from.isoformat()[:7] if cohort.started_from else "",
            "au": cohort.started_to.isoformat()[:7] if cohort.started_to else "",
        },
        exit_labels=EXIT_REASONS,
        positive=evaluation.POSITIVE_EXITS,
        may_spread=user.role in ("direction", "admin"),
        version_row=service_definitions.version_row(engine, cohort.definition_id, definition.version or 1)
        if definition.version
        else service_definitions.latest_version(engine, cohort.definition_id),
    )


def figure_rows(found: evaluation.Evaluation) -> list[tuple[str, str, str]]:
    """Every figure as (indicator, step, value), hidden counts « < threshold »: one table for the
    CSV, the spreadsheet and the printable report."""
    hidden = f"< {found.threshold}"

    def cell(value: object) -> str:
        if value is None:
            return hidden
        return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)

    rows = [("taille de la cohorte", "", cell(found.size)), ("parcours clos", "", cell(found.closed))]
    for s in found.steps:
        for label, value in (
            ("atteinte", s.reached),
            ("terminée", s.done),
            ("passée", s.skipped),
            ("délai p50 (jours ouvrés)", s.delay_p50),
            ("délai p90 (jours ouvrés)", s.delay_p90),
            ("taux de retard", s.stall_rate),
            ("taux d'escalade", s.escalation_rate),
        ):
            rows.append((label, s.title, "—" if value is None and label.startswith(("délai", "taux")) else cell(value)))
    rows += [("sortie", EXIT_REASONS[reason], cell(count)) for reason, count in found.exits.items()]
    rows += [
        ("sorties positives", "", cell(found.positive_exits)),
        (
            "début → orientation p50 (jours ouvrés)",
            "",
            "—" if found.to_orientation[0] is None else cell(found.to_orientation[0]),
        ),
        ("durée p50 (jours ouvrés)", "", "—" if found.duration[0] is None else cell(found.duration[0])),
        ("durée p90 (jours ouvrés)", "", "—" if found.duration[1] is None else cell(found.duration[1])),
    ]
    return rows


def _evaluated(request: Request, engine: Any, cohort: Cohort) -> evaluation.Evaluation:
    return evaluation.evaluate(engine, cohort, threshold=get_settings(request).secrecy_threshold)


@router.get("/definitions/{definition_id}/evaluation.csv")
def evaluation_csv(request: Request, engine: Engine_, user: Evaluator, cohort: CohortAsked) -> Response:
    """The figures as CSV (semicolons, UTF-8 with a BOM for spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["indicateur", "étape", "valeur"])
    writer.writerows([tuple(csv_cell(c) for c in row) for row in figure_rows(_evaluated(request, engine, cohort))])
    return attachment("\ufeff" + out.getvalue(), "text/csv; charset=utf-8", f"evaluation-{cohort.definition_id}.csv")


@router.get("/definitions/{definition_id}/evaluation.xlsx")
def evaluation_xlsx(request: Request, engine: Engine_, user: Evaluator, cohort: CohortAsked) -> Response:
    """The figures as a spreadsheet (openpyxl, imported here: a quarter of a second off every start)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Évaluation"
    sheet.append(["indicateur", "étape", "valeur"])
    for row in figure_rows(_evaluated(request, engine, cohort)):
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return attachment(
        out.getvalue(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"evaluation-{cohort.definition_id}.xlsx",
    )


@router.get("/definitions/{definition_id}/evaluation.pdf")
def evaluation_report(request: Request, engine: Engine_, user: Evaluator, cohort: CohortAsked) -> Response:
    """The printable report of an experiment: its cohort, its comparison with the reference, every figure."""
    found, compared = evaluation.evaluate_with_reference(
        engine, cohort, threshold=get_settings(request).secrecy_threshold
    )
    definition = found.definition
    document = Document(f"Évaluation – {definition.title}")
    document.line(f"Évaluation : {definition.title}", 16, "B", 9)
    scope = [
        f"version {cohort.version}" if cohort.version else "toutes les versions",
        f"bassin {cohort.basin_id}" if cohort.basin_id else "tous les bassins",
        f"commencés de {_month_label(cohort.started_from)} à {_month_label(cohort.started_to)}",
    ]
    document.line(
        ", ".join(scope) + f". Chiffres calculés le {french_datetime(found.computed_at)}, édité le "
        f"{french_date(q.now())}. Effectifs inférieurs à {found.threshold} masqués."
    )
    if compared is not None:
        document.line("Comparaison avec la référence", 12, "B", 8)
        document.line(compared.reading)
    document.line("Indicateurs", 12, "B", 8)
    for indicator, step, value in figure_rows(found):
        document.line(f"{indicator}{' – ' + step if step else ''} : {value}")
    return attachment(document.bytes(), "application/pdf", f"evaluation-{cohort.definition_id}.pdf")


@router.post("/definitions/{definition_id}/essaimage", dependencies=[Depends(verify_csrf)])
async def spread(request: Request, engine: Engine_, user: Evaluator, definition_id: str) -> Response:
    """The direction opens the evaluated version to more basins and/or promotes it (one action)."""
    form = await request.form()
    version = form.get("version", "")
    try:
        number = int(version) if isinstance(version, str) else 0
    except ValueError:
        number = 0
    try:
        kept = service_definitions.spread(
            engine,
            user.actor,
            definition_id,
            number,
            more_basins=[b for b in form.getlist("basins") if isinstance(b, str)],
            promote=form.get("promote") == "oui",
        )
    except ServiceError as error:
        flash(request, f"Essaimage non fait : {error.message}", "error")
    else:
        flash(
            request,
            f"Version {number} essaimée : ouverte à {', '.join(kept)}. Les parcours en cours gardent leur version.",
        )
    return RedirectResponse(f"/definitions/{definition_id}/evaluation?version={number}", status_code=303)
