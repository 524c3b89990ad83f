"""Evaluating a pathway (issue 12 §1–3): for a definition (and a version), a basin and a period of
starts, the cohort's indicators, counted from the read model; an experiment compared with the
reference pathway its designer names, with confidence intervals (scipy) and a plain-French
reading; every count shown under the statistical-secrecy rule.

Delays are in working days (French public holidays), from a day index computed once: the
working days between two dates are the difference of their indices, so a cohort of tens of
thousands of pathways is measured in one pass."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from scipy import stats
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from definitions.durations import PARIS, is_working_day
from definitions.schema import EXIT_REASONS, Definition, ParallelStep
from parcours.presenters import aware
from services.errors import ServiceError
from store import models
from store.db import session_scope

POSITIVE_EXITS = ("emploi_durable", "emploi_temporaire", "formation", "creation_activite")
"""Exits counted apart as positive: durable or temporary job, training, business creation."""
SUPPRESSED = None
"""A count hidden by the statistical-secrecy rule (shown « < seuil »)."""


# --- Working days, in one pass --------------------------------------------------------------

_EPOCH = date(2015, 1, 1)


@lru_cache(maxsize=1)
def _working_day_starts() -> list[int]:
    """The ordinals of working days from 2015 to 2045."""
    day, end, found = _EPOCH, date(2045, 12, 31), []
    while day <= end:
        if is_working_day(day):
            found.append(day.toordinal())
        day += timedelta(days=1)
    return found


def working_days(start: datetime, end: datetime) -> int:
    """Working days from start to end (their dates in Paris): 0 the same day, 1 the next working day."""
    days = _working_day_starts()
    first, last = aware(start).astimezone(PARIS).date(), aware(end).astimezone(PARIS).date()
    return bisect_right(days, last.toordinal()) - bisect_right(days, first.toordinal())


def percentile(values: list[int], p: float) -> float | None:
    """The p-th percentile (linear interpolation), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


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


def _pathways(engine: Engine, cohort: Cohort) -> list[models.Pathway]:
    where: list[Any] = [models.Pathway.definition_id == cohort.definition_id]  # trials have their own id
    if cohort.version is not None:
        where.append(models.Pathway.definition_version == cohort.version)
    if cohort.basin_id:
        where.append(models.Pathway.basin_id == cohort.basin_id)
    if cohort.started_from:
        where.append(
            col(models.Pathway.started_at) >= datetime.combine(cohort.started_from, datetime.min.time(), PARIS)
        )
    if cohort.started_to:
        where.append(
            col(models.Pathway.started_at)
            < datetime.combine(cohort.started_to + timedelta(days=1), datetime.min.time(), PARIS)
        )
    with session_scope(engine) as session:
        return list(session.exec(select(models.Pathway).where(*where)))


def evaluate(engine: Engine, cohort: Cohort, *, threshold: int, now: datetime) -> Evaluation:
    """The cohort's indicators; counts under the secrecy rule (rates and delays only over at
    least `threshold` pathways or tasks)."""
    definition = definition_of(engine, cohort.definition_id, cohort.version)
    pathways = _pathways(engine, cohort)
    ids = [p.id for p in pathways]
    started = {p.id: p.started_at for p in pathways}
    steps_rows: list[models.PathwayStep] = []
    tasks: list[models.Task] = []
    with session_scope(engine) as session:
        for chunk in range(0, len(ids), 5000):
            part = ids[chunk : chunk + 5000]
            steps_rows += session.exec(
                select(models.PathwayStep).where(col(models.PathwayStep.pathway_id).in_(part))
            ).all()
            tasks += session.exec(select(models.Task).where(col(models.Task.pathway_id).in_(part))).all()

    reached: dict[str, set[str]] = {}
    done: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for row in steps_rows:
        reached.setdefault(row.step_id, set()).add(row.pathway_id)
        done[row.step_id] += row.status == "done"
        skipped[row.step_id] += row.status == "skipped"
    by_step: dict[str, list[models.Task]] = {}
    for task in tasks:
        by_step.setdefault(task.step_id, []).append(task)

    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole >= threshold else None

    figures = []
    for step in definition.steps:
        if step.kind in ("decision", "end"):
            continue
        step_tasks = by_step.get(step.id, [])
        if isinstance(step, ParallelStep):
            step_tasks = [t for b in step.branches for t in by_step.get(b.id, [])]
        closed = [t for t in step_tasks if t.closed_at and t.opened_at]
        delays = [working_days(t.opened_at, t.closed_at) for t in closed]  # type: ignore[arg-type]
        late = sum(1 for t in step_tasks if t.due_at and aware(t.closed_at or now) > aware(t.due_at))
        escalated = sum(1 for t in step_tasks if t.escalation_level > 0)
        enough = len(delays) >= threshold
        figures.append(
            StepFigures(
                step_id=step.id,
                title=step.title,
                reached=shown_count(len(reached.get(step.id, ())), threshold),
                done=shown_count(done[step.id], threshold),
                skipped=shown_count(skipped[step.id], threshold),
                delay_p50=percentile(delays, 50) if enough else None,
                delay_p90=percentile(delays, 90) if enough else None,
                stall_rate=rate(late, len(step_tasks)),
                escalation_rate=rate(escalated, len(step_tasks)),
            )
        )

    def first_time(predicate: Any, key: str) -> list[int]:
        """Working days from each pathway's start to the first time `predicate` holds of a step row."""
        first: dict[str, datetime] = {}
        for row in steps_rows:
            moment = getattr(row, key)
            if predicate(row) and moment is not None:
                pid = row.pathway_id
                first[pid] = min(first.get(pid, moment), moment)
        return [working_days(begun, moment) for pid, moment in first.items() if (begun := started.get(pid))]

    orientation = first_time(lambda r: "orientation" in r.step_id and r.status == "done", "closed_at")
    parallel_ids = {s.id for s in definition.steps if isinstance(s, ParallelStep)}
    accompaniment = first_time(lambda r: r.step_id in parallel_ids, "opened_at")
    closed_pathways = [p for p in pathways if p.status == "closed" and p.closed_at]
    durations = [working_days(p.started_at, p.closed_at) for p in closed_pathways if p.started_at]  # type: ignore[arg-type]
    exits_raw = Counter(p.exit_reason or "autre" for p in closed_pathways)
    positive = sum(exits_raw[r] for r in POSITIVE_EXITS)

    def p50_p90(values: list[int]) -> tuple[float | None, float | None]:
        return (percentile(values, 50), percentile(values, 90)) if len(values) >= threshold else (None, None)

    return Evaluation(
        cohort=cohort,
        threshold=threshold,
        size=shown_count(len(pathways), threshold),
        steps=figures,
        to_orientation=p50_p90(orientation),
        to_accompaniment=p50_p90(accompaniment),
        exits=suppress({r: exits_raw.get(r, 0) for r in EXIT_REASONS}, threshold),
        positive_exits=shown_count(positive, threshold),
        closed=shown_count(len(closed_pathways), threshold),
        duration=p50_p90(durations),
        raw={"size": len(pathways), "closed": len(closed_pathways), "positive": positive, "durations": durations},
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
    positive = (wilson(e["positive"], e["closed"]), wilson(r["positive"], r["closed"]))
    table = [[e["positive"], e["closed"] - e["positive"]], [r["positive"], r["closed"] - r["positive"]]]
    positive_p = float(stats.fisher_exact(table).pvalue)
    duration_p = (
        float(stats.mannwhitneyu(e["durations"], r["durations"]).pvalue) if e["durations"] and r["durations"] else None
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
