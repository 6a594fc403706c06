"""EventBridge Scheduler expressions: parsed, checked and evaluated the way Scheduler does.

    cron(minutes hours day-of-month month day-of-week year)
        minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
        day-of-week 1-7 or SUN-SAT (1 is Sunday), year 1970-2199;
        `, - * /` everywhere but day-of-week (no `/`); `?` in exactly one of the two day fields;
        `L` (last day of the month; alone in day-of-week: Saturday, the week's last day) and
        `nW` (the weekday nearest day n, within the month) in day-of-month; `d#n` (the nth
        weekday d of the month) in day-of-week.
    rate(value unit)   value >= 1; unit minute|hour|day when value is 1, else minutes|hours|days
    at(yyyy-mm-ddThh:mm:ss)

Cron and at() are read in the schedule's time zone. Daylight saving time as Scheduler handles it:
a local time that does not exist (clocks jump forward) is skipped; a local time that occurs twice
(clocks fall back) fires once, at its first occurrence. A rate fires every fixed duration from its
start, whatever the zone (a day is 24 hours).

Pure and small on purpose: the start function loads it at cold start. Written rather than
taken from a library: on tests/unit/test_schedule.py's table, translated to their five-field
syntax (1=SUN shifted, `?` as `*`; the year field and at() cannot be said), croniter 7.0 and
cronsim 2.8 each got 30 of 36 cases right; they move a skipped local time past the jump or fire a
repeated one twice (croniter: all six misses), and cronsim raised errors on the three `W` cases.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIN_YEAR, MAX_YEAR = 1970, 2199
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # 1..7
RATE_UNITS = {"minute": 1, "hour": 60, "day": 1440}


class ScheduleError(ValueError):
    """An expression, zone or window Scheduler would refuse; the message says what to write."""


@lru_cache(maxsize=64)
def zone_of(name: str) -> tzinfo:
    """An IANA zone by name; raises ScheduleError for a name the tz database does not know."""
    if name == "UTC":
        return UTC
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def local_to_utc(naive: datetime, zone: tzinfo) -> datetime | None:
    """The instant a wall-clock time names in a zone: None if clocks skip it, the first of two
    when clocks fall back."""
    utc = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return utc


# ---- the three kinds of expression ----------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    expression: str
    minutes: int

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    def fires(self, after: datetime, zone: tzinfo, anchor: datetime) -> Iterator[datetime]:
        """Every `interval` from `anchor` (the schedule's start or creation), after `after`."""
        step = self.interval
        current = anchor if after < anchor else anchor + step * ((after - anchor) // step + 1)
        while True:
            yield current
            current += step


@dataclass(frozen=True)
class At:
    expression: str
    local: datetime  # naive wall-clock time in the schedule's zone

    def fires(self, after: datetime, zone: tzinfo, anchor: datetime) -> Iterator[datetime]:
        instant = local_to_utc(self.local, zone)
        if instant is not None and instant > after:
            yield instant


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # day-of-month values; None when the field is `?`
    last_day: bool  # day-of-month `L`
    nearest_weekday: int | None  # day-of-month `nW`
    months: tuple[int, ...]
    weekdays: frozenset[int] | None  # 1=SUN..7=SAT; None when the field is `?`
    nth_weekday: tuple[int, int] | None  # `d#n`
    years: tuple[int, ...]

    def day_matches(self, day: date) -> bool:
        if self.last_day:
            return (day + timedelta(days=1)).month != day.month
        if self.nearest_weekday is not None:
            return day == _nearest_weekday(day.year, day.month, self.nearest_weekday)
        if self.days is not None:
            return day.day in self.days
        weekday = day.isoweekday() % 7 + 1  # Monday=1 -> 2, Sunday=7 -> 1
        if self.nth_weekday is not None:
            wanted, nth = self.nth_weekday
            return weekday == wanted and (day.day - 1) // 7 + 1 == nth
        assert self.weekdays is not None
        return weekday in self.weekdays

    def fire_days(self, start: date) -> Iterator[date]:
        """The days the expression fires on, from `start` on, in order."""
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                first = start.day if (year, month) == (start.year, start.month) else 1
                for day_number in range(first, _days_in_month(year, month) + 1):
                    day = date(year, month, day_number)
                    if self.day_matches(day):
                        yield day

    def fires(self, after: datetime, zone: tzinfo, anchor: datetime) -> Iterator[datetime]:
        start = after.astimezone(zone).date() - timedelta(days=1)
        for day in self.fire_days(max(start, date(MIN_YEAR, 1, 1))):
            for hour in self.hours:
                for minute in self.minutes:
                    naive = datetime(day.year, day.month, day.day, hour, minute)
                    instant = local_to_utc(naive, zone)
                    if instant is not None and instant > after:
                        yield instant

    def shortest_gap(self, today: date) -> timedelta | None:
        """The shortest wall-clock time between two fires (within the next four years), or
        None if it fires at most once there."""
        times = [h * 60 + m for h in self.hours for m in self.minutes]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        previous: date | None = None
        for day in self.fire_days(today):
            if previous is not None:
                gaps.append((day - previous).days * 1440 - times[-1] + times[0])
            if (day - today).days > 4 * 366:
                break
            previous = day
        if not gaps or previous is None:
            return None
        return timedelta(minutes=min(gaps))


Expression = Cron | Rate | At


@dataclass(frozen=True)
class Schedule:
    """An expression with the zone it fires in and its optional [start, end] window."""

    expression: Expression
    zone: tzinfo
    start: datetime | None = None
    end: datetime | None = None

    def next_fires(
        self, after: datetime, count: int, *, created: datetime | None = None
    ) -> list[datetime]:
        """The next `count` fire times (UTC) strictly after `after`. `created` anchors a rate
        without a start (Scheduler starts a rate when the schedule is created)."""
        anchor = self.start or created or after
        lower = after if self.start is None or self.start <= after else self.start - _TICK
        out: list[datetime] = []
        for instant in self.expression.fires(lower, self.zone, anchor):
            if self.end is not None and instant > self.end:
                break
            out.append(instant)
            if len(out) >= count:
                break
        return out


_TICK = timedelta(microseconds=1)


# ---- parsing --------------------------------------------------------------------------------

_RATE = re.compile(r"rate\((\d+) ([a-z]+)\)")
_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)")
_CRON = re.compile(r"cron\((.*)\)")


def parse_expression(text: str) -> Expression:
    """Parse a schedule expression; raises ScheduleError naming the part that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("is empty; write cron(...), rate(...) or at(...)")
    if text != text.strip():
        raise ScheduleError("has spaces around it; write cron(...), rate(...) or at(...)")
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("at("):
        return _parse_at(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    raise ScheduleError(
        "must be cron(minutes hours day-of-month month day-of-week year), "
        "rate(value unit) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _parse_rate(text: str) -> Rate:
    match = _RATE.fullmatch(text)
    if not match:
        raise ScheduleError("rate(value unit): e.g. rate(1 hour), rate(15 minutes), rate(2 days)")
    value, unit = int(match.group(1)), match.group(2)
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in RATE_UNITS:
        raise ScheduleError("the rate unit is minute(s), hour(s) or day(s)")
    if value < 1:
        raise ScheduleError("the rate value must be a positive whole number")
    if value == 1 and unit != singular:
        raise ScheduleError(f"write rate(1 {singular}): a value of 1 takes the singular unit")
    if value > 1 and unit == singular:
        raise ScheduleError(f"write rate({value} {singular}s): a value above 1 takes a plural unit")
    return Rate(text, value * RATE_UNITS[singular])


def _parse_at(text: str) -> At:
    match = _AT.fullmatch(text)
    if not match:
        raise ScheduleError("at(yyyy-mm-ddThh:mm:ss): e.g. at(2027-01-31T06:00:00)")
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ScheduleError(f"at(...) is not a valid date and time: {exc}") from None
    return At(text, local)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    steps: bool = True


_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTHS),
    _Field("day-of-week", 1, 7, WEEKDAYS, steps=False),
    _Field("year", MIN_YEAR, MAX_YEAR),
)


def _parse_cron(text: str) -> Cron:
    match = _CRON.fullmatch(text)
    assert match
    parts = match.group(1).split(" ")
    if len(parts) != 6 or any(not part for part in parts):
        raise ScheduleError(
            "cron(...) has six fields separated by single spaces: minutes hours day-of-month "
            f"month day-of-week year (found {len([p for p in parts if p])})"
        )
    minute_f, hour_f, dom_f, month_f, dow_f, year_f = (p.upper() for p in parts)
    if (dom_f == "?") == (dow_f == "?"):
        raise ScheduleError(
            "cron(...): exactly one of day-of-month and day-of-week must be '?' "
            "(e.g. cron(0 6 ? * MON *) or cron(0 6 1 * ? *))"
        )
    minute_f_ = _FIELDS[0]
    days: frozenset[int] | None = None
    last_day = False
    nearest: int | None = None
    if dom_f == "L":
        last_day = True
    elif dom_f.endswith("W") and dom_f != "W":
        nearest = _number(dom_f[:-1], _FIELDS[2])
    elif dom_f != "?":
        days = frozenset(_values(dom_f, _FIELDS[2]))
    weekdays: frozenset[int] | None = None
    nth: tuple[int, int] | None = None
    if dow_f == "L":
        weekdays = frozenset({7})
    elif "#" in dow_f:
        weekday, _, which = dow_f.partition("#")
        number = _number(which, _Field("day-of-week #", 1, 5))
        nth = (_number(weekday, _FIELDS[4]), number)
    elif dow_f != "?":
        weekdays = frozenset(_values(dow_f, _FIELDS[4]))
    return Cron(
        expression=text,
        minutes=tuple(sorted(_values(minute_f, minute_f_))),
        hours=tuple(sorted(_values(hour_f, _FIELDS[1]))),
        days=days,
        last_day=last_day,
        nearest_weekday=nearest,
        months=tuple(sorted(_values(month_f, _FIELDS[3]))),
        weekdays=weekdays,
        nth_weekday=nth,
        years=tuple(sorted(_values(year_f, _FIELDS[5]))),
    )


def _values(text: str, field: _Field) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        out |= _item(item, field)
    return out


def _item(item: str, field: _Field) -> set[int]:
    base, slash, step_text = item.partition("/")
    if slash and not field.steps:
        raise ScheduleError(f"cron(...): {field.name} takes no '/' step")
    step = (
        _number(step_text, _Field(f"{field.name} step", 1, field.high - field.low + 1))
        if (slash)
        else 1
    )
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _number(first, field), _number(last, field)
        if low > high:
            raise ScheduleError(
                f"cron(...): the {field.name} range {base} goes backwards; write it low-high"
            )
    else:
        low = _number(base, field)
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def _number(text: str, field: _Field) -> int:
    if text in field.names:
        return field.names.index(text) + field.low
    if not text.isdigit() or len(text) > 4:
        allowed = f"{field.low}-{field.high}"
        if field.names:
            allowed += f" or {field.names[0]}-{field.names[-1]}"
        wildcards = "L, W, #" if field.name.startswith("day") else "*, -, /"
        raise ScheduleError(
            f"cron(...): {text or 'nothing'!r} is not a {field.name} value ({allowed}; "
            f"wildcards , {wildcards} as Scheduler allows)"
        )
    value = int(text)
    if not field.low <= value <= field.high:
        raise ScheduleError(
            f"cron(...): {field.name} {value} is out of range {field.low}-{field.high}"
        )
    return value


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _nearest_weekday(year: int, month: int, day_number: int) -> date | None:
    """Quartz's `nW`: the weekday nearest day n, never leaving the month."""
    last = _days_in_month(year, month)
    if day_number > last:
        return None
    day = date(year, month, day_number)
    if day.weekday() == 5:  # Saturday: Friday, or Monday if Friday is in the previous month
        return day - timedelta(days=1) if day_number > 1 else day + timedelta(days=2)
    if day.weekday() == 6:  # Sunday: Monday, or Friday if Monday is in the next month
        return day + timedelta(days=1) if day_number < last else day - timedelta(days=2)
    return day


# ---- what a spec asks for -------------------------------------------------------------------


def build_schedule(
    expression: str,
    zone_name: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Schedule:
    """A checked Schedule; raises ScheduleError."""
    parsed = parse_expression(expression)
    zone = zone_of(zone_name)
    if isinstance(parsed, At) and local_to_utc(parsed.local, zone) is None:
        raise ScheduleError(
            f"{expression} does not exist in {zone_name}: clocks jump forward over it"
        )
    if start is not None and end is not None and end <= start:
        raise ScheduleError("end must be after start")
    return Schedule(parsed, zone, start, end)


def shortest_interval(expression: Expression, today: date) -> timedelta | None:
    """How often an expression may fire at most (None: once, or never)."""
    if isinstance(expression, Rate):
        return expression.interval
    if isinstance(expression, Cron):
        return expression.shortest_gap(today)
    return None
