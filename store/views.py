"""Paginated, filtered reads for the UI and the API (one query per idea, shared by both)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, case, or_, true, union_all
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from parcours.presenters import aware
from store import models
from store.db import session_scope

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 25
MAX_PAGE = 1_000_000  # beyond it, an offset would overflow SQLite's and PostgreSQL's integers
WALK_FROM = 5_000
"""From this many follow-up memberships, an organisation's pathways are listed by walking all the
pathways newest first and keeping those it may read: a page then reads a few hundred rows,
where finding all of them first read every one (seconds for a Département at a million)."""
COUNT_CAP = 1_000
"""Such a list counts its pathways up to this many; beyond, it says « plus de 1 000 »."""


@dataclass
class Paged(Generic[T]):
    items: list[T]
    page: int
    size: int
    total: int
    capped: bool = False  # more than `total` (counted up to a cap): narrow the filters to see beyond

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def as_dict(self, items: list[Any]) -> dict[str, Any]:
        return {
            "items": items,
            "page": self.page,
            "size": self.size,
            "total": self.total,
            "pages": self.pages,
            "total_capped": self.capped,
        }


def within_range(query: Callable[[int], Paged[T]], page: int) -> Paged[T]:
    """The page asked for, or the last one when asked past the end (a list that shrank)."""
    paged = query(max(1, page))
    return query(paged.pages) if page > paged.pages else paged


def page_rows(query: Any, count_query: Any, session: Any, page: int, size: int) -> tuple[list[Any], int]:
    """One page of an ordered query's rows (page and size kept in bounds) and the count of all."""
    page, size = max(1, min(page, MAX_PAGE)), max(1, min(size, 200))
    total = int(session.exec(count_query).one())
    rows = list(session.exec(query.offset((page - 1) * size).limit(size)))
    return rows, total


def stuck_clause(cutoff: datetime) -> Any:
    """Open and (overdue, escalated, or no progress since `cutoff`). "Open" is written as the two
    open statuses, not as "not closed": an index on (basin, status, …) then reads only the open
    pathways of a basin, not its closed ones too."""
    return and_(
        col(models.Pathway.status).in_(["active", "paused"]),
        or_(col(models.Pathway.sla).in_(["overdue", "escalated"]), col(models.Pathway.last_progress_at) < cutoff),
    )


def followed_by(organisation_id: str, *, from_memberships: bool = True) -> Any:
    """The pathways a caseworker's organisation may read (services.reading's need-to-know rule,
    written once as SQL for the lists and the detail check): an open pathway while the
    organisation is an active member of its follow-up group; a closed one, until its person is
    anonymised, for its referent and the organisations still in the group when it closed (the
    projection sets their `until` to `closed_at`)."""
    pathway, member, person = models.Pathway, models.FollowUpMember, models.Person
    candidates = union_all(
        select(member.pathway_id).where(member.organisation_id == organisation_id),
        select(pathway.id).where(pathway.referent_org == organisation_id),
    )
    member_now = (
        select(member.pathway_id)
        .where(member.pathway_id == pathway.id, member.organisation_id == organisation_id, col(member.until).is_(None))
        .correlate(pathway)
        .exists()
    )
    member_at_closing = (
        select(member.pathway_id)
        .where(
            member.pathway_id == pathway.id,
            member.organisation_id == organisation_id,
            or_(col(member.until).is_(None), col(pathway.closed_at).is_(None), col(member.until) >= pathway.closed_at),
        )
        .correlate(pathway)
        .exists()
    )
    retained = (
        select(person.id)
        .where(person.id == pathway.person_id, col(person.anonymised_at).is_(None))
        .correlate(pathway)
        .exists()
    )
    # The organisation's pathways are found first by a join (its memberships and the pathways it
    # is referent of), then each is checked by key. An `IN (…)` under an OR is rescanned for
    # every row once its list outgrows PostgreSQL's work_mem: minutes at a million pathways.
    # Without `from_memberships`, each pathway met is checked (a walk in some order, WALK_FROM).
    return and_(
        col(pathway.id).in_(candidates) if from_memberships else true(),
        or_(
            and_(col(pathway.status) != "closed", member_now),
            and_(
                col(pathway.status) == "closed",
                or_(col(pathway.referent_org) == organisation_id, member_at_closing),
                retained,
            ),
        ),
    )


