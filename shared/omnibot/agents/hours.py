"""Working hours of an agent: parsing the agent-level `working_hours` and asking "open at `now`?".

`{"timezone": "Europe/Moscow", "days": {"mon-fri": "09:00-18:00", "sat": "10:00-14:00"},
"holidays": ["2027-01-01"]}`: days are a day name (`mon` .. `sun`), a range (`mon-fri`, also across
the week end: `fri-mon`) or a comma list of those; a value is one or more `HH:MM-HH:MM` ranges
separated by commas (`24:00` ends a day; an empty string closes the day); a day not named is
closed; a holiday is closed all day. Time zones come from the IANA database (`zoneinfo`, with the
`tzdata` package so it works where the system has none). Pure: `now` is a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class HoursInvalid(ValueError):
    """`working_hours` cannot be understood; the message says which part and why."""


class Schedule(msgspec.Struct, frozen=True):
    """Parsed working hours: per weekday (0 = Monday) the open minute ranges [start, end)."""

    timezone: str
    week: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[date]

    def is_open(self, now: datetime) -> bool:
        """Whether `now` (an aware datetime; naive is taken as UTC) falls within working hours."""
        local = (now if now.tzinfo is not None else now.replace(tzinfo=ZoneInfo("UTC"))).astimezone(
            ZoneInfo(self.timezone)
        )
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])


def parse_schedule(timezone: str, days: Mapping[str, str], holidays: Sequence[str] = ()) -> Schedule:
    """Parse working hours; raises `HoursInvalid` naming the bad field."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursInvalid(f"unknown timezone {timezone!r} (an IANA name such as 'Europe/Moscow')") from None
    week: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for key, value in days.items():
        for day in _days(key):
            week[day].extend(_ranges(key, value))
    parsed_holidays: set[date] = set()
    for text in holidays:
        try:
            parsed_holidays.add(date.fromisoformat(text))
        except (TypeError, ValueError):
            raise HoursInvalid(f"holiday {text!r} is not a date (YYYY-MM-DD)") from None
    return Schedule(
        timezone=timezone,
        week=tuple(tuple(sorted(ranges)) for ranges in week),
        holidays=frozenset(parsed_holidays),
    )


def _days(key: str) -> list[int]:
    found: list[int] = []
    for part in key.split(","):
        names = [n.strip().lower() for n in part.split("-")]
        if len(names) > 2 or any(n not in DAYS for n in names):
            raise HoursInvalid(f"days {key!r}: expected day names {'/'.join(DAYS)}, a range like mon-fri")
        first, last = DAYS.index(names[0]), DAYS.index(names[-1])
        span = (last - first) % 7
        found.extend((first + i) % 7 for i in range(span + 1))
    return found


def _ranges(key: str, value: str) -> list[tuple[int, int]]:
    if not isinstance(value, str):
        raise HoursInvalid(f"days.{key}: expected a string like '09:00-18:00'")
    ranges: list[tuple[int, int]] = []
    for part in value.split(","):
        if not part.strip():
            continue
        found = _RANGE.match(part)
        if found is None:
            raise HoursInvalid(f"days.{key}: cannot read {part.strip()!r} (expected HH:MM-HH:MM)")
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise HoursInvalid(f"days.{key}: {part.strip()!r} is not a time of day")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise HoursInvalid(
                f"days.{key}: {part.strip()!r} ends before it starts (split a night across two days)"
            )
        ranges.append((start, end))
    return ranges


def clock(minute: int) -> str:
    """A minute of the day as HH:MM (for messages and the agent try command)."""
    return time(minute // 60, minute % 60).strftime("%H:%M") if minute < 1440 else "24:00"
