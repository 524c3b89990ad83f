"""The GTO dashboard's eight-week trends: each pathway started or closed, and each escalation
opened, counts in its week as Paris sees it (Monday 00:00 Paris to the next), on SQLite and on
PostgreSQL, across the change to winter time. Counted by the database (bench/million.py: a basin
of a large territory starts tens of thousands of pathways in eight weeks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from admin_ui.pages.gto import TREND_WEEKS, trends
from store import models
from store.db import make_engine

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

BASIN = "annecien"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday: the last week shown starts Monday 23 November
# The first week shown starts Monday 5 October, 00:00 in Paris (summer time, UTC+2): 4 October 22:00 UTC.
FIRST_WEEK_JUST_BEFORE = datetime(2026, 10, 4, 21, 30, tzinfo=UTC)  # Sunday 23:30 in Paris: not shown
FIRST_WEEK_JUST_AFTER = datetime(2026, 10, 4, 22, 30, tzinfo=UTC)  # Monday 00:30 in Paris: week 1
# The last week starts Monday 23 November, 00:00 in Paris (winter time, UTC+1): 22 November 23:00 UTC.
LAST_WEEK_JUST_BEFORE = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # Sunday 23:30 in Paris: week 7
LAST_WEEK_JUST_AFTER = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Monday 00:30 in Paris: week 8


def pathway(n: int, *, started: datetime, closed: datetime | None = None, basin: str = BASIN) -> models.Pathway:
    return models.Pathway(
        id=f"P-TREND-{n}",
        definition_id="rsa_socio_pro",
        definition_version=1,
        basin_id=basin,
        referent_org="departement74",
        status="closed" if closed else "active",
        current_steps=[],
        started_at=started,
        closed_at=closed,
        person_id=f"pers-{n}",
    )


def escalation(n: int, *, opened: datetime) -> models.Escalation:
    return models.Escalation(
        id=f"E-TREND-{n}",
        pathway_id="P-TREND-1",
        task_id="T-1",
        step_id="accueil",
        basin_id=BASIN,
        level=1,
        to="gto",
        status="open",
        opened_at=opened,
    )


def test_each_event_counts_in_its_paris_week(database_url: str) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add_all(
            [
                pathway(1, started=FIRST_WEEK_JUST_BEFORE, closed=FIRST_WEEK_JUST_AFTER),
                pathway(2, started=FIRST_WEEK_JUST_AFTER),
                pathway(3, started=LAST_WEEK_JUST_BEFORE, closed=LAST_WEEK_JUST_AFTER),
                pathway(4, started=LAST_WEEK_JUST_AFTER, closed=NOW),
                pathway(5, started=NOW),
                pathway(6, started=NOW, basin="chablais"),  # another basin: not counted
                escalation(1, opened=FIRST_WEEK_JUST_BEFORE),
                escalation(2, opened=FIRST_WEEK_JUST_AFTER),
                escalation(3, opened=LAST_WEEK_JUST_BEFORE),
            ]
        )
        session.commit()

    shown = trends(engine, BASIN, NOW)

    assert TREND_WEEKS == 8
    weeks = shown["weeks"]
    assert [w["start"].isoformat() for w in (weeks[0], weeks[-1])] == ["2026-10-05", "2026-11-23"]
    assert [w["started"] for w in weeks] == [1, 0, 0, 0, 0, 0, 1, 2]
    assert [w["closed"] for w in weeks] == [1, 0, 0, 0, 0, 0, 0, 2]
    assert [w["escalated"] for w in weeks] == [1, 0, 0, 0, 0, 0, 1, 0]
    assert shown["total"] == {"started": 4, "closed": 3, "escalated": 2}
    engine.dispose()