def follows(engine: Engine, *, pathway_id: str, organisation_id: str) -> bool:
    """Whether this organisation may read this pathway under `followed_by` (one pathway)."""
    with session_scope(engine) as session:
        query = select(models.Pathway.id).where(models.Pathway.id == pathway_id, followed_by(organisation_id))
        return session.exec(query).first() is not None


def task_filters(
    *,
    organisation_id: str | None = None,
    status: str | None = None,
    basin_id: str | None = None,
    definition_id: str | None = None,
    sla: str | None = None,
    pathway_id: str | None = None,
) -> list[Any]:
    """WHERE clauses for the given task filters (None: no filter)."""
    values = {
        models.Task.organisation_id: organisation_id,
        models.Task.status: status,
        models.Task.basin_id: basin_id,
        models.Task.definition_id: definition_id,
        models.Task.sla: sla,
        models.Task.pathway_id: pathway_id,
    }
    return [column == value for column, value in values.items() if value]


def tasks_by_deadline() -> tuple[Any, ...]:
    """Deadline first, tasks without one last."""
    return (col(models.Task.due_at).asc().nulls_last(), models.Task.id)


def escalation_filters(
    *,
    basin_id: str | None = None,
    status: str | None = None,
    pathway_id: str | None = None,
    min_level: int | None = None,
) -> list[Any]:
    values = {
        models.Escalation.basin_id: basin_id,
        models.Escalation.status: status,
        models.Escalation.pathway_id: pathway_id,
    }
    where: list[Any] = [column == value for column, value in values.items() if value]
    if min_level is not None:
        where.append(col(models.Escalation.level) >= min_level)
    return where


def escalations_oldest_first() -> tuple[Any, ...]:
    return (col(models.Escalation.opened_at), models.Escalation.id)


def task_inbox(
    engine: Engine,
    *,
    organisation_id: str | None,
    status: str | None = "open",
    basin_id: str | None = None,
    definition_id: str | None = None,
    sla: str | None = None,
    page: int = 1,
    size: int = DEFAULT_PAGE_SIZE,
) -> Paged[models.Task]:
    """Tasks sorted by deadline (no deadline last)."""
    where = task_filters(
        organisation_id=organisation_id, status=status, basin_id=basin_id, definition_id=definition_id, sla=sla
    )
    with session_scope(engine) as session:
        query = select(models.Task).where(*where).order_by(*tasks_by_deadline())
        rows, total = page_rows(query, select(func.count()).select_from(models.Task).where(*where), session, page, size)
    return Paged(rows, max(1, page), size, total)


def count_open_tasks(engine: Engine, *, basin_id: str) -> int:
    with session_scope(engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(models.Task)
                .where(models.Task.basin_id == basin_id, models.Task.status == "open")
            ).one()
        )


