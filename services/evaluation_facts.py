"""The evaluation's facts (issue 12 §1, at the size of a territory): `refresh` computes again,
from the whole read model, how many pathways, timeline steps and tasks there are per definition,
version, basin and month of start, and per status, exit, step and delay in working days, into
`evaluation_fact`; an evaluation (services/evaluation.py) then sums a few thousand of those rows
instead of reading a cohort's pathways, steps and tasks.

The database does the grouping (one INSERT … SELECT per measure, nothing read into Python) and
counts working days through the `working_day` calendar. The workers take turns refreshing
(`claim_refresh`, hourly by default), or an operator runs `parcours evaluation-refresh`."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Integer, String, and_, delete, func, insert, literal_column, or_, text, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from definitions.durations import is_working_day
from definitions.schema import Definition, ParallelStep
from store import models
from store.db import session_scope

# --- Working days, counted by the database ------------------------------------------------

CALENDAR_FIRST, CALENDAR_LAST = date(2015, 1, 1), date(2045, 12, 31)
"""The calendar's span: pathways start and end within it."""


def calendar_rows() -> list[dict[str, Any]]:
    """Every day of the calendar with its index: the working days up to it, included."""
    rows, index, day = [], 0, CALENDAR_FIRST
    while day <= CALENDAR_LAST:
        index += is_working_day(day)
        rows.append({"day": day, "index": index})
        day += timedelta(days=1)
    return rows


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


class utc_month(FunctionElement[str]):
    """The month (AAAA-MM) of a timestamp, in UTC, counted in the database."""

    type = String()
    name = "utc_month"
    inherit_cache = True


