"""Delays in definitions: working days (Europe/Paris, French public holidays) or exact ISO 8601.

Pure functions, safe to call from workflow code: they only compute from their arguments.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, model_validator

if TYPE_CHECKING:
    from definitions.calendar import WorkCalendar

PARIS = ZoneInfo("Europe/Paris")

_WORKING_DAYS = re.compile(r"^\s*(?P<n>-?\d+)\s*(working days?|jours? ouvrés?|wd)\s*$", re.IGNORECASE)
_ISO = re.compile(
    r"^P(?!$)(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class Delay(BaseModel):
    """A delay: either `working_days` (calendar-aware) or `seconds` (exact). Written in YAML as
    "10 working days" / "10 jours ouvrés" or an ISO 8601 duration such as "PT30S" or "P2D"."""

    working_days: int | None = None
    seconds: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_delay(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return {"working_days": value}
        return value

    @model_validator(mode="after")
    def _positive(self) -> Delay:
        if (self.working_days is None) == (self.seconds is None):
            raise ValueError("donnez soit des jours ouvrés, soit une durée ISO 8601")
        if (self.working_days is not None and self.working_days <= 0) or (
            self.seconds is not None and self.seconds <= 0
        ):
            raise ValueError("un délai doit être positif (zéro ou négatif donné)")
        return self

    def __str__(self) -> str:
        if self.working_days is not None:
            return f"{self.working_days} jour{'s' if self.working_days > 1 else ''} ouvré{'s' if self.working_days > 1 else ''}"
        return f"{self.seconds:g} s"

    def add_to(self, moment: datetime, calendar: WorkCalendar | None = None) -> datetime:
        """moment + this delay, in working days of `calendar` (a run's own) or of the installed
        `holidays` library (runs started on 1.0.0, which have no calendar)."""
        if self.seconds is not None:
            return moment + timedelta(seconds=self.seconds)
        assert self.working_days is not None
        if calendar is not None:
            return calendar.add_working_days(moment, self.working_days)
        return add_working_days(moment, self.working_days)

    def subtract_from(self, moment: datetime, calendar: WorkCalendar | None = None) -> datetime:
        """moment - this delay."""
        if self.seconds is not None:
            return moment - timedelta(seconds=self.seconds)
        assert self.working_days is not None
        if calendar is not None:
            return calendar.add_working_days(moment, -self.working_days)
        return add_working_days(moment, -self.working_days)


MAX_WORKING_DAYS = 500
"""The longest delay in working days a definition or a GTO extension may give (about two years)."""
MAX_DAYS = 730
"""The longest exact (ISO 8601) delay, in days: P730D."""
TOO_LONG = f"délai trop long : au plus {MAX_WORKING_DAYS} jours ouvrés ou P{MAX_DAYS}D (environ deux ans)"


def too_long(delay: Delay | None) -> bool:
    """Whether a delay exceeds the two-year limit (definitions and GTO extensions)."""
    if delay is None:
        return False
    if delay.working_days is not None:
        return delay.working_days > MAX_WORKING_DAYS
    return delay.seconds is not None and delay.seconds > MAX_DAYS * 86400


def parse_delay(text: str) -> dict[str, float | int]:
    """Parse "N working days" / "N jours ouvrés" or an ISO 8601 duration (days, hours, minutes,
    seconds); raise ValueError naming the accepted forms otherwise."""
    text = text.strip()
    if match := _WORKING_DAYS.match(text):
        return {"working_days": int(match["n"])}
    if text.startswith("-"):
        raise ValueError(f"un délai doit être positif : {text!r}")
    if (match := _ISO.match(text.upper())) and any(match.groupdict().values()):
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        seconds = parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
        return {"seconds": seconds}
    raise ValueError(
        f"{text!r} n'est pas un délai : écrivez « 10 jours ouvrés » (ou '10 working days') "
        "ou une durée ISO 8601 comme PT30S, PT2H, P3D"
    )


@lru_cache(maxsize=64)
def _compute_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=year).keys())


# Computed at import, outside any workflow sandbox (the holidays library reads the locale, which
# the sandbox forbids); years outside this range are computed on demand.
_PRECOMPUTED = {year: _compute_holidays(year) for year in range(2020, 2071)}


def _french_holidays(year: int) -> frozenset[date]:
    return _PRECOMPUTED.get(year) or _compute_holidays(year)


def is_working_day(day: date) -> bool:
    """Monday to Friday, except French public holidays."""
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def add_working_days(moment: datetime, count: int) -> datetime:
    """Move `count` working days forward (or back, if negative) in Europe/Paris, keeping the
    wall-clock time. Starting on a non-working day counts from the next (previous) working day."""
    local = moment.astimezone(PARIS)
    day = local.date()
    step = 1 if count >= 0 else -1
    remaining = abs(count)
    while remaining > 0:
        day += timedelta(days=step)
        if is_working_day(day):
            remaining -= 1
    result = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=PARIS)
    return result.astimezone(moment.tzinfo) if moment.tzinfo else result


def working_days_between(start: datetime, end: datetime) -> int:
    """Whole working days from start to end (negative if end is before start)."""
    first, last = start.astimezone(PARIS).date(), end.astimezone(PARIS).date()
    sign = 1
    if last < first:
        first, last, sign = last, first, -1
    days = 0
    day = first
    while day < last:
        day += timedelta(days=1)
        if is_working_day(day):
            days += 1
    return sign * days
