"""window: a change may start now, by the plan's weekly hours, deny dates and SSM Change Calendars
(cutover.model.schedule decides; this reads the calendars and turns its verdict into a gate result).

A calendar that cannot be read (denied, throttled after the client's retries, unknown) counts as
CLOSED, naming the error. With `advance --outside-window --reason TEXT` a closed window passes, but
only where the check says `allow_override: true`, and its detail says it was overridden.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterator

from cutover.checks.aws_faults import code_of
from cutover.checks.interface import CheckType, Fail, Need, fragment, list_of, statement, text
from cutover.checks.words import code, names
from cutover.errors import AwsError
from cutover.model.durations import format_duration


@dataclass(frozen=True)
class WindowCheck:
    """A change window (cutover.model.schedule): weekly `allow` ranges and `deny` dates in `timezone`, and SSM
    Change Calendars that must all be OPEN. `allow` empty = any time not denied."""

    name: str
    timezone: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    change_calendars: tuple[str, ...] = ()  # names or ARNs
    stay_open_for: float | str | None = None  # "bake" (the phase's) or seconds
    allow_override: bool = False  # `advance --outside-window --reason TEXT` may pass it while closed
    timeout: float = 30.0
    type: str = "window"

    def schedule(self):
        from cutover.model.schedule import parse_schedule  # the plan loader validated every entry

        return parse_schedule(self.timezone, self.allow or None, self.deny)


if TYPE_CHECKING:
    from cutover.model.schedule import CalendarState

OVERRIDDEN = "overridden by --outside-window: "  # how a passed-while-closed detail starts


def read_calendar(ctx, name: str, at: datetime) -> CalendarState:
    """One calendar as the window sees it; an error is kept (it counts as CLOSED)."""
    from cutover.model.schedule import CalendarState  # on use: loading a plan does not load time zones

    if ctx.aws.calendars is None:
        return CalendarState(name, "CLOSED", None, "no Change Calendar client")
    try:
        reading = ctx.aws.calendars.state(name, at)
    except AwsError as exc:
        return CalendarState(name, "CLOSED", None, f"{code_of(exc)}: {exc}")
    return CalendarState(name, reading.state, reading.next_transition)


def window_verdict(check: WindowCheck, ctx):
    """The schedule's verdict now (the context's clock), with `stay_open_for` resolved against the
    phase's bake."""
    at = ctx.clock.now()
    calendars = [read_calendar(ctx, name, at) for name in check.change_calendars]
    stay, label = check.stay_open_for, "stay_open_for"
    if stay == "bake":
        stay, label = ctx.bake, "bake"
    from cutover.model.schedule import evaluate

    return evaluate(check.schedule(), at, calendars, stay, label)


def _run(check: WindowCheck, ctx) -> str:
    verdict = window_verdict(check, ctx)
    if verdict.passed:
        return verdict.text
    if ctx.outside_window is not None:
        if check.allow_override:
            return f"{OVERRIDDEN}{verdict.line}"
        raise Fail(f"{verdict.line}; --outside-window does not apply: the check has no allow_override: true",
                   "wait for the window, or (if release policy allows overrides) add allow_override: true to the check")
    raise Fail(verdict.line, _next_action(check, verdict))


def _next_action(check: WindowCheck, verdict) -> str:
    if verdict.open:  # open, but closing before the bake (or stay_open_for) ends
        action = "advance after the closing, once the window has reopened for long enough"
    elif verdict.next_change is not None:
        action = f"advance when the window opens ({verdict.text.split('opens ', 1)[-1]})"
    else:
        action = "no opening is known: check the window's allow/deny entries and the change calendars"
    if check.allow_override:
        action += '; or, if this change must go now: advance --outside-window --reason "..."'
    return action


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _weekly_words(weekly: str) -> str:
    """"Mon-Thu 09:00-15:00" -> "Monday to Thursday 09:00 to 15:00"; a range past midnight says so."""
    from cutover.model.schedule import parse_weekly, weekday_number

    entry = parse_weekly(weekly)
    days, hours = weekly.split()[0], lambda m: f"{m // 60 % 24:02d}:{m % 60:02d}"
    words = " and ".join(" to ".join(_DAY_NAMES[weekday_number(d)] for d in part.split("-")) for part in days.split(","))
    end = hours(entry.end) + (" the next day" if entry.end > 24 * 60 else "")
    return f"{words} {hours(entry.start)} to {end}"


def _describe(c: WindowCheck) -> str:
    when = ("between " + "; or ".join(map(_weekly_words, c.allow))) if c.allow else "at any time"
    parts = [f"a change may start {when} ({code(c.timezone)} time)"]
    if c.deny:
        parts.append("never in " + ", ".join(code(d) for d in c.deny) + " (inclusive)")
    if c.change_calendars:
        parts.append(f"only while the SSM Change Calendar{'s' if len(c.change_calendars) > 1 else ''} "
                     f"{names(c.change_calendars)} {'are' if len(c.change_calendars) > 1 else 'is'} OPEN")
    if c.stay_open_for is not None:
        how_long = "the phase's bake" if c.stay_open_for == "bake" else format_duration(c.stay_open_for)
        parts.append(f"and it must stay open for {how_long}")
    if c.allow_override:
        parts.append("outside it only with `cutover advance --outside-window --reason TEXT` (recorded)")
    return "; ".join(parts)


class Window(CheckType):
    """Its IAM needs: GetCalendarState on its calendars (`iam`, below); the runbook lists them (`needs`)."""

    def iam(self, check: WindowCheck, arn, read_only: bool) -> list[dict]:
        if not check.change_calendars:
            return []
        return [statement("ReadChangeCalendars", ["ssm:GetCalendarState"], [arn.change_calendar(n) for n in check.change_calendars])]

    def needs(self, check: WindowCheck) -> Iterator[Need]:
        return (Need("change_calendar", n) for n in check.change_calendars)

    kind = "window"
    model = WindowCheck
    schema = fragment(
        "window",
        "window check",
        {
            "timezone": text(format="time-zone", description='an IANA time zone name, e.g. "America/Chicago" '
                             "(not an abbreviation such as PST or EST)"),
            "allow": list_of(text(format="weekly-range", description='days and hours, e.g. "Mon-Thu 09:00-15:00" '
                                   'or "Fri 22:00-02:00" (crossing midnight)'),
                              description="weekly ranges a change may start in (none: any time)"),
            "deny": list_of(text(format="deny-range", description='a date, a date-time or a range, inclusive, e.g. '
                                  '"2026-11-26..2026-11-30" or "2026-12-24 12:00..2026-12-26 23:59"'),
                             description="dates and times no change may start in (beats allow)"),
            "change_calendars": list_of(text(format="change-calendar", description="an SSM Change Calendar name or ARN"),
                                         uniqueItems=True, description="SSM Change Calendars that must all be OPEN"),
            "stay_open_for": {"type": ["string", "integer"], "format": "stay-open-for",
                              "description": "`bake` (the phase's) or a duration: refuse a phase whose window "
                              "closes sooner"},
            "allow_override": {"type": "boolean", "default": False,
                               "description": "`advance --outside-window --reason TEXT` may pass it while closed"},
        },
        ["timezone"],
        "30s",
    )

    run = staticmethod(_run)  # the gate, above
    describe = staticmethod(_describe)


TYPE = Window()
