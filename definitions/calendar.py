"""The working calendar a pathway keeps: French public holidays as data, and working hours.

A run receives its calendar in its input (computed by the `holidays` library outside the
workflow) and carries it across continue-as-new, so upgrading that library never moves a running
pathway's deadlines nor breaks its replay. Every function here is pure: safe in workflow code.

Rules (Europe/Paris):
- a deadline of N working days falls at the closing time of the N-th working day after the day
  it starts (default 18:00);
- what a working-day clock sends (reminders, overdue notices, escalations) goes out within
  working hours (default 08:30–18:00, closing time included), else at the next opening;
- a pause moves a working-day clock by the working time it covered, not the clock time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from definitions.durations import PARIS

DEFAULT_OPENS = time(8, 30)
DEFAULT_CLOSES = time(18, 0)
YEARS_AHEAD = 4
"""A calendar covers the start year and this many more: longer than any pathway's run between
two continue-as-new, where it is refreshed."""


class WorkCalendar(BaseModel):
    """Working days and hours, as data (holidays listed for `first_year`…`last_year`)."""

    model_config = ConfigDict(frozen=True)

    first_year: int
    last_year: int
    holidays: list[date] = Field(default_factory=list, description="French public holidays, sorted")
    opens: time = DEFAULT_OPENS
    closes: time = DEFAULT_CLOSES

    @model_validator(mode="after")
    def _consistent(self) -> WorkCalendar:
        if self.last_year < self.first_year:
            raise ValueError("last_year is before first_year")
        if self.opens >= self.closes:
            raise ValueError("working hours must open before they close")
        return self

    def covers(self, year: int) -> bool:
        return self.first_year <= year <= self.last_year

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday, except public holidays."""
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, moment: datetime, count: int) -> datetime:
        """`count` working days later (earlier if negative), at the same Paris wall-clock time.
        Starting on a non-working day counts from the next (previous) working day."""
        local = moment.astimezone(PARIS)
        day, step, remaining = local.date(), (1 if count >= 0 else -1), abs(count)
        while remaining > 0:
            day += timedelta(days=step)
            if self.is_working_day(day):
                remaining -= 1
        return _at(day, local.timetz().replace(tzinfo=None), moment)

    def deadline(self, start: datetime, working_days: int) -> datetime:
        """The end (closing time) of the `working_days`-th working day after `start`'s day."""
        day = self.add_working_days(start, working_days).astimezone(PARIS).date()
        return _at(day, self.closes, start)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(PARIS)
        return self.is_working_day(local.date()) and self.opens <= local.time() <= self.closes

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself within working hours, else the next opening."""
        if self.is_open(moment):
            return moment
        local = moment.astimezone(PARIS)
        day = local.date()
        if not (self.is_working_day(day) and local.time() < self.opens):
            day += timedelta(days=1)
            while not self.is_working_day(day):
                day += timedelta(days=1)
        return _at(day, self.opens, moment)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working hours of working days between two moments (zero if end is before start)."""
        total = timedelta()
        day = start.astimezone(PARIS).date()
        last = end.astimezone(PARIS).date()
        while day <= last:
            if self.is_working_day(day):
                opening, closing = _at(day, self.opens, start), _at(day, self.closes, start)
                overlap = min(closing, end) - max(opening, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total

    def add_working_time(self, moment: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of working time after `moment` (counted in working hours only)."""
        if amount <= timedelta():
            return moment
        current, remaining = self.next_open(moment), amount
        while True:
            local = current.astimezone(PARIS)
            closing = _at(local.date(), self.closes, moment)
            available = closing - current
            if remaining <= available:
                return current + remaining
            remaining -= available
            current = self.next_open(closing + timedelta(microseconds=1))


def _at(day: date, wall_clock: time, like: datetime) -> datetime:
    """`day` at `wall_clock` in Paris, in the time zone of `like` (UTC in workflows)."""
    result = datetime.combine(day, wall_clock, tzinfo=PARIS)
    return result.astimezone(like.tzinfo) if like.tzinfo else result


def french_holidays(first_year: int, last_year: int) -> list[date]:
    """Public holidays of metropolitan France (not Alsace-Moselle) from the `holidays` library.
    Never called in workflow code: the result reaches a run as data."""
    import holidays

    return sorted(holidays.country_holidays("FR", years=range(first_year, last_year + 1)).keys())


@lru_cache(maxsize=16)
def work_calendar(
    first_year: int, *, years_ahead: int = YEARS_AHEAD, opens: time = DEFAULT_OPENS, closes: time = DEFAULT_CLOSES
) -> WorkCalendar:
    """The calendar handed to a new run (or refreshed at continue-as-new)."""
    last_year = first_year + years_ahead
    return WorkCalendar(
        first_year=first_year,
        last_year=last_year,
        holidays=french_holidays(first_year, last_year),
        opens=opens,
        closes=closes,
    )
