"""window: a change may start now, by the plan's weekly hours, deny dates and SSM Change Calendars
(cutover.model.schedule decides; this reads the calendars and turns its verdict into a gate result).

A calendar that cannot be read (denied, throttled after the client's retries, unknown) counts as
CLOSED, naming the error. With `advance --outside-window --reason TEXT` a closed window passes, but
only where the check says `allow_override: true`, and its detail says it was overridden.
"""

from __future__ import annotations

from datetime import datetime

from cutover.errors import AwsError
from cutover.model.plan import WindowCheck
from cutover.model.schedule import CalendarState, evaluate

from ._aws import code_of
from ._fail import Fail
from .context import GateContext

OVERRIDDEN = "overridden by --outside-window: "  # how a passed-while-closed detail starts


def read_calendar(ctx: GateContext, name: str, at: datetime) -> CalendarState:
    """One calendar as the window sees it; an error is kept (it counts as CLOSED)."""
    if ctx.aws.calendars is None:
        return CalendarState(name, "CLOSED", None, "no Change Calendar client")
    try:
        reading = ctx.aws.calendars.state(name, at)
    except AwsError as exc:
        return CalendarState(name, "CLOSED", None, f"{code_of(exc)}: {exc}")
    return CalendarState(name, reading.state, reading.next_transition)


def window_verdict(check: WindowCheck, ctx: GateContext):
    """The schedule's verdict now (the context's clock), with `stay_open_for` resolved against the
    phase's bake."""
    at = ctx.clock.now()
    calendars = [read_calendar(ctx, name, at) for name in check.change_calendars]
    stay, label = check.stay_open_for, "stay_open_for"
    if stay == "bake":
        stay, label = ctx.bake, "bake"
    return evaluate(check.schedule(), at, calendars, stay, label)


def check_window(check: WindowCheck, ctx: GateContext) -> str:
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