def task_counts(engine: Engine, *, organisation_id: str) -> dict[str, int]:
    """Open tasks of an organisation by SLA state, plus the total."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.Task.sla, func.count())
            .where(models.Task.organisation_id == organisation_id, models.Task.status == "open")
            .group_by(models.Task.sla)
        ).all()
    counts = {str(sla or "on_time"): int(n) for sla, n in rows}
    counts["total"] = sum(counts.values())
    return counts


def pathway_list(
    engine: Engine,
    *,
    basin_id: str | None = None,
    definition_id: str | None = None,
    status: str | None = None,
    stuck_cutoff: datetime | None = None,
    follow_up_org: str | None = None,
    page: int = 1,
    size: int = DEFAULT_PAGE_SIZE,
) -> Paged[models.Pathway]:
    """Pathways, the stuck ones longest-waiting first when `stuck_cutoff` is given; `status`:
    active, paused, closed, or open (active or paused)."""
    where: list[Any] = []
    if basin_id:
        where.append(models.Pathway.basin_id == basin_id)
    if definition_id:
        where.append(models.Pathway.definition_id == definition_id)
    if status == "open":  # active or paused
        where.append(col(models.Pathway.status) != "closed")
    elif status:
        where.append(models.Pathway.status == status)
    if stuck_cutoff is not None:
        where.append(stuck_clause(stuck_cutoff))
    order = (
        [
            col(models.Pathway.stuck_since).asc().nulls_last(),
            col(models.Pathway.last_progress_at).asc(),
            col(models.Pathway.id),
        ]
        if stuck_cutoff is not None
        else [col(models.Pathway.started_at).desc(), col(models.Pathway.id).desc()]  # ix_pathway_started
    )
    with session_scope(engine) as session:
        walk = False
        if follow_up_org:
            walk = stuck_cutoff is None and memberships(session, follow_up_org) >= WALK_FROM
            where.append(followed_by(follow_up_org, from_memberships=not walk))
        query = select(models.Pathway).where(*where).order_by(*order)
        counted = select(models.Pathway.id).where(*where)
        if walk:
            counted = counted.limit(COUNT_CAP + 1)
        rows, total = page_rows(query, select(func.count()).select_from(counted.subquery()), session, page, size)
    return Paged(rows, max(1, page), size, min(total, COUNT_CAP) if walk else total, walk and total > COUNT_CAP)


def memberships(session: Any, organisation_id: str) -> int:
    """How many follow-up groups an organisation was ever in, counted up to WALK_FROM (from its
    index alone: a Département's 400,000 would take 30 ms to count in full)."""
    member = models.FollowUpMember
    first = select(member.pathway_id).where(member.organisation_id == organisation_id).limit(WALK_FROM)
    return int(session.exec(select(func.count()).select_from(first.subquery())).one())


def escalation_list(
    engine: Engine,
    *,
    basin_id: str | None = None,
    status: str | None = "open",
    min_level: int | None = None,
    page: int = 1,
    size: int = DEFAULT_PAGE_SIZE,
) -> Paged[models.Escalation]:
    where = escalation_filters(basin_id=basin_id, status=status, min_level=min_level)
    with session_scope(engine) as session:
        query = select(models.Escalation).where(*where).order_by(*escalations_oldest_first())
        rows, total = page_rows(
            query, select(func.count()).select_from(models.Escalation).where(*where), session, page, size
        )
    return Paged(rows, max(1, page), size, total)


def step_counts(
    engine: Engine, *, definition_id: str | None = None, basin_id: str | None = None
) -> list[dict[str, Any]]:
    """Open tasks per (definition, step, SLA state): the heat map of where pathways wait.
    Anonymous counts only."""
    where: list[Any] = [models.Task.status == "open"]
    if definition_id:
        where.append(models.Task.definition_id == definition_id)
    if basin_id:
        where.append(models.Task.basin_id == basin_id)
    with session_scope(engine) as session:
        rows = session.exec(
            select(models.Task.definition_id, models.Task.step_id, models.Task.sla, func.count())
            .where(*where)
            .group_by(col(models.Task.definition_id), col(models.Task.step_id), col(models.Task.sla))
        ).all()
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for definition, step, sla, count in rows:
        entry = table.setdefault(
            (definition, step),
            {
                "definition_id": definition,
                "step_id": step,
                "total": 0,
                "on_time": 0,
                "due_soon": 0,
                "overdue": 0,
                "escalated": 0,
            },
        )
        entry[str(sla or "on_time")] += int(count)
        entry["total"] += int(count)
    return sorted(table.values(), key=lambda e: (e["definition_id"], -e["total"]))


# --- Helpers for the caseworker pages ---------------------------------------------------------


def list_basins(engine: Engine) -> list[models.Basin]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.Basin).order_by(models.Basin.name)))


def latest_definition_rows(engine: Engine) -> list[models.DefinitionVersion]:
    """The latest published version of every definition, by title."""
    with session_scope(engine) as session:
        query = select(models.DefinitionVersion).order_by(
            models.DefinitionVersion.id, col(models.DefinitionVersion.version).desc()
        )
        rows = list(session.exec(query))
    latest: dict[str, models.DefinitionVersion] = {}
    for row in rows:
        latest.setdefault(row.id, row)
    return sorted(latest.values(), key=lambda r: r.title.lower())


