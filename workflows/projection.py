"""What a pathway's state looks like in the read model: one pure function shared by the workflow's
commit and by `parcours rebuild`, so both write the same pathway row."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from workflows.contract import Item, PathwayRow, SlaState
from workflows.model import PathwayInput, PathwayState

SLA_ORDER: dict[SlaState, int] = {"on_time": 0, "due_soon": 1, "overdue": 2, "escalated": 3}


def worst_sla(items: Iterable[Item], at: datetime) -> tuple[SlaState | None, datetime | None]:
    """The worst state of the open tasks at `at`, and since when the pathway is late (if it is)."""
    tasks = [i for i in items if i.kind == "task"]
    if not tasks:
        return None, None
    worst = max((i.sla(at) for i in tasks), key=lambda s: SLA_ORDER[s])
    late = [i.due_at for i in tasks if i.due_at and i.due_at <= at]
    return worst, min(late) if late else None


def open_steps(state: PathwayState) -> list[str]:
    return sorted({i.step_id for i in state.items.values() if i.kind in ("task", "wait")})


def pathway_row(input: PathwayInput, state: PathwayState, *, now: datetime, at: datetime | None = None) -> PathwayRow:
    """The pathway's row, updated `now`, its SLA computed at `at` (default `now`)."""
    sla, stuck_since = worst_sla(state.items.values(), at or now)
    definition = input.definition
    return PathwayRow(
        id=input.pathway_id,
        definition_id=definition.id,
        definition_version=definition.version or 0,
        basin_id=input.basin_id,
        referent_org=input.referent_org,
        person_ref=input.person_ref,
        status=state.status,
        current_steps=open_steps(state),
        sla=sla,
        stuck_since=stuck_since,
        started_at=state.started_at,
        updated_at=now,
        last_progress_at=state.last_progress_at,
        closed_at=state.closed_at,
        exit_reason=state.exit_reason,
        revision=state.revision,
        organisations=list(state.follow_up),
    )