@compiles(utc_month)
def _utc_month(element: utc_month, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"


@compiles(utc_month, "postgresql")
def _utc_month_postgresql(element: utc_month, compiler: Any, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM')"


# --- The facts, computed again from the read model ------------------------------------------

REFRESHED_AT = "evaluation_refreshed_at"
"""The setting holding when the facts were last computed (ISO 8601, UTC)."""
FACT_COLUMNS = ("definition_id", "definition_version", "basin_id", "start_month", "measure", "key", "value", "n")


def _parallel_steps(session: Session) -> dict[str, set[str]]:
    """The parallel steps (joint accompaniments) of every definition, over all its versions."""
    found: dict[str, set[str]] = {}
    for row in session.exec(select(models.DefinitionVersion)):
        steps = Definition.model_validate(row.body).steps
        found.setdefault(row.id, set()).update(s.id for s in steps if isinstance(s, ParallelStep))
    return found


def _fact_queries(session: Session, now: datetime) -> list[Any]:
    """One INSERT … SELECT per measure: the database groups the whole read model, nothing of it
    is read into Python."""
    pathway, step, task = models.Pathway, models.PathwayStep, models.Task
    calendar = models.WorkingDay.__table__  # type: ignore[attr-defined]
    first, last = calendar.alias("first_day"), calendar.alias("last_day")
    group: list[Any] = [
        pathway.definition_id,
        pathway.definition_version,
        pathway.basin_id,
        utc_month(pathway.started_at),
    ]
    working_days = last.c.index - first.c.index

    def fact(measure: str, key: Any, value: Any, n: Any, source: Any, *where: Any, by: tuple[Any, ...] = ()) -> Any:
        return (
            core_select(*group, literal_column(f"'{measure}'", String), key, value, n)
            .select_from(source)
            .where(*where)
            .group_by(*group, *by)
        )

    def between(source: Any, start: Any, end: Any) -> Any:
        return source.join(first, first.c.day == utc_day(start)).join(last, last.c.day == utc_day(end))

    steps = step.__table__.join(pathway.__table__, col(pathway.id) == col(step.pathway_id))  # type: ignore[attr-defined]
    tasks = task.__table__.join(pathway.__table__, col(pathway.id) == col(task.pathway_id))  # type: ignore[attr-defined]
    none = literal_column("''", String)  # constants written out: PostgreSQL groups by them as they are
    zero = literal_column("0", Integer)
    other = func.coalesce(pathway.exit_reason, literal_column("'autre'", String))
    count = func.count()
    pathways = pathway.__table__  # type: ignore[attr-defined]

    def first_reached(condition: Any, moment: Any) -> Any:
        reached = (
            core_select(col(step.pathway_id).label("pid"), func.min(moment).label("at"))
            .select_from(steps)
            .where(condition)
            .group_by(step.pathway_id)
            .subquery()
        )
        return between(pathways.join(reached, reached.c.pid == pathway.id), pathway.started_at, reached.c.at)

    parallel = {d: ids for d, ids in _parallel_steps(session).items() if ids}
    late = and_(col(task.due_at).is_not(None), func.coalesce(task.closed_at, now) > task.due_at)
    queries = [
        fact("status", pathway.status, zero, count, pathways, by=(pathway.status,)),
        fact("exit", other, zero, count, pathways, pathway.status == "closed", by=(other,)),
        fact(
            "duration",
            none,
            working_days,
            count,
            between(pathways, pathway.started_at, pathway.closed_at),
            pathway.status == "closed",
            by=(working_days,),
        ),
        *(
            fact(
                measure,
                step.step_id,
                zero,
                func.count(func.distinct(step.pathway_id)),
                steps,
                *([step.status == measure] if measure != "reached" else []),
                by=(step.step_id,),
            )
            for measure in ("reached", "done", "skipped")
        ),
        fact(
            "task_delay",
            task.step_id,
            working_days,
            count,
            between(tasks, task.opened_at, task.closed_at),
            col(task.closed_at).is_not(None),
            by=(task.step_id, working_days),
        ),
        fact("tasks", task.step_id, zero, count, tasks, by=(task.step_id,)),
        fact("late", task.step_id, zero, count, tasks, late, by=(task.step_id,)),
        fact("escalated", task.step_id, zero, count, tasks, col(task.escalation_level) > 0, by=(task.step_id,)),
        fact(
            "to_orientation",
            none,
            working_days,
            count,
            first_reached(and_(col(step.step_id).like("%orientation%"), col(step.status) == "done"), step.closed_at),
            by=(working_days,),
        ),
    ]
    if parallel:
        accompaniment = or_(
            *(and_(col(pathway.definition_id) == d, col(step.step_id).in_(sorted(ids))) for d, ids in parallel.items())
        )
        queries.append(
            fact(
                "to_accompaniment",
                none,
                working_days,
                count,
                first_reached(accompaniment, step.opened_at),
                by=(working_days,),
            )
        )
    return queries


REFRESH_CLAIM = "evaluation_refresh_claimed_at"
"""The setting a worker writes when it takes its turn to refresh (compare-and-set)."""
CLAIM_LEASE = timedelta(minutes=30)
"""A turn taken longer ago than this was lost with its worker: another may take it."""


def claim_refresh(engine: Engine, *, now: datetime, every: timedelta) -> bool:
    """Whether this caller takes the turn to refresh: the facts are older than `every` (or were
    never computed) and no other worker took the turn within the lease. Of several workers asking
    at once, one gets it (compare-and-set on the claim's previous value)."""
    with session_scope(engine) as session:
        done = session.get(models.Setting, REFRESHED_AT)
        claim = session.get(models.Setting, REFRESH_CLAIM)
    if done is not None and now - datetime.fromisoformat(done.value) < every:
        return False
    if claim is None:
        try:
            with session_scope(engine) as session:
                session.add(models.Setting(key=REFRESH_CLAIM, value=now.isoformat()))
        except IntegrityError:  # another worker's first claim
            return False
        return True
    claimed_at = datetime.fromisoformat(claim.value)
    under_way = done is None or claimed_at > datetime.fromisoformat(done.value)
    if under_way and now - claimed_at < CLAIM_LEASE:
        return False
    return _swap_claim(engine, claim.value, now.isoformat())


def release_claim(engine: Engine, *, claimed_at: datetime) -> None:
    """Give the turn back after a failed refresh, so that the next look (of any worker) tries
    again instead of waiting for the lease."""
    _swap_claim(engine, claimed_at.isoformat(), datetime.min.replace(tzinfo=claimed_at.tzinfo).isoformat())


def _swap_claim(engine: Engine, expected: str, value: str) -> bool:
    with session_scope(engine) as session:
        taken = session.execute(
            update(models.Setting)
            .where(col(models.Setting.key) == REFRESH_CLAIM, col(models.Setting.value) == expected)
            .values(value=value)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def refresh(engine: Engine, *, now: datetime) -> int:
    """Compute every fact again from the read model, in one transaction: readers see the former
    facts until it commits, a failure leaves them as they were. Two refreshes at once (a worker's
    and an operator's) run one after the other. Returns how many facts."""
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext('parcours.evaluation_refresh'))"))
        session.execute(delete(models.WorkingDay))  # the calendar too, should the holidays change
        session.execute(insert(models.WorkingDay), calendar_rows())
        session.execute(delete(models.EvaluationFact))
        for query in _fact_queries(session, now):
            session.execute(insert(models.EvaluationFact).from_select(FACT_COLUMNS, query))
        session.merge(models.Setting(key=REFRESHED_AT, value=now.isoformat()))
        return int(session.exec(select(func.count()).select_from(models.EvaluationFact)).one())