def get_person(engine: Engine, *, person_id: str) -> models.Person | None:
    with session_scope(engine) as session:
        return session.get(models.Person, person_id)


def pathway_notes(engine: Engine, *, pathway_id: str) -> list[models.Note]:
    """Notes shared with the follow-up group (reasons of actions included), oldest first."""
    with session_scope(engine) as session:
        query = (
            select(models.Note)
            .where(models.Note.pathway_id == pathway_id)
            .order_by(col(models.Note.created_at).asc(), models.Note.id)
        )
        return list(session.exec(query))


def pathway_history(engine: Engine, *, pathway_id: str) -> dict[str, list[Any]]:
    """A pathway's timeline entries, tasks, follow-up group and audit events, as model rows."""
    with session_scope(engine) as session:

        def rows(model: Any, *order: Any) -> list[Any]:
            query = select(model).where(model.pathway_id == pathway_id).order_by(*order)
            return list(session.exec(query))

        member, step = models.FollowUpMember, models.PathwayStep
        return {
            "steps": rows(step, col(step.opened_at).asc(), step.id),
            "tasks": rows(models.Task, col(models.Task.opened_at).asc(), models.Task.id),
            "follow_up": rows(member, col(member.since).asc(), member.organisation_id),
            "audit": rows(models.AuditEvent, col(models.AuditEvent.at).asc(), models.AuditEvent.id),
        }


def users_by_id(engine: Engine, ids: set[str] | list[str]) -> dict[str, models.User]:
    wanted = [i for i in set(ids) if i]
    if not wanted:
        return {}
    with session_scope(engine) as session:
        query = select(models.User).where(col(models.User.id).in_(wanted))
        return {u.id: u for u in session.exec(query)}


def get_submission(engine: Engine, *, submission_id: str) -> models.Submission | None:
    with session_scope(engine) as session:
        return session.get(models.Submission, submission_id)


# --- GTO dashboard and designer helpers (appended) -------------------------------------------


def open_tasks_by_pathway(engine: Engine, *, pathway_ids: list[str]) -> dict[str, list[models.Task]]:
    """Open tasks of these pathways, oldest first, grouped by pathway."""
    grouped: dict[str, list[models.Task]] = {pid: [] for pid in pathway_ids}
    if not pathway_ids:
        return grouped
    with session_scope(engine) as session:
        query = (
            select(models.Task)
            .where(col(models.Task.pathway_id).in_(pathway_ids), models.Task.status == "open")
            .order_by(col(models.Task.opened_at).asc(), models.Task.id)
        )
        for task in session.exec(query):
            grouped.setdefault(task.pathway_id, []).append(task)
    return grouped


def tasks_by_id(engine: Engine, *, task_ids: list[str]) -> dict[str, models.Task]:
    if not task_ids:
        return {}
    with session_scope(engine) as session:
        query = select(models.Task).where(col(models.Task.id).in_(task_ids))
        return {task.id: task for task in session.exec(query)}


def basin_week_counts(engine: Engine, *, basin_id: str, bounds: list[datetime]) -> dict[str, list[int]]:
    """How many pathways of a basin started and closed, and how many of its escalations opened, in
    each period [bounds[i], bounds[i + 1]) (anonymous counts). Counted by the database: a basin of
    a large territory starts tens of thousands of pathways in the weeks a dashboard shows."""
    edges = [aware(b).astimezone(UTC) for b in bounds]

    def per_period(session: Any, column: Any, basin_column: Any) -> list[int]:
        cells = [func.count(case((and_(column >= a, column < b), 1))) for a, b in itertools.pairwise(edges)]
        row = session.exec(select(*cells).where(basin_column == basin_id, column >= edges[0], column < edges[-1])).one()
        return [int(n) for n in row]

    pathway, escalation = models.Pathway, models.Escalation
    with session_scope(engine) as session:
        return {
            "started": per_period(session, col(pathway.started_at), pathway.basin_id),
            "closed": per_period(session, col(pathway.closed_at), pathway.basin_id),
            "escalated": per_period(session, col(escalation.opened_at), escalation.basin_id),
        }
