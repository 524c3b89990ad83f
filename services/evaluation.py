"""Evaluating a pathway (issue 12 §1–3): for a definition (and a version), a basin and a period of
starts, the cohort's indicators, counted from the read model; an experiment compared with the
reference pathway its designer names, with confidence intervals (scipy) and a plain-French
reading; every count shown under the statistical-secrecy rule.

The counts come from the facts services/evaluation_facts.py computes again from the whole read
model (hourly by default): an evaluation sums a few thousand of them, whatever the size of the
territory; its figures are as of the last refresh, which the page states. Delays are in working
days (French public holidays), periods are months of start."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from definitions.schema import EXIT_REASONS, Definition, ParallelStep
from services import evaluation_facts
from services.errors import ServiceError
from store import models
from store.db import session_scope

POSITIVE_EXITS = ("emploi_durable", "emploi_temporaire", "formation", "creation_activite")
"""Exits counted apart as positive: durable or temporary job, training, business creation."""
SUPPRESSED = None
"""A count hidden by the statistical-secrecy rule (shown « < seuil »)."""


def percentile(values: list[int] | Counter[int], p: float) -> float | None:
    """The p-th percentile (linear interpolation between the two nearest ranks), None without
    values; `values` may be counted (value -> how many)."""
    counted = values if isinstance(values, Counter) else Counter(values)
    total = sum(counted.values())
    if total == 0:
        return None
    k = (total - 1) * p / 100
    low_rank, high_rank = int(k), min(int(k) + 1, total - 1)
    low = high = None
    seen = 0
    for value in sorted(counted):
        seen += counted[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    assert low is not None and high is not None
    return low + (high - low) * (k - low_rank)


# --- Statistical secrecy --------------------------------------------------------------------


def suppress(cells: dict[str, int], threshold: int, *, total_shown: bool = True) -> dict[str, int | None]:
    """Primary suppression: a count from 1 to threshold − 1 is hidden (None). Secondary: when the
    cells' total is shown and exactly one cell is hidden, the smallest other non-zero cell is
    hidden too, so that the total minus the others does not give the hidden one away."""
    shown: dict[str, int | None] = {k: (None if 0 < v < threshold else v) for k, v in cells.items()}
    hidden = [k for k, v in shown.items() if v is None]
    if total_shown and len(hidden) == 1:
        others = sorted((v, k) for k, v in cells.items() if k not in hidden and v > 0)
        if others:
            shown[others[0][1]] = None
    return shown


def shown_count(value: int, threshold: int) -> int | None:
    return None if 0 < value < threshold else value


# --- The indicators -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    definition_id: str
    version: int | None
    basin_id: str | None
    started_from: date | None
    started_to: date | None


@dataclass
class StepFigures:
    step_id: str
    title: str
    reached: int | None
    done: int | None
    skipped: int | None
    delay_p50: float | None  # working days from the task's opening to its closing
    delay_p90: float | None
    stall_rate: float | None  # tasks closed after their deadline, or still open past it
    escalation_rate: float | None  # tasks escalated to the GTO (or further)


@dataclass
class Evaluation:
    cohort: Cohort
    definition: Definition  # the version evaluated (the latest without one)
    threshold: int
    size: int | None
    steps: list[StepFigures]
    to_orientation: tuple[float | None, float | None]  # p50, p90 in working days
    to_accompaniment: tuple[float | None, float | None]
    exits: dict[str, int | None]
    positive_exits: int | None
    closed: int | None
    duration: tuple[float | None, float | None]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # unsuppressed, for comparisons only
    computed_at: datetime | None = None  # the refresh the figures come from (None: never computed)


def definition_of(engine: Engine, definition_id: str, version: int | None) -> Definition:
    with session_scope(engine) as session:
        query = select(models.DefinitionVersion).where(models.DefinitionVersion.id == definition_id)
        if version is not None:
            query = query.where(models.DefinitionVersion.version == version)
        row = session.exec(query.order_by(col(models.DefinitionVersion.version).desc())).first()
    if row is None:
        raise ServiceError(
            f"Définition inconnue : « {definition_id} »" + (f" v{version}" if version else "") + ".", "not_found"
        )
    return Definition.model_validate(row.body)


# --- An evaluation: the facts of a cohort, summed -------------------------------------------


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def evaluate(engine: Engine, cohort: Cohort, *, threshold: int) -> Evaluation:
    """The cohort's indicators from the facts (as of their last refresh); counts under the
    secrecy rule (rates and delays only over at least `threshold` pathways or tasks)."""
    definition = definition_of(engine, cohort.definition_id, cohort.version)
    fact = models.EvaluationFact
    where: list[Any] = [fact.definition_id == cohort.definition_id]  # trials have their own id
    if cohort.version is not None:
        where.append(fact.definition_version == cohort.version)
    if cohort.basin_id:
        where.append(fact.basin_id == cohort.basin_id)
    if cohort.started_from:
        where.append(col(fact.start_month) >= _month(cohort.started_from))
    if cohort.started_to:
        where.append(col(fact.start_month) <= _month(cohort.started_to))
    with session_scope(engine) as session:
        rows = session.exec(
            select(fact.measure, fact.key, fact.value, func.sum(fact.n))
            .where(*where)
            .group_by(col(fact.measure), col(fact.key), col(fact.value))
        ).all()
        refreshed = session.get(models.Setting, evaluation_facts.REFRESHED_AT)
    computed_at = datetime.fromisoformat(refreshed.value) if refreshed else None
    branch_of = {b.id: s.id for s in definition.steps if isinstance(s, ParallelStep) for b in s.branches}
    counted: dict[str, dict[str, Counter[int]]] = {}
    for measure, key, value, n in rows:
        if measure in ("task_delay", "tasks", "late", "escalated"):
            key = branch_of.get(key, key)  # a branch's tasks count for its parallel step
        counted.setdefault(measure, {}).setdefault(key, Counter())[int(value)] += int(n)

    def values(measure: str, key: str = "") -> Counter[int]:
        return counted.get(measure, {}).get(key, Counter())

    def total(measure: str, key: str = "") -> int:
        return values(measure, key).total()

    size = sum(c.total() for c in counted.get("status", {}).values())
    closed = total("status", "closed")
    exits_raw = Counter({reason: c.total() for reason, c in counted.get("exit", {}).items()})
    positive = sum(exits_raw[r] for r in POSITIVE_EXITS)
    durations, orientation, accompaniment = values("duration"), values("to_orientation"), values("to_accompaniment")

    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole >= threshold else None

    def p50_p90(values: Counter[int]) -> tuple[float | None, float | None]:
        return (percentile(values, 50), percentile(values, 90)) if values.total() >= threshold else (None, None)

    figures = []
    for step in definition.steps:
        if step.kind in ("decision", "end"):
            continue
        got, done, skipped = (total(measure, step.id) for measure in ("reached", "done", "skipped"))
        n_tasks, n_late, n_escalated = (total(measure, step.id) for measure in ("tasks", "late", "escalated"))
        p50, p90 = p50_p90(values("task_delay", step.id))
        figures.append(
            StepFigures(
                step_id=step.id,
                title=step.title,
                reached=shown_count(got, threshold),
                done=shown_count(done, threshold),
                skipped=shown_count(skipped, threshold),
                delay_p50=p50,
                delay_p90=p90,
                stall_rate=rate(n_late, n_tasks),
                escalation_rate=rate(n_escalated, n_tasks),
            )
        )
    return Evaluation(
        cohort=cohort,
        definition=definition,
        threshold=threshold,
        size=shown_count(size, threshold),
        steps=figures,
        to_orientation=p50_p90(orientation),
        to_accompaniment=p50_p90(accompaniment),
        exits=suppress({r: exits_raw.get(r, 0) for r in EXIT_REASONS}, threshold),
        positive_exits=shown_count(positive, threshold),
        closed=shown_count(closed, threshold),
        duration=p50_p90(durations),
        raw={"size": size, "closed": closed, "positive": positive, "durations": durations},
        computed_at=computed_at,
    )


# --- Comparing an experiment with its reference ---------------------------------------------


@dataclass(frozen=True)
class Interval:
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    experiment: Evaluation
    reference: Evaluation
    positive: tuple[Interval | None, Interval | None]  # Wilson 95 % intervals of the positive-exit rate
    positive_p: float | None  # Fisher's exact test on the two rates
    duration_p: float | None  # Mann–Whitney on the durations of the closed pathways
    reading: str


def wilson(successes: int, trials: int) -> Interval | None:
    if trials == 0:
        return None
    from scipy import stats  # a second of import: paid by the comparisons, not by every process

    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return Interval(successes / trials, float(interval.low), float(interval.high))


def compare(experiment: Evaluation, reference: Evaluation) -> Comparison:
    """The experiment's positive-exit rate and durations against the reference's, with a reading
    in plain French; nothing is concluded below the secrecy threshold on either side."""
    e, r = experiment.raw, reference.raw
    threshold = experiment.threshold
    counts = f"(n = {e['closed']} / {r['closed']} parcours clos)"
    if e["closed"] < threshold or r["closed"] < threshold:
        return Comparison(
            experiment,
            reference,
            (None, None),
            None,
            None,
            f"Pas encore assez de parcours clos pour comparer (au moins {threshold} de chaque côté).",
        )
    from scipy import stats  # a second of import: paid by the comparisons, not by every process

    positive = (wilson(e["positive"], e["closed"]), wilson(r["positive"], r["closed"]))
    table = [[e["positive"], e["closed"] - e["positive"]], [r["positive"], r["closed"] - r["positive"]]]
    positive_p = float(stats.fisher_exact(table).pvalue)
    duration_p = (
        float(stats.mannwhitneyu(list(e["durations"].elements()), list(r["durations"].elements())).pvalue)
        if e["durations"] and r["durations"]
        else None
    )
    gap = (positive[0].rate - positive[1].rate) * 100 if positive[0] and positive[1] else 0.0
    if positive_p < 0.05:
        direction = "plus" if gap > 0 else "moins"
        reading = (
            f"Sorties positives : {direction} fréquentes dans l'expérimentation ({gap:+.0f} points), "
            f"différence significative {counts}."
        )
    else:
        reading = f"Sorties positives : pas de différence significative à ce stade {counts}."
    if duration_p is not None and duration_p < 0.05:
        e50, r50 = percentile(e["durations"], 50) or 0, percentile(r["durations"], 50) or 0
        reading += (
            f" Durée : parcours {'plus courts' if e50 < r50 else 'plus longs'} dans l'expérimentation "
            f"(médiane {e50:.0f} contre {r50:.0f} jours ouvrés), différence significative."
        )
    elif duration_p is not None:
        reading += " Durée : pas de différence significative."
    return Comparison(experiment, reference, positive, positive_p, duration_p, reading)


def evaluate_with_reference(engine: Engine, cohort: Cohort, *, threshold: int) -> tuple[Evaluation, Comparison | None]:
    """The cohort's evaluation and, when its definition names a reference, the comparison with the
    reference's pathways of the same basin and period (all its versions)."""
    found = evaluate(engine, cohort, threshold=threshold)
    reference = found.definition.reference
    if not reference:
        return found, None
    theirs = Cohort(reference, None, cohort.basin_id, cohort.started_from, cohort.started_to)
    return found, compare(found, evaluate(engine, theirs, threshold=threshold))
