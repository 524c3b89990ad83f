"""Evaluating pathways (issue 12 §1–3) on a read model seeded with known cohorts: the indicators,
the Wilson intervals and the reading of a comparison, and the statistical secrecy (primary and
secondary suppression), each checked against values computed by hand."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import literal_column, text
from sqlalchemy import select as core_select
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from definitions.durations import PARIS
from parcours.settings import Settings
from services import evaluation, evaluation_facts
from services.evaluation import Cohort
from store import models
from store.db import session_scope
from tests.conftest import Parcours

REFERENCE = """
id: eval_ref
title: Parcours de référence
status: active
basins: [all]
start: orientation
steps:
  - {kind: task, id: orientation, title: Orientation, role: referent, outcomes: [{id: fait, label: Fait, next: accompagnement}]}
  - kind: parallel
    id: accompagnement
    title: Accompagnement conjoint
    branches:
      - {kind: task, id: appui_a, title: Appui A, role: referent, outcomes: [{id: fait, label: Fait}]}
      - {kind: task, id: appui_b, title: Appui B, role: referent, outcomes: [{id: fait, label: Fait}]}
    next: fin
  - {kind: end, id: fin, title: Fin, exit_reason: autre}
"""
EXPERIMENT = REFERENCE.replace("id: eval_ref", "id: eval_exp\nreference: eval_ref").replace(
    "status: active", "status: experimental"
)
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=PARIS)  # no public holiday in March 2026


def at(days: int) -> datetime:
    return MONDAY + timedelta(days=days)


def seed(parcours: Parcours, definition_id: str, plan: list[dict[str, Any]], first: int = 0) -> None:
    """Pathways started on MONDAY, each: orientation closed after `orientation` calendar days (or
    still open), joint accompaniment opened then, exit reason when closed, late / escalated."""
    with session_scope(parcours.engine) as session:
        for i, p in enumerate(plan, start=first):
            pid = f"{definition_id}-{i}"
            closed = p.get("exit")
            session.add(
                models.Pathway(
                    id=pid,
                    definition_id=definition_id,
                    definition_version=1,
                    basin_id=p.get("basin", "annecien"),
                    referent_org="departement74",
                    status="closed" if closed else "active",
                    started_at=MONDAY,
                    closed_at=at(p["duration"]) if closed else None,
                    exit_reason=closed,
                    person_id=f"pers-{pid}",
                )
            )
            done_at = at(p["orientation"]) if p.get("orientation") is not None else None
            session.add(
                models.PathwayStep(
                    id=f"{pid}-o",
                    pathway_id=pid,
                    step_id="orientation",
                    title="Orientation",
                    kind="task",
                    track="main",
                    status="done" if done_at else "open",
                    opened_at=MONDAY,
                    closed_at=done_at,
                )
            )
            session.add(
                models.Task(
                    id=f"{pid}-t",
                    pathway_id=pid,
                    step_id="orientation",
                    title="Orientation",
                    definition_id=definition_id,
                    basin_id="annecien",
                    organisation_id="departement74",
                    status="done" if done_at else "open",
                    opened_at=MONDAY,
                    closed_at=done_at,
                    due_at=at(3),
                    escalation_level=p.get("escalated", 0),
                )
            )
            if done_at:
                session.add(
                    models.PathwayStep(
                        id=f"{pid}-a",
                        pathway_id=pid,
                        step_id="accompagnement",
                        title="Accompagnement",
                        kind="group",
                        track="main",
                        status="done" if closed else "open",
                        opened_at=done_at,
                    )
                )


@pytest.fixture
def cohorts(parcours_without_worker: Parcours) -> Parcours:
    parcours = parcours_without_worker
    parcours.publish(REFERENCE)
    parcours.publish(EXPERIMENT)
    # The experiment: 12 pathways. Orientation done in 2 working days (Wed) for 6, in 5 (next Mon)
    # for 6, 3 of them escalated; one pathway stops after it (still active). Exits of the 11
    # closed: 7 durable jobs, 2 trainings, 2 abandons; durations 10 to 20 calendar days.
    plan: list[dict[str, Any]] = []
    for i in range(12):
        late = i >= 6
        plan.append({"orientation": 7 if late else 2, "escalated": 1 if i in (6, 7, 8) else 0})
    exits = ["emploi_durable"] * 7 + ["formation"] * 2 + ["abandon"] * 2
    for p, exit_reason, duration in zip(plan[:11], exits, range(10, 21), strict=True):
        p.update(exit=exit_reason, duration=duration)
    plan[11]["orientation"] = 7
    seed(parcours, "eval_exp", plan)
    # The reference: 40 closed pathways, 10 of them with a positive exit, each 30 calendar days.
    seed(
        parcours,
        "eval_ref",
        [{"orientation": 2, "exit": "emploi_durable" if i < 10 else "abandon", "duration": 30} for i in range(40)],
    )
    evaluation_facts.refresh(parcours.engine, now=at(60))
    return parcours


def evaluate(parcours: Parcours, definition_id: str, threshold: int) -> evaluation.Evaluation:
    cohort = Cohort(definition_id, None, "annecien", None, None)
    return evaluation.evaluate(parcours.engine, cohort, threshold=threshold)


def test_a_cohort_s_indicators_match_the_hand_computed_values(cohorts: Parcours) -> None:
    found = evaluate(cohorts, "eval_exp", threshold=2)
    assert found.size == 12 and found.closed == 11
    orientation = next(s for s in found.steps if s.step_id == "orientation")
    assert (orientation.reached, orientation.done, orientation.skipped) == (12, 12, 0)
    # Working days Mon→Wed = 2, Mon→next Mon = 5: six 2s and six 5s give p50 3.5, p90 5.
    assert (orientation.delay_p50, orientation.delay_p90) == (3.5, 5.0)
    # Due on Thursday: the six done the next Monday were late; 3 escalated out of 12.
    assert (orientation.stall_rate, orientation.escalation_rate) == (0.5, 0.25)
    accompaniment = next(s for s in found.steps if s.step_id == "accompagnement")
    assert accompaniment.reached == 12
    assert found.to_orientation == (3.5, 5.0)
    assert found.to_accompaniment == (3.5, 5.0)
    assert found.exits["emploi_durable"] == 7 and found.exits["formation"] == 2 and found.exits["abandon"] == 2
    assert found.positive_exits == 9
    # Durations of 10..20 calendar days from a Monday (Thu, Fri, Sat, Sun, Mon, …, Sun): working days
    # 8, 9, 9, 9, 10, 11, 12, 13, 14, 14, 14, so p50 11 and p90 14.
    assert found.duration == (11.0, 14.0)
    # Another basin: an empty cohort, nothing invented.
    other = evaluation.evaluate(cohorts.engine, Cohort("eval_exp", None, "chablais", None, None), threshold=2)
    assert other.size == 0 and other.duration == (None, None)
    # Periods are months of start: every pathway started in March 2026.
    march = Cohort("eval_exp", None, "annecien", date(2026, 3, 1), date(2026, 3, 1))
    assert evaluation.evaluate(cohorts.engine, march, threshold=2).size == 12
    april = Cohort("eval_exp", None, "annecien", date(2026, 4, 1), None)
    assert evaluation.evaluate(cohorts.engine, april, threshold=2).size == 0
    until_february = Cohort("eval_exp", None, "annecien", None, date(2026, 2, 1))
    assert evaluation.evaluate(cohorts.engine, until_february, threshold=2).size == 0
    assert found.computed_at == at(60)


def test_statistical_secrecy_hides_small_counts_and_what_would_reveal_them(cohorts: Parcours) -> None:
    found = evaluate(cohorts, "eval_exp", threshold=11)
    assert found.size == 12 and found.closed == 11  # at the threshold: shown
    # 7, 2, 2 and the 9 positive exits are below 11: hidden; zeros stay zeros.
    assert (found.exits["emploi_durable"], found.exits["formation"], found.exits["abandon"]) == (None, None, None)
    assert found.exits["demenagement"] == 0 and found.positive_exits is None
    assert found.to_accompaniment == (3.5, 5.0)  # 12 values
    # Secondary suppression: one hidden cell with a shown total would be total − the others.
    assert evaluation.suppress({"a": 20, "b": 5, "c": 30, "d": 0}, 11) == {"a": None, "b": None, "c": 30, "d": 0}
    assert evaluation.suppress({"a": 20, "b": 5, "c": 3}, 11) == {"a": 20, "b": None, "c": None}
    assert evaluation.suppress({"a": 20, "b": 5}, 11, total_shown=False) == {"a": 20, "b": None}


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_the_experiment_is_compared_with_its_reference(cohorts: Parcours) -> None:
    experiment, reference = evaluate(cohorts, "eval_exp", 11), evaluate(cohorts, "eval_ref", 11)
    compared = evaluation.compare(experiment, reference)
    mine, theirs = compared.positive
    assert mine is not None and theirs is not None
    assert (mine.rate, theirs.rate) == (9 / 11, 10 / 40)
    assert (mine.low, mine.high) == pytest.approx(wilson_by_hand(9, 11))
    assert (theirs.low, theirs.high) == pytest.approx(wilson_by_hand(10, 40))
    assert compared.positive_p is not None and compared.positive_p < 0.01
    assert compared.reading.startswith(
        "Sorties positives : plus fréquentes dans l'expérimentation (+57 points), différence significative "
        "(n = 11 / 40 parcours clos)."
    )
    # Durations: 8..14 working days against 22 for every reference pathway (Mon 2 to Wed 1 April).
    assert compared.reading.endswith(
        "Durée : parcours plus courts dans l'expérimentation (médiane 11 contre 22 jours ouvrés), "
        "différence significative."
    )
    # The same cohorts on both sides: nothing to conclude, said as such.
    same = evaluation.compare(reference, reference)
    assert same.reading == (
        "Sorties positives : pas de différence significative à ce stade (n = 40 / 40 parcours clos). "
        "Durée : pas de différence significative."
    )
    # Too few closed pathways on one side: no conclusion.
    few = evaluation.compare(evaluate(cohorts, "eval_exp", 12), evaluate(cohorts, "eval_ref", 12))
    assert few.reading == "Pas encore assez de parcours clos pour comparer (au moins 12 de chaque côté)."


async def test_the_designer_s_evaluation_page_and_its_csv(cohorts: Parcours) -> None:
    from admin_ui.app import create_app
    from tests.conftest import Web

    web = Web(parcours=cohorts, app=create_app(cohorts.engine, cohorts.settings, service=cohorts.service))
    designer = await web.signed_in("marc.girard@example.org")
    page = (await designer.get("/definitions/eval_exp/evaluation", params={"bassin": "annecien"})).text
    assert 'id="cohort-size">12<' in page and "Chiffres calculés le 1 mai 2026 à 9 h 00" in page
    assert "pas de différence" not in page and "plus fréquentes dans l" in page  # the comparison's reading
    assert "&lt; 11" in page  # hidden counts, not their values
    assert "<svg" in page and "<script" not in page.split('id="steps"')[0].split("<h2")[-1]
    exported = await designer.get("/definitions/eval_exp/evaluation.csv", params={"bassin": "annecien"})
    rows = exported.text.lstrip("\ufeff").splitlines()
    assert "taille de la cohorte;;12" in rows and "sortie;Emploi durable;< 11" in rows
    from io import BytesIO

    from openpyxl import load_workbook
    from pypdf import PdfReader

    book = load_workbook(
        BytesIO((await designer.get("/definitions/eval_exp/evaluation.xlsx", params={"bassin": "annecien"})).content)
    )
    cells = [tuple(c or "" for c in row) for row in book.active.iter_rows(values_only=True)]  # type: ignore[union-attr]
    assert ("taille de la cohorte", "", "12") in cells and ("sortie", "Emploi durable", "< 11") in cells
    report = await designer.get("/definitions/eval_exp/evaluation.pdf", params={"bassin": "annecien"})
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(report.content)).pages)
    assert "Comparaison avec la référence" in text and "plus fréquentes dans l'expérimentation" in text
    assert "taille de la cohorte : 12" in text
    caseworker = await web.signed_in("camille.martin@example.org")
    assert (await caseworker.get("/definitions/eval_exp/evaluation")).status_code == 403
    bad = await designer.get("/definitions/eval_exp/evaluation", params={"du": "hier"})
    assert bad.status_code == 422 and "mois attendu au format AAAA-MM" in bad.text


def facts(parcours: Parcours) -> list[tuple[Any, ...]]:
    with session_scope(parcours.engine) as session:
        rows = session.exec(select(models.EvaluationFact)).all()
    return sorted((f.definition_id, f.basin_id, f.start_month, f.measure, f.key, f.value, f.n) for f in rows)


def test_the_figures_are_computed_again_in_turn_and_a_failed_refresh_keeps_the_former(
    cohorts: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, every = cohorts.engine, timedelta(hours=1)
    # Computed at at(60): not due again within the hour; after it, one worker takes the turn.
    assert not evaluation_facts.claim_refresh(engine, now=at(60) + timedelta(minutes=59), every=every)
    later = at(60) + timedelta(hours=2)
    assert evaluation_facts.claim_refresh(engine, now=later, every=every)
    assert not evaluation_facts.claim_refresh(engine, now=later + timedelta(seconds=5), every=every)  # under way

    # A refresh failing half-way (its last statement refused) leaves the former figures and date.
    former = facts(cohorts)
    queries = evaluation_facts._fact_queries

    def failing(session: Any, now: datetime) -> list[Any]:
        return [*queries(session, now), core_select(literal_column("1")).select_from(text("no_such_table"))]

    monkeypatch.setattr(evaluation_facts, "_fact_queries", failing)
    with pytest.raises(DBAPIError):
        evaluation_facts.refresh(engine, now=later)
    assert facts(cohorts) == former and evaluate(cohorts, "eval_exp", 2).computed_at == at(60)
    monkeypatch.undo()

    # Computed again: the same figures (nothing doubled), then a new pathway counted.
    assert evaluation_facts.refresh(engine, now=later) == len(former)
    assert facts(cohorts) == former and evaluate(cohorts, "eval_exp", 2).computed_at == later
    seed(cohorts, "eval_exp", [{"orientation": 2, "exit": "formation", "duration": 12, "basin": "chablais"}], first=99)
    evaluation_facts.refresh(engine, now=later + timedelta(hours=1))
    assert evaluation.evaluate(engine, Cohort("eval_exp", None, "chablais", None, None), threshold=1).size == 1

    # A worker's refresher: its turn when the figures are older than its interval, then not again.
    from worker.runner import EvaluationRefresher

    refresher = EvaluationRefresher(engine, Settings(evaluation_refresh_minutes=60))
    assert refresher.refresh_if_due() == len(facts(cohorts))
    assert refresher.refresh_if_due() is None
    # A worker whose refresh fails gives its turn back: the next look, of any worker, tries again.
    hurried = EvaluationRefresher(engine, Settings(evaluation_refresh_minutes=1))
    hurried.every = timedelta(0)
    monkeypatch.setattr(evaluation_facts, "_fact_queries", failing)
    with pytest.raises(DBAPIError):
        hurried.refresh_if_due()
    monkeypatch.undo()
    assert hurried.refresh_if_due() == len(facts(cohorts))
