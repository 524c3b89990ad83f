"""The working calendar a run keeps as data: deadlines at the end of the working day, sending within
working hours, pauses counted in working time (pure functions, no Temporal)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from definitions.calendar import WorkCalendar, work_calendar
from definitions.durations import PARIS
from definitions.loader import parse_text
from parcours.settings import ConfigError, load_settings
from workflows.pathway import _schedule

CALENDAR = work_calendar(2026)


def paris(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PARIS)


def test_a_deadline_ends_at_closing_time_of_the_last_working_day() -> None:
    # Thursday 24 December 2026, 10:00 + 2 working days: Christmas and the weekend skipped.
    assert CALENDAR.deadline(paris(2026, 12, 24, 10), 2) == paris(2026, 12, 29, 18)
    # Started on a Friday night: the count starts from the next working day.
    assert CALENDAR.deadline(paris(2026, 11, 27, 23), 1) == paris(2026, 11, 30, 18)
    # Across the end of daylight saving time, still 18:00 in Paris.
    due = CALENDAR.deadline(paris(2026, 10, 23, 9), 1)
    assert due == paris(2026, 10, 26, 18) and due.utcoffset() == timedelta(hours=1)


def test_closing_time_is_configurable() -> None:
    late = work_calendar(2026, closes=time(17, 0))
    assert late.deadline(paris(2026, 3, 13, 9), 1) == paris(2026, 3, 16, 17)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (paris(2026, 11, 27, 19), paris(2026, 11, 30, 8, 30)),  # Friday evening -> Monday opening
        (paris(2026, 11, 28, 12), paris(2026, 11, 30, 8, 30)),  # Saturday
        (paris(2026, 12, 24, 19), paris(2026, 12, 28, 8, 30)),  # Christmas Eve evening -> Monday 28
        (paris(2026, 11, 30, 7), paris(2026, 11, 30, 8, 30)),  # before opening
        (paris(2026, 11, 30, 10), paris(2026, 11, 30, 10)),  # within hours: at once
        (paris(2026, 11, 30, 18), paris(2026, 11, 30, 18)),  # closing time included
    ],
)
def test_what_falls_due_outside_working_hours_goes_at_the_next_opening(moment: datetime, expected: datetime) -> None:
    assert CALENDAR.next_open(moment) == expected


def test_a_weekend_pause_costs_only_its_working_time() -> None:
    # Paused Friday 27 November 17:00, resumed Monday 30 November 09:00: 1 h 30 of working time
    # (Friday 17:00-18:00 and Monday 08:30-09:00), not two and a half days.
    worked = CALENDAR.working_time_between(paris(2026, 11, 27, 17), paris(2026, 11, 30, 9))
    assert worked == timedelta(hours=1, minutes=30)
    # A deadline due Tuesday 1 December 18:00 then moves to Wednesday 2 December 10:00.
    assert CALENDAR.add_working_time(paris(2026, 12, 1, 18), worked) == paris(2026, 12, 2, 10)
    # A pause over a public holiday and a night costs nothing.
    assert CALENDAR.working_time_between(paris(2026, 12, 24, 19), paris(2026, 12, 28, 8)) == timedelta()
    assert CALENDAR.add_working_time(paris(2026, 12, 1, 18), timedelta()) == paris(2026, 12, 1, 18)


def test_working_time_crosses_weekends_and_holidays() -> None:
    # From Thursday 24 December 17:00, 3 hours of working time: 1 h that day, then Monday 28.
    assert CALENDAR.add_working_time(paris(2026, 12, 24, 17), timedelta(hours=3)) == paris(2026, 12, 28, 10, 30)


def test_the_calendar_is_data_the_library_cannot_change_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = WorkCalendar.model_validate_json(CALENDAR.model_dump_json())
    import holidays

    monkeypatch.setattr(holidays, "country_holidays", lambda *a, **k: {date(2026, 12, 28): "invented"})
    assert frozen.deadline(paris(2026, 12, 24, 10), 2) == paris(2026, 12, 29, 18)
    # A calendar with another holiday table gives other deadlines: the table is what counts.
    other = CALENDAR.model_copy(update={"holidays": [*CALENDAR.holidays, date(2026, 12, 28)]})
    assert other.deadline(paris(2026, 12, 24, 10), 2) == paris(2026, 12, 30, 18)


TASKS = """
id: horaires
title: Horaires
basins: [all]
start: ouvre
escalation:
  - {to: gto, after: PT1H}
steps:
  - kind: task
    id: ouvre
    title: Délai en jours ouvrés
    role: referent
    deadline: 1 working day
    reminders: [{after: PT30M}]
    outcomes: [{id: fait, label: Fait, next: exact}]
  - kind: task
    id: exact
    title: Délai exact
    role: referent
    deadline: PT1H
    outcomes: [{id: fait, label: Fait, next: fin}]
  - {kind: end, id: fin, title: Fin}
"""


def test_a_working_day_clock_sends_within_working_hours_and_an_iso_clock_at_once() -> None:
    definition = parse_text(TASKS)
    start = paris(2026, 11, 26, 10)  # Thursday
    events = _schedule(definition.task("ouvre"), definition.escalation, start, CALENDAR.deadline(start, 1), CALENDAR)
    at = {e.key: e.at for e in events}
    assert at["overdue:0"] == paris(2026, 11, 27, 18)  # Friday closing time
    assert at["reminder:0"] == paris(2026, 11, 30, 8, 30)  # Friday 18:30 -> Monday opening
    assert at["escalation:1"] == paris(2026, 11, 30, 8, 30)  # Friday 19:00 -> Monday opening
    night = paris(2026, 11, 27, 22)
    exact = _schedule(definition.task("exact"), definition.escalation, night, night + timedelta(hours=1), CALENDAR)
    assert {e.key: e.at for e in exact}["escalation:1"] == paris(2026, 11, 28, 0)  # Saturday midnight, exact


def test_working_hours_come_from_the_settings_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_DAY_OPENS", "09:00")
    monkeypatch.setenv("PARCOURS_DAY_CLOSES", "17:30")
    settings = load_settings()
    assert (settings.day_opens, settings.day_closes) == (time(9, 0), time(17, 30))
    monkeypatch.setenv("PARCOURS_DAY_OPENS", "19:00")
    with pytest.raises(ConfigError, match="PARCOURS_DAY_OPENS.*PARCOURS_DAY_CLOSES"):
        load_settings()
    monkeypatch.setenv("PARCOURS_DAY_OPENS", "neuf heures")
    with pytest.raises(ConfigError, match="PARCOURS_DAY_OPENS"):
        load_settings()
