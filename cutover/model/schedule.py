"""Change windows and freeze calendars: may a change start at this instant, why not, and when does that change?

A `window` check is written in the plan's own time zone: weekly `allow` ranges, `deny` dates and
date-times, and the SSM Change Calendars the caller read through its AWS port (passed in here as
`CalendarState`s). This module is pure (standard library only): it parses those entries and evaluates
them at an instant the caller gives, taken from its injected clock.

Strength, strongest first: a change calendar CLOSED (or unreadable) beats everything; `deny` beats
`allow`; with no `allow` at all, every instant not denied is allowed.

Local wall times become instants by one rule, for starts and ends alike:
- a wall time that does not exist (the spring-forward gap) means the first instant after the gap: 02:30
  on the day Chicago springs forward is 03:00 CDT. So a range that ends in the gap ends when the gap
  ends, and a range lying wholly inside the gap is empty that day;
- a wall time that happens twice (the fall-back fold) means the earlier instant (fold=0), for ends too:
  `Sun 00:00-01:30` on the night Chicago falls back ends at 01:30 CDT, before the clocks go back.
All arithmetic is on aware datetimes with real UTC offsets (never "summer is +1h": Europe/Dublin's
standard time is its summer time); days are stepped in the local calendar, never by adding 24 hours.
"""

from __future__ import annotations

import bisect
import difflib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Iterable, NamedTuple, Sequence

__all__ = [
    "HORIZON", "CalendarState", "DenyRange", "Schedule", "ScheduleError", "Verdict", "WeeklyRange",
    "evaluate", "format_instant", "format_span", "local_instant", "parse_deny", "parse_schedule",
    "parse_timezone", "parse_weekly", "weekday_number",
]

HORIZON = timedelta(days=400)
"""How far ahead the next change is looked for: past it, a verdict's `next_change` is None."""

_FIRST_LOOK = timedelta(days=8)  # a weekly window changes within a week: look that far before the horizon

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NUMBERS = {name.lower(): i for names in (WEEKDAYS, _FULL_WEEKDAYS) for i, name in enumerate(names)}
_DAY_MINUTES = 24 * 60

_WEEKDAY_HINT = "write Mon, Tue, Wed, Thu, Fri, Sat or Sun"
_CLOCK_HINT = "write HH:MM in 24-hour time, 00:00 to 23:59 (24:00 only as the end of a weekly range)"
_WEEKLY_HINT = 'write days and a time range, e.g. "Mon-Thu 09:00-15:00", "Mon,Wed 10:00-12:00" or "Fri 22:00-02:00"'
_DENY_HINT = 'write a date, a date-time or a range of them, e.g. "2026-11-26", "2026-12-24 12:00" or "2026-11-26..2026-11-30"'
_ZONE_EXAMPLE = "America/Chicago"
# Abbreviations people write instead of a zone name, and the place each most often means.
_ABBREVIATIONS = {
    "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles", "MST": "America/Denver", "MDT": "America/Denver",
    "CST": "America/Chicago", "CDT": "America/Chicago", "EST": "America/New_York", "EDT": "America/New_York",
    "GMT": "Europe/London", "BST": "Europe/London", "IST": "Europe/Dublin", "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
}


