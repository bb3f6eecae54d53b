"""The working-day calendar: weekends, public holidays and the swapped
working days (调休) a government announces each year.

The calendar is data, not code: ``WorkingCalendar.from_mapping`` reads the
parsed TOML (see ``lianxin/config/calendar_cn.toml``); reading the file is
the caller's business, because this package does no I/O.

Working-day arithmetic counts whole local days: "N working days after t" ends
at the end (24:00 local) of the N-th working day after t's local date, which
is what "answered by the next working day" means to a caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from domain.errors import InvalidValue

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# A guard against a calendar with no working day at all (every day a holiday)
# turning a deadline computation into an endless loop.
MAX_SCAN_DAYS = 3660


@dataclass(frozen=True)
class WorkingCalendar:
    timezone: str = "Asia/Shanghai"
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # 调休: weekend days worked
    name: str = "default"
    years: tuple[int, ...] = field(default=())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any],
                     timezone: str = "Asia/Shanghai") -> WorkingCalendar:
        weekend_names = data.get("weekend", ["saturday", "sunday"])
        try:
            weekend = frozenset(WEEKDAYS.index(str(d).lower()) for d in weekend_names)
        except ValueError:
            raise InvalidValue(f"weekend days must be among {WEEKDAYS}", field="weekend") from None
        holidays: set[date] = set()
        workdays: set[date] = set()
        years = data.get("years", {}) or {}
        for year, spec in years.items():
            holidays |= {_day(d, f"years.{year}.holidays") for d in spec.get("holidays", [])}
            workdays |= {_day(d, f"years.{year}.workdays") for d in spec.get("workdays", [])}
        both = holidays & workdays
        if both:
            raise InvalidValue(f"days listed both as holiday and workday: {sorted(both)}",
                               field="years")
        return cls(timezone=str(data.get("timezone", timezone)), weekend=weekend,
                   holidays=frozenset(holidays), workdays=frozenset(workdays),
                   name=str(data.get("name", "default")),
                   years=tuple(sorted(int(y) for y in years)))

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def local_date(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    def is_working_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekend

    def start_of_day(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz)

    def end_of_day(self, day: date) -> datetime:
        """24:00 local: the first instant of the next day."""
        return self.start_of_day(day + timedelta(days=1))

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        d = day
        for _ in range(MAX_SCAN_DAYS):
            d += timedelta(days=1)
            if self.is_working_day(d):
                return d
        raise InvalidValue("the calendar has no working day in ten years", field="calendar")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """End of the ``days``-th working day after ``start``'s local date
        (0: end of the start day if it is a working day, else of the next)."""
        if days < 0:
            raise InvalidValue("working days must not be negative", field="days")
        d = self.local_date(start)
        if days == 0:
            return self.end_of_day(d if self.is_working_day(d) else self.next_working_day(d))
        for _ in range(days):
            d = self.next_working_day(d)
        return self.end_of_day(d)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        n, d = 0, start
        while d < end:
            d += timedelta(days=1)
            n += self.is_working_day(d)
        return n

    # Pausing a working-day clock keeps the *working* time that was left, so
    # a clock paused over a weekend does not lose two days of the promise.
    def working_seconds_between(self, start: datetime, end: datetime) -> float:
        if end <= start:
            return 0.0
        total = 0.0
        for day, lo, hi in self._day_slices(start, end):
            if self.is_working_day(day):
                total += (hi - lo).total_seconds()
        return total

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        remaining = max(0.0, seconds)
        cursor = start.astimezone(self.tz)
        for _ in range(MAX_SCAN_DAYS):
            day = cursor.date()
            day_end = self.end_of_day(day)
            if self.is_working_day(day):
                room = (day_end - cursor).total_seconds()
                if remaining <= room:
                    return cursor + timedelta(seconds=remaining)
                remaining -= room
            cursor = day_end
        raise InvalidValue("the calendar has no working day in ten years", field="calendar")

    def _day_slices(self, start: datetime,
                    end: datetime) -> Iterable[tuple[date, datetime, datetime]]:
        cursor = start.astimezone(self.tz)
        end = end.astimezone(self.tz)
        while cursor < end:
            day_end = self.end_of_day(cursor.date())
            hi = min(day_end, end)
            yield cursor.date(), cursor, hi
            cursor = hi

    def covers(self, day: date) -> bool:
        """Whether the data file lists this year at all (an unlisted year is
        computed with weekends only: worth a warning to the administrator)."""
        return not self.years or day.year in self.years

    def missing_years(self, start: datetime, end: datetime) -> list[int]:
        """The years between two instants (local dates, both included) that
        the data file does not list: working days counted there know the
        weekends but none of that year's holidays or 调休 days."""
        first, last = self.local_date(start).year, self.local_date(end).year
        return [y for y in range(first, last + 1) if not self.covers(date(y, 1, 1))]


def _day(value: Any, field_name: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidValue(f"{field_name}: {value!r} is not a YYYY-MM-DD date",
                           field=field_name) from None
