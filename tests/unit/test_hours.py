"""Working hours: parsing (and its errors) and evaluation in the agent's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omnibot.agents.hours import HoursInvalid, parse_schedule

SCHEDULE = parse_schedule("Europe/Moscow", {"mon-fri": "09:00-18:00", "sat": "10:00-14:00"}, ["2027-01-01"])


@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        (datetime(2026, 12, 2, 6, 0, tzinfo=UTC), True),  # Wed 09:00 Moscow
        (datetime(2026, 12, 2, 5, 59, tzinfo=UTC), False),  # 08:59
        (datetime(2026, 12, 2, 15, 0, tzinfo=UTC), False),  # 18:00: the end is not included
        (datetime(2026, 12, 5, 8, 0, tzinfo=UTC), True),  # Sat 11:00
        (datetime(2026, 12, 5, 11, 0, tzinfo=UTC), False),  # Sat 14:00
        (datetime(2026, 12, 6, 8, 0, tzinfo=UTC), False),  # Sunday
        (datetime(2027, 1, 1, 8, 0, tzinfo=UTC), False),  # a holiday (a Friday)
        (datetime(2026, 12, 1, 22, 30, tzinfo=UTC), False),  # Tue 23:30 UTC is Wed 01:30 Moscow
    ],
)
def test_open_in_the_agents_zone(utc: datetime, open_: bool) -> None:
    assert SCHEDULE.is_open(utc) is open_


def test_ranges_across_the_week_end_and_lists() -> None:
    s = parse_schedule("UTC", {"fri-mon": "00:00-24:00", "wed": "08:00-12:00, 13:00-17:00"})
    assert s.is_open(datetime(2026, 12, 6, 23, 59, tzinfo=UTC))  # Sunday
    assert s.is_open(datetime(2026, 12, 7, 0, 0, tzinfo=UTC))  # Monday
    assert not s.is_open(datetime(2026, 12, 8, 10, 0, tzinfo=UTC))  # Tuesday
    assert not s.is_open(datetime(2026, 12, 2, 12, 30, tzinfo=UTC))  # Wednesday lunch
    assert s.is_open(datetime(2026, 12, 2, 13, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("zone", "days", "holidays", "words"),
    [
        ("Mars/Olympus", {}, [], "unknown timezone"),
        ("UTC", {"mon": "9-18"}, [], "cannot read '9-18'"),
        ("UTC", {"mon": "18:00-09:00"}, [], "ends before it starts"),
        ("UTC", {"mon": "09:00-25:00"}, [], "not a time of day"),
        ("UTC", {"monday": "09:00-18:00"}, [], "expected day names"),
        ("UTC", {}, ["01.01.2027"], "not a date"),
    ],
)
def test_bad_hours_say_why(zone: str, days: dict[str, str], holidays: list[str], words: str) -> None:
    with pytest.raises(HoursInvalid, match=words):
        parse_schedule(zone, days, holidays)
