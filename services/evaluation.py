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
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from scipy import stats
from sqlalchemy import Date, and_, case, func
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col, select

from definitions.durations import PARIS, is_working_day
from definitions.schema import EXIT_REASONS, Definition, ParallelStep
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


def _cohort_filter(cohort: Cohort) -> list[Any]:
    where: list[Any] = [models.Pathway.definition_id == cohort.definition_id]  # trials have their own id
    if cohort.version is not None:
        where.append(models.Pathway.definition_version == cohort.version)
    if cohort.basin_id:
        where.append(models.Pathway.basin_id == cohort.basin_id)
    if cohort.started_from:
        where.append(col(models.Pathway.started_at) >= datetime.combine(cohort.started_from, time(), PARIS))
    if cohort.started_to:
        where.append(
            col(models.Pathway.started_at) < datetime.combine(cohort.started_to + timedelta(days=1), time(), PARIS)
        )
    return where


class utc_day(FunctionElement[date]):
    """The calendar day of a timestamp, counted in the database, in UTC whatever the session's time
    zone (Parcours acts in working hours, so an event's UTC day is its day in Paris, but for the
    first two hours after midnight)."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"  # SQLite stores UTC


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC')::date"


def _day(column: Any) -> Any:
    return utc_day(column)


def _delays(rows: Any) -> Counter[int]:
    """Working days between (start day, end day) pairs counted by the database: (start, end, n)."""
    values: Counter[int] = Counter()
    for start, end, count in rows:
        if start is not None and end is not None:
            values[working_days_between_days(_as_date(start), _as_date(end))] += int(count)
    return values


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def working_days_between_days(first: date, last: date) -> int:
    days = _working_day_starts()
    return bisect_right(days, last.toordinal()) - bisect_right(days, first.toordinal())


def evaluate(engine: Engine, cohort: Cohort, *, threshold: int, now: datetime) -> Evaluation:
    """The cohort's indicators, aggregated by the database (counts and pairs of days; the working
    days and percentiles from those); counts under the secrecy rule (rates and delays only over at
    least `threshold` pathways or tasks)."""
    definition = definition_of(engine, cohort.definition_id, cohort.version)
    where = _cohort_filter(cohort)
    pathway, step_row, task = models.Pathway, models.PathwayStep, models.Task
    parallel_ids = [s.id for s in definition.steps if isinstance(s, ParallelStep)]
    branch_of = {b.id: s.id for s in definition.steps if isinstance(s, ParallelStep) for b in s.branches}
    in_cohort = select(pathway.id).where(*where)
    # Tasks carry their pathway's definition and basin: without a version or a period, the cohort's
    # tasks are found by their own columns (an index) instead of through the pathways.
    simple = cohort.version is None and cohort.started_from is None and cohort.started_to is None
    of_cohort: list[Any] = (
        [task.definition_id == cohort.definition_id, *([task.basin_id == cohort.basin_id] if cohort.basin_id else [])]
        if simple
        else [col(task.pathway_id).in_(in_cohort)]
    )
    with session_scope(engine) as session:
        statuses = session.exec(
            select(pathway.status, pathway.exit_reason, func.count())
            .where(*where)
            .group_by(col(pathway.status), col(pathway.exit_reason))
        ).all()
        durations = _delays(
            session.exec(
                select(_day(pathway.started_at), _day(pathway.closed_at), func.count())
                .where(*where, pathway.status == "closed")
                .group_by(_day(pathway.started_at), _day(pathway.closed_at))
            )
        )
        funnel = session.exec(
            select(
                step_row.step_id,
                func.count(func.distinct(step_row.pathway_id)),
                func.count(func.distinct(case((col(step_row.status) == "done", step_row.pathway_id)))),
                func.count(func.distinct(case((col(step_row.status) == "skipped", step_row.pathway_id)))),
            )
            .where(col(step_row.pathway_id).in_(in_cohort))
            .group_by(step_row.step_id)
        ).all()
        task_delays = session.exec(
            select(task.step_id, _day(task.opened_at), _day(task.closed_at), func.count())
            .where(*of_cohort, col(task.closed_at).is_not(None))
            .group_by(task.step_id, _day(task.opened_at), _day(task.closed_at))
        ).all()
        late = case((and_(col(task.due_at).is_not(None), func.coalesce(task.closed_at, now) > task.due_at), 1), else_=0)
        task_counts = session.exec(
            select(
                task.step_id, func.count(), func.sum(late), func.sum(case((col(task.escalation_level) > 0, 1), else_=0))
            )
            .where(*of_cohort)
            .group_by(task.step_id)
        ).all()

        def first_reached(condition: Any, moment: Any) -> Counter[int]:
            first = (
                select(step_row.pathway_id.label("pid"), func.min(moment).label("at"))  # type: ignore[attr-defined]
                .where(col(step_row.pathway_id).in_(in_cohort), condition)
                .group_by(step_row.pathway_id)
                .subquery()
            )
            return _delays(
                session.exec(
                    select(_day(pathway.started_at), _day(first.c.at), func.count())
                    .join(first, first.c.pid == pathway.id)
                    .group_by(_day(pathway.started_at), _day(first.c.at))
                )
            )

        orientation = first_reached(
            and_(col(step_row.step_id).like("%orientation%"), col(step_row.status) == "done"), step_row.closed_at
        )
        accompaniment = first_reached(col(step_row.step_id).in_(parallel_ids or [""]), step_row.opened_at)

    size = sum(int(n) for _, _, n in statuses)
    closed = sum(int(n) for status, _, n in statuses if status == "closed")
    exits_raw: Counter[str] = Counter()
    for status, reason, n in statuses:
        if status == "closed":
            exits_raw[reason or "autre"] += int(n)
    positive = sum(exits_raw[r] for r in POSITIVE_EXITS)
    reached = {step_id: (int(a), int(d), int(k)) for step_id, a, d, k in funnel}
    delays_by_step: dict[str, Counter[int]] = {}
    for step_id, opened, closed_day, n in task_delays:
        delays_by_step.setdefault(branch_of.get(step_id, step_id), Counter()).update(_delays([(opened, closed_day, n)]))
    counts_by_step: dict[str, list[int]] = {}
    for step_id, n, n_late, n_escalated in task_counts:
        totals = counts_by_step.setdefault(branch_of.get(step_id, step_id), [0, 0, 0])
        totals[0] += int(n)
        totals[1] += int(n_late or 0)
        totals[2] += int(n_escalated or 0)

    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole >= threshold else None

    def p50_p90(values: Counter[int]) -> tuple[float | None, float | None]:
        return (percentile(values, 50), percentile(values, 90)) if values.total() >= threshold else (None, None)

    figures = []
    for step in definition.steps:
        if step.kind in ("decision", "end"):
            continue
        got, done, skipped = reached.get(step.id, (0, 0, 0))
        n_tasks, n_late, n_escalated = counts_by_step.get(step.id, [0, 0, 0])
        p50, p90 = p50_p90(delays_by_step.get(step.id, Counter()))
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
