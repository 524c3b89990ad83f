"""Working-day arithmetic (jours ouvrés): French public holidays, Europe/Paris wall clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from definitions.durations import (
    PARIS,
    Delay,
    add_working_days,
    is_working_day,
    parse_delay,
    working_days_between,
)


def paris(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PARIS)


# --- is_working_day -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 1),  # Jour de l'an
        date(2026, 4, 6),  # Lundi de Pâques
        date(2026, 5, 1),  # Fête du travail
        date(2026, 5, 8),  # Victoire 1945
        date(2026, 5, 14),  # Ascension
        date(2026, 5, 25),  # Lundi de Pentecôte
        date(2026, 7, 14),  # Fête nationale
        date(2026, 11, 11),  # Armistice
        date(2026, 12, 25),  # Noël
        date(2026, 12, 26),  # a Saturday
        date(2026, 12, 27),  # a Sunday
    ],
)
def test_non_working_days(day: date) -> None:
    assert not is_working_day(day)


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 12, 24),
        date(2026, 12, 28),
        date(2026, 5, 15),
        date(2026, 7, 13),
        date(2026, 4, 3),
    ],
)
def test_working_days(day: date) -> None:
    # 2026-04-03 is Good Friday: a holiday only in Alsace-Moselle, not in Haute-Savoie.
    assert is_working_day(day)


# --- add_working_days ---------------------------------------------------------------------------


def test_christmas_is_skipped() -> None:
    # Thursday 24 December 2026 + 2 = Tuesday 29 (Friday 25 is Christmas, then the weekend).
    assert add_working_days(paris(2026, 12, 24, 14, 30), 2) == paris(2026, 12, 29, 14, 30)
    assert add_working_days(paris(2026, 12, 24), 1) == paris(2026, 12, 28)


def test_ascension_and_whit_monday() -> None:
    # Wednesday 13 May + 1 = Friday 15 (Thursday 14 is Ascension).
    assert add_working_days(paris(2026, 5, 13), 1) == paris(2026, 5, 15)
    # Friday 22 May + 1 = Tuesday 26 (Monday 25 is Whit Monday).
    assert add_working_days(paris(2026, 5, 22), 1) == paris(2026, 5, 26)
    # The whole of May 2026 from Thursday 30 April: 1, 8, 14, 25 May are holidays.
    assert add_working_days(paris(2026, 4, 30), 10) == paris(2026, 5, 19)


def test_bastille_day() -> None:
    # Monday 13 July + 1 = Wednesday 15 (Tuesday 14 July is the national holiday).
    assert add_working_days(paris(2026, 7, 13), 1) == paris(2026, 7, 15)


def test_friday_plus_one_is_monday() -> None:
    assert add_working_days(paris(2026, 3, 13, 17), 1) == paris(2026, 3, 16, 17)
    assert add_working_days(paris(2026, 3, 13), 5) == paris(2026, 3, 20)


def test_zero_keeps_the_moment() -> None:
    assert add_working_days(paris(2026, 3, 14, 10), 0) == paris(2026, 3, 14, 10)


def test_starting_on_a_weekend() -> None:
    # Saturday + 1 = Monday; Sunday - 1 = Friday.
    assert add_working_days(paris(2026, 3, 14), 1) == paris(2026, 3, 16)
    assert add_working_days(paris(2026, 3, 15), -1) == paris(2026, 3, 13)


def test_negative_counts() -> None:
    # Monday - 1 = Friday; Tuesday 29 December - 2 = Thursday 24 (back over Christmas).
    assert add_working_days(paris(2026, 3, 16), -1) == paris(2026, 3, 13)
    assert add_working_days(paris(2026, 12, 29, 14, 30), -2) == paris(2026, 12, 24, 14, 30)
    # Friday 15 May - 1 = Wednesday 13 (Ascension skipped backwards).
    assert add_working_days(paris(2026, 5, 15), -1) == paris(2026, 5, 13)


def test_wall_clock_kept_across_dst_end() -> None:
    # Clocks go back on Sunday 25 October 2026: 09:00 CEST (UTC+2) -> 09:00 CET (UTC+1).
    before = paris(2026, 10, 23, 9)
    after = add_working_days(before, 1)
    assert after == paris(2026, 10, 26, 9)
    assert (after.hour, after.minute) == (9, 0)
    assert before.utcoffset() == timedelta(hours=2)
    assert after.utcoffset() == timedelta(hours=1)
    # Elapsed real time is one hour longer than three days.
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(days=3, hours=1)


def test_wall_clock_kept_across_dst_start() -> None:
    # Clocks go forward on Sunday 29 March 2026.
    after = add_working_days(paris(2026, 3, 27, 9), 1)
    assert after == paris(2026, 3, 30, 9)
    assert after.utcoffset() == timedelta(hours=2)


def test_utc_input_is_counted_in_paris_and_returned_in_utc() -> None:
    # 23:30 UTC on Thursday 24 December is already Friday 25 (Christmas) 00:30 in Paris.
    moment = datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    result = add_working_days(moment, 1)
    assert result.tzinfo is UTC
    assert result.astimezone(PARIS) == paris(2026, 12, 28, 0, 30)
    # Across the October DST change, the Paris wall clock (not the UTC time) is kept.
    result = add_working_days(datetime(2026, 10, 23, 7, 0, tzinfo=UTC), 1)  # 09:00 in Paris
    assert result == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


# --- working_days_between -----------------------------------------------------------------------


def test_working_days_between() -> None:
    assert working_days_between(paris(2026, 12, 24), paris(2026, 12, 29)) == 2
    assert working_days_between(paris(2026, 12, 29), paris(2026, 12, 24)) == -2
    assert working_days_between(paris(2026, 3, 13), paris(2026, 3, 16)) == 1
    assert working_days_between(paris(2026, 5, 11), paris(2026, 5, 26)) == 9
    assert working_days_between(paris(2026, 3, 16, 8), paris(2026, 3, 16, 18)) == 0


@pytest.mark.parametrize("count", [1, 2, 5, 10, 30, -1, -7])
def test_between_inverts_add(count: int) -> None:
    start = paris(2026, 12, 22, 11)
    assert working_days_between(start, add_working_days(start, count)) == count


# --- Delay parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 jours ouvrés", {"working_days": 10}),
        ("1 jour ouvré", {"working_days": 1}),
        ("10 working days", {"working_days": 10}),
        ("1 working day", {"working_days": 1}),
        ("3 wd", {"working_days": 3}),
        ("  5 Jours Ouvrés ", {"working_days": 5}),
        ("PT30S", {"seconds": 30.0}),
        ("PT2H", {"seconds": 7200.0}),
        ("P3D", {"seconds": 3 * 86400.0}),
        ("P1DT2H", {"seconds": 86400.0 + 7200.0}),
        ("pt1m30s", {"seconds": 90.0}),
    ],
)
def test_parse_delay(text: str, expected: dict[str, float]) -> None:
    assert parse_delay(text) == expected
    delay = Delay.model_validate(text)
    assert (delay.working_days, delay.seconds) == (
        expected.get("working_days"),
        expected.get("seconds"),
    )


def test_delay_from_an_integer_is_working_days() -> None:
    assert Delay.model_validate(4).working_days == 4


@pytest.mark.parametrize("text", ["10 jours", "two weeks", "P", "PT", "P1W", "", "10"])
def test_malformed_delay_text(text: str) -> None:
    with pytest.raises(ValueError, match="n'est pas un délai"):
        parse_delay(text)


@pytest.mark.parametrize("value", ["0 jours ouvrés", "-2 working days", "PT0S", "-P1D", 0, -3])
def test_delay_must_be_positive(value: object) -> None:
    with pytest.raises(ValidationError, match="positif"):
        Delay.model_validate(value)


def test_delay_add_and_subtract() -> None:
    ten = Delay.model_validate("10 jours ouvrés")
    assert str(ten) == "10 jours ouvrés"
    assert str(Delay.model_validate("1 working day")) == "1 jour ouvré"
    # Thursday 24 December 2026 + 10 working days: 25 Dec and 1 Jan are holidays -> Monday 11 Jan.
    assert ten.add_to(paris(2026, 12, 24)) == paris(2027, 1, 11)
    assert ten.subtract_from(paris(2027, 1, 11)) == paris(2026, 12, 24)
    exact = Delay.model_validate("P1DT2H")
    assert exact.add_to(paris(2026, 12, 24, 9)) == paris(2026, 12, 25, 11)
    assert exact.subtract_from(paris(2026, 12, 25, 11)) == paris(2026, 12, 24, 9)
    assert Delay.model_validate("PT30S").add_to(paris(2026, 1, 5)) == paris(2026, 1, 5, 9, 0) + timedelta(seconds=30)