class ScheduleError(ValueError):
    """A window entry that cannot be used. `message` names it in one line, `hint` says how to write it;
    `field` ("timezone", "allow" or "deny") and `index` (the entry's position in that list, None for a
    single value or the list itself) let the plan loader point at FILE:LINE:COL."""

    def __init__(self, message: str, hint: str, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.field, self.index = message, hint, field, index

    def __str__(self) -> str:
        return self.message


# --- time zones -------------------------------------------------------------------------------------


def parse_timezone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name ("America/Chicago", "Europe/Dublin", or "UTC"). Abbreviations such as
    PST or CST are refused even where the zone database has them: they are fixed offsets or ambiguous,
    and a window written in one would silently ignore daylight saving."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"{name!r} is not a time zone name", f'write an IANA name such as "{_ZONE_EXAMPLE}"', "timezone")
    if name != "UTC" and "/" not in name:
        place = _ABBREVIATIONS.get(name.upper(), _ZONE_EXAMPLE)
        raise ScheduleError(
            f'"{name}" is not an IANA time zone name',
            f'write the place, e.g. "{place}"; abbreviations such as PST, EST or CST ignore daylight saving',
            "timezone",
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _unknown_zone(name) from None


def _unknown_zone(name: str) -> ScheduleError:
    """Why `name` did not load: no zone database at all, or a name it does not have (with the nearest)."""
    known = zoneinfo.available_timezones()
    if not known:
        return ScheduleError("no time zone database on this machine", "install the tzdata package (pip install tzdata)", "timezone")
    by_lower = {zone.lower(): zone for zone in known}
    near = by_lower.get(name.lower()) or next(iter(difflib.get_close_matches(name, known, n=1)), None)
    hint = f'did you mean "{near}"? ' if near else ""
    return ScheduleError(f'"{name}" is not a known time zone', f'{hint}write an IANA name such as "{_ZONE_EXAMPLE}"', "timezone")


def local_instant(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant a naive local wall time stands for in `zone`: the first instant after the gap if
    the clocks jump over it, the earlier of the two if they go back over it."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant a spring-forward gap ends, found by halving: `wall` read with the offset from after
    the gap lands before the transition, read with the offset from before it lands after."""
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late_offset = late.astimezone(zone).utcoffset()
    while late - early > timedelta(seconds=1):
        middle = early + timedelta(seconds=int((late - early).total_seconds()) // 2)
        if middle.astimezone(zone).utcoffset() == late_offset:
            late = middle
        else:
            early = middle
    return late


# --- entries ----------------------------------------------------------------------------------------


def _parse_clock(text: str, *, may_be_24: bool = False) -> int:
    """"09:30" -> minutes after midnight. "24:00" (midnight at the end of the day) only where asked."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    minutes = int(match[1]) * 60 + int(match[2]) if match and int(match[2]) < 60 else None
    if minutes is None or minutes > _DAY_MINUTES or (minutes == _DAY_MINUTES and not may_be_24):
        raise ScheduleError(f'"{text}" is not a time of day', _CLOCK_HINT)
    return minutes


def _parse_weekday(name: str) -> int:
    """"Mon" or "monday" (any case) -> 0; an unknown name names the nearest weekday in its hint."""
    number = _WEEKDAY_NUMBERS.get(name.strip().lower())
    if number is None:
        near = difflib.get_close_matches(name.strip().lower(), _WEEKDAY_NUMBERS, n=1)
        hint = f"{_WEEKDAY_HINT} (did you mean {WEEKDAYS[_WEEKDAY_NUMBERS[near[0]]]}?)" if near else _WEEKDAY_HINT
        raise ScheduleError(f'"{name}" is not a weekday', hint)
    return number


def weekday_number(name: str) -> int:
    """"Mon", "monday" (any case) -> 0; ScheduleError for anything else."""
    return _parse_weekday(name)


def _parse_days(text: str) -> frozenset[int]:
    """"Mon-Thu", "Mon,Wed" or "Fri-Mon" (ranges go round the end of the week) -> weekday numbers."""
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        start = _parse_weekday(first)
        span = (_parse_weekday(last) - start) % 7 if dash else 0
        days.update((start + step) % 7 for step in range(span + 1))
    return frozenset(days)


@dataclass(frozen=True)
class WeeklyRange:
    """One `allow` entry. `start` and `end` are minutes after local midnight of the day the range starts
    on; `end` goes past 1440 when the range crosses midnight, so "Fri 22:00-02:00" ends Saturday."""

    text: str
    days: frozenset[int]  # 0 = Monday
    start: int
    end: int

    def on(self, day: date, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime] | None:
        """The instants [start, end) of the range starting on `day`; None if it does not start on that
        weekday or is empty that day (wholly inside a spring-forward gap)."""
        if day.weekday() not in self.days:
            return None
        midnight = datetime.combine(day, time())
        start = local_instant(midnight + timedelta(minutes=self.start), zone)
        end = local_instant(midnight + timedelta(minutes=self.end), zone)
        return (start, end) if start < end else None


def parse_weekly(text: str) -> WeeklyRange:
    """"Mon-Thu 09:00-15:00" -> a WeeklyRange. An end at or before the start crosses midnight; an end
    equal to the start is refused (it would be empty, or a whole day written ambiguously)."""
    match = re.fullmatch(r"\s*(\S+)\s+(\S+?)\s*-\s*(\S+)\s*", text)
    if not match:
        raise ScheduleError(f'"{text}" is not a weekly range', _WEEKLY_HINT)
    days = _parse_days(match[1])
    start, end = _parse_clock(match[2]), _parse_clock(match[3], may_be_24=True)
    if end == start:
        raise ScheduleError(f'"{text}" is empty: it starts and ends at {match[2]}', "for a whole day write 00:00-24:00")
    return WeeklyRange(text.strip(), days, start, end if end > start else end + _DAY_MINUTES)


@dataclass(frozen=True)
class DenyRange:
    """One `deny` entry as local wall times: from `first` (inclusive) to `after` (exclusive), `after`
    being the day or the minute after the written end, so written ends are inclusive."""

    text: str
    first: datetime
    after: datetime

    def instants(self, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
        return local_instant(self.first, zone), local_instant(self.after, zone)


def _parse_moment(text: str, *, end: bool) -> datetime:
    """"2026-11-26" or "2026-11-26 09:00" -> a naive wall time: where it starts, or (for an end) the
    day or minute after it."""
    match = re.fullmatch(r"\s*(\d{4})-(\d{2})-(\d{2})(?:\s+(\S+))?\s*", text)
    if not match:
        raise ScheduleError(f'"{text.strip()}" is not a date or a date-time', _DENY_HINT)
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ScheduleError(f'"{match[1]}-{match[2]}-{match[3]}" is not a date', "write YYYY-MM-DD, e.g. 2026-11-26") from None
    wall = datetime.combine(day, time()) + timedelta(minutes=_parse_clock(match[4]) if match[4] else 0)
    if end:
        wall += timedelta(minutes=1) if match[4] else timedelta(days=1)
    return wall


def parse_deny(text: str) -> DenyRange:
    """"2026-11-26", "2026-11-26..2026-11-30", "2026-12-24 12:00..2026-12-26 23:59" -> a DenyRange,
    inclusive of its end (the whole end day, or the whole end minute)."""
    first_text, dots, last_text = text.partition("..")
    first = _parse_moment(first_text, end=False)
    after = _parse_moment(last_text if dots else first_text, end=True)
    if after <= first:
        raise ScheduleError(
            f'"{text.strip()}" ends before it starts',
            f'write the earlier end first: "{last_text.strip()}..{first_text.strip()}"',
        )
    return DenyRange(text.strip(), first, after)


@dataclass(frozen=True)
class Schedule:
    """A parsed window: its zone, its weekly `allow` ranges (none: any time) and its `deny` entries."""

    zone: zoneinfo.ZoneInfo
    allow: tuple[WeeklyRange, ...] = ()
    deny: tuple[DenyRange, ...] = ()


def parse_schedule(timezone: str, allow: Sequence[str] | None = None, deny: Sequence[str] | None = None) -> Schedule:
    """The plan's `timezone`, `allow` and `deny` -> a Schedule; the first bad entry raises ScheduleError
    with its field and index. An empty `allow` list is refused: it would never allow anything."""
    zone = parse_timezone(timezone)
    if allow is not None and len(allow) == 0:
        raise ScheduleError("allow is empty, so no change could ever start", "remove allow to allow any time, or add a range", "allow")
    return Schedule(zone, _parse_entries("allow", allow or (), parse_weekly, _WEEKLY_HINT),
                    _parse_entries("deny", deny or (), parse_deny, _DENY_HINT))


def _parse_entries(field: str, entries: Sequence[str], parse_one, hint: str) -> tuple:
    """Parse each entry of a list, tagging a failure with the list's name and the entry's index."""
    parsed = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, str):
                raise ScheduleError(f"{entry!r} is not text", hint)
            parsed.append(parse_one(entry))
        except ScheduleError as error:
            raise ScheduleError(error.message, error.hint, field, index) from None
    return tuple(parsed)


# --- change calendars -------------------------------------------------------------------------------


class CalendarState(NamedTuple):
    """One SSM Change Calendar as the caller read it at the evaluation instant: `state` is "OPEN" or
    "CLOSED", `next_transition` when that flips (aware; None if the calendar does not say), `error` why
    it could not be read (then it counts as CLOSED). Plain 4-tuples in this order work too."""

    name: str
    state: str
    next_transition: datetime | None = None
    error: str | None = None


def _as_read_at(calendar: CalendarState, at: datetime) -> CalendarState:
    """The calendar as evaluation uses it: an unknown state is an error, error text is one line, and a
    next transition not after `at` (clock skew) is dropped, since the state was read at `at`."""
    calendar = CalendarState._make(calendar)
    state = calendar.state.upper() if isinstance(calendar.state, str) else calendar.state
    error = calendar.error
    if error is None and state not in ("OPEN", "CLOSED"):
        error = f"state {state!r} is neither OPEN nor CLOSED"
    flips = calendar.next_transition
    if flips is not None:
        _require_aware(flips, f"calendar {calendar.name} next_transition")
    return CalendarState(calendar.name, state, flips if flips is not None and flips > at else None,
                         " ".join(str(error).split()) if error is not None else None)


def _calendar_reason(calendar: CalendarState, t: datetime) -> str | None:
    """Why `calendar` keeps a change out at `t` (None if it lets it in). The state holds until the next
    transition and flips there; what follows is unknown, so that flipped state is taken to last."""
    if calendar.error is not None:
        return f"calendar {calendar.name} counted as CLOSED: {calendar.error}"
    is_open = calendar.state == "OPEN"
    if calendar.next_transition is not None and t >= calendar.next_transition:
        is_open = not is_open
    return None if is_open else f"calendar {calendar.name} CLOSED"


# --- evaluation -------------------------------------------------------------------------------------


class _Union:
    """Sorted, disjoint [start, end) instant intervals, with membership by bisection."""

    def __init__(self, intervals: Iterable[tuple[datetime, datetime]]) -> None:
        merged: list[list[datetime]] = []
        for start, end in sorted(intervals):
            if merged and start <= merged[-1][1]:  # touching or overlapping: one interval
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [start for start, _ in merged]
        self.ends = [end for _, end in merged]

    def __contains__(self, t: datetime) -> bool:
        i = bisect.bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def edges(self) -> list[datetime]:
        return self.starts + self.ends


def _local_days(first: date, last: date) -> Iterable[date]:
    """Calendar days first..last: local days stepped as dates, so a 23- or 25-hour day is one day."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


class _Timeline:
    """Everything that can close the window between `at` and `until`, as instants: the allowed
    intervals (None when there is no `allow`), the denied ones, and the calendars."""

    def __init__(self, schedule: Schedule, at: datetime, until: datetime, calendars: tuple[CalendarState, ...]) -> None:
        zone = schedule.zone
        self.allow_text = ", ".join(entry.text for entry in schedule.allow)
        self.allowed = None
        if schedule.allow:
            # From the day before: a range that started yesterday may still be running.
            days = _local_days(at.astimezone(zone).date() - timedelta(days=1), until.astimezone(zone).date())
            self.allowed = _Union(span for day in days for entry in schedule.allow if (span := entry.on(day, zone)))
        self.denied = [(*entry.instants(zone), entry.text) for entry in schedule.deny]
        self.calendars = calendars

    def reasons(self, t: datetime) -> tuple[str, ...]:
        """Why no change may start at `t`, strongest first (empty: it may)."""
        found = [reason for calendar in self.calendars if (reason := _calendar_reason(calendar, t))]
        found += [f'in deny entry "{text}"' for start, end, text in self.denied if start <= t < end]
        if self.allowed is not None and t not in self.allowed:
            found.append(f"outside the allowed hours {self.allow_text}")
        return tuple(found)

    def next_change(self, at: datetime, until: datetime) -> tuple[datetime, tuple[str, ...]] | None:
        """The first instant in (at, until] where open/closed differs from `at`, with the reasons there.
        Only interval edges and calendar transitions can change it, so only those are tried."""
        edges = {edge for start, end, _ in self.denied for edge in (start, end)}
        edges.update(calendar.next_transition for calendar in self.calendars if calendar.next_transition)
        edges.update(self.allowed.edges() if self.allowed is not None else ())
        closed_now = bool(self.reasons(at))
        for edge in sorted(edge for edge in edges if at < edge <= until):
            reasons = self.reasons(edge)
            if bool(reasons) != closed_now:
                return edge, reasons
        return None


@dataclass(frozen=True)
class Verdict:
    """The window at one instant.

    `open`: a change may start now. `reasons`: why not (empty when open). `next_change`: the next
    opening when closed, the next closing when open (None if none is known within HORIZON);
    `next_reasons`: why it is closed from then on (when open now). `text`: one line such as
    `closed: opens Tue 09:00 CST (15:00Z), in 14h02m` or `open until 15:00 CST (21:00Z)`.
    `refusal`: set when open but closing before `stay_open_for` runs out."""

    open: bool
    at: datetime
    next_change: datetime | None
    reasons: tuple[str, ...]
    next_reasons: tuple[str, ...]
    text: str
    refusal: str | None = None

    @property
    def passed(self) -> bool:
        """Open now, and staying open as long as asked."""
        return self.open and self.refusal is None

    @property
    def line(self) -> str:
        """One line for a gate result: the text, and why it is closed or will close too soon."""
        if not self.open:
            return f"{self.text} ({'; '.join(self.reasons)})"
        return f"open but {self.refusal}" if self.refusal else self.text


def evaluate(schedule: Schedule, at: datetime, calendars: Iterable[CalendarState | tuple] = (),
             stay_open_for: float | None = None, stay_label: str = "bake") -> Verdict:
    """The window at instant `at` (aware; the caller's clock). `calendars` are the change calendars'
    states as read at `at`. With `stay_open_for` (seconds; the caller resolves `bake`), an open window
    that closes before at + stay_open_for is refused, the refusal naming `stay_label`."""
    _require_aware(at, "at")
    calendars = tuple(_as_read_at(calendar, at) for calendar in calendars)
    timeline, change = _look_ahead(schedule, at, calendars)
    reasons = timeline.reasons(at)
    when, next_reasons = change if change else (None, ())
    text = _state_text(not reasons, when, schedule.zone, at)
    refusal = None
    if not reasons and when is not None and stay_open_for is not None and when < at + timedelta(seconds=stay_open_for):
        refusal = (f"closes at {format_instant(when, schedule.zone, at)}, in {_span_until(at, when)}, "
                   f"before the {format_span(stay_open_for)} {stay_label} ends (then {'; '.join(next_reasons)})")
    return Verdict(not reasons, at, when, reasons, next_reasons if not reasons else (), text, refusal)


def _look_ahead(schedule: Schedule, at: datetime, calendars: tuple[CalendarState, ...]):
    """The timeline from `at` and its next change: first over a week and a day (where a weekly window
    changes), then, only if nothing changed there, over the whole HORIZON (long deny ranges, freezes)."""
    for until in (at + _FIRST_LOOK, at + HORIZON):
        timeline = _Timeline(schedule, at, until, calendars)
        change = timeline.next_change(at, until)
        if change:
            break
    return timeline, change


def _require_aware(t: datetime, what: str) -> None:
    if not isinstance(t, datetime) or t.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {t!r}")


# --- text -------------------------------------------------------------------------------------------


def _state_text(is_open: bool, when: datetime | None, zone: zoneinfo.ZoneInfo, at: datetime) -> str:
    if when is None:
        return f"open, no closing within {HORIZON.days} days" if is_open else f"closed: no opening known within {HORIZON.days} days"
    if is_open:
        return f"open until {format_instant(when, zone, at)}"
    return f"closed: opens {format_instant(when, zone, at)}, in {_span_until(at, when)}"


def format_instant(instant: datetime, zone: zoneinfo.ZoneInfo, at: datetime) -> str:
    """An instant as a person reads it from `at`, in the zone and in UTC: "15:00 CST (21:00Z)" the same
    local day, "Tue 09:00 CST (15:00Z)" within six days, "Mon 2026-11-30 09:00 CST (15:00Z)" further.
    The UTC part names its weekday when UTC is on another date: "Fri 22:00 CST (Sat 04:00Z)"."""
    local, utc = instant.astimezone(zone), instant.astimezone(UTC)
    days_ahead = (local.date() - at.astimezone(zone).date()).days
    weekday = WEEKDAYS[local.weekday()]
    day = "" if days_ahead == 0 else f"{weekday} " if 0 < days_ahead < 7 else f"{weekday} {local:%Y-%m-%d} "
    utc_day = "" if utc.date() == local.date() else f"{WEEKDAYS[utc.weekday()]} "
    return f"{day}{local:%H:%M} {local.tzname()} ({utc_day}{utc:%H:%M}Z)"


def format_span(seconds: float) -> str:
    """5400 -> "1h30m", 50520 -> "14h02m", 7200 -> "2h", 45 -> "45s", 0 -> "0s": the largest unit
    plain, the others two digits, zero units at the end left off (whole seconds, rounded down)."""
    left = int(seconds)
    counts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        counts.append((count, unit))
    while counts and counts[-1][0] == 0:
        counts.pop()
    while counts and counts[0][0] == 0:
        counts.pop(0)
    if not counts:
        return "0s"
    return "".join(f"{count}{unit}" if i == 0 else f"{count:02d}{unit}" for i, (count, unit) in enumerate(counts))


def _span_until(at: datetime, when: datetime) -> str:
    """How long from `at` to `when`, to the minute (to the second under a minute)."""
    seconds = int((when - at).total_seconds())
    return format_span(seconds if seconds < 60 else seconds - seconds % 60)
