"""log_freshness and log_absent: CloudWatch Logs events matched in Python.

The filter pattern sent to AWS is only a coarse pre-filter (fewer events over the wire); the real
match (substring, or JSON key/values) is always done here, so a loose pattern can never make a
check pass. Event contents are never reported, only their times.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from cutover.checks.aws_faults import aws_fail
from cutover.checks.fmt import duration, stamp
from cutover.checks.interface import CheckType, Fail, Need, fragment, ref, statement, text
from cutover.checks.words import code, safe
from cutover.errors import AwsError
from cutover.model.durations import format_duration


@dataclass(frozen=True)
class LogFreshnessCheck:
    name: str
    log_group: str
    max_age: float
    json_match: dict | None = None  # exactly one of json_match / contains
    contains: str | None = None
    timeout: float = 30.0
    type: str = "log_freshness"


@dataclass(frozen=True)
class LogAbsentCheck:
    name: str
    log_group: str
    window: float
    contains: str | None = None  # exactly one of contains / json_match
    json_match: dict | None = None
    timeout: float = 30.0
    type: str = "log_absent"


if TYPE_CHECKING:  # annotations only: importing the ports costs every plan load ~3 ms
    from cutover.ports import LogEvent

LOOKBACK = 7 * 86400.0  # how far back a failed freshness check looks to say how old the newest match is
LOOKBACK_STEP = 86400.0  # searched newest day first, so the usual answer costs one more call
LOOKBACK_BUDGET = 0.8  # share of the check's timeout the look-back may use before it stops early
_SIMPLE_LITERAL = re.compile(r"^[A-Za-z0-9_.:+-]+$")  # serialises the same in any JSON encoder

# Lines that look like a run but mean "switched off"; named in a freshness failure.
DISABLED_MARKERS = ({"refresh_attempted": False, "refresh_error": "refresh_disabled"},)


# --- matching -----------------------------------------------------------------------------------

def json_of(message: str) -> dict | None:
    """The JSON object in a log line, which may carry a prefix ("<time> <request id> {...}")."""
    i = message.find("{")
    if i < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(message, i)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def values_equal(expected, actual) -> bool:
    """Plan value vs JSON value. Booleans only equal booleans (1 is not true); a plan string also
    matches a JSON scalar with the same text ("200" matches 200, "true" matches true)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        if isinstance(expected, str):
            return json.dumps(actual) == expected
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, str):
        if isinstance(actual, str):
            return actual == expected
        return isinstance(actual, (int, float)) and json.dumps(actual) == expected
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and actual == expected
    return expected == actual


def json_matches(expected: dict, message: str) -> bool:
    obj = json_of(message)
    return obj is not None and all(k in obj and values_equal(v, obj[k]) for k, v in expected.items())


def matcher(check) -> Callable[[str], bool]:
    if check.json_match:
        expected = dict(check.json_match)
        return lambda m: json_matches(expected, m)
    if check.contains:
        text = check.contains
        return lambda m: text in m
    raise Fail("neither contains nor json_match is set: nothing to match", "fix the check in the plan")


def filter_pattern(check) -> str:
    """A coarse CloudWatch pattern: a quoted literal that every real match must contain, or ""."""
    if check.json_match:
        # Booleans and numbers are left out: `true` alone narrows little and its tokenisation varies.
        for v in check.json_match.values():
            if isinstance(v, str) and _SIMPLE_LITERAL.match(v):
                return f'"{v}"'
        return ""
    text = check.contains or ""
    return f'"{text}"' if text and '"' not in text and "\\" not in text else ""


# --- reading ------------------------------------------------------------------------------------

def _events(ctx, check, start: datetime, end: datetime) -> Iterator[LogEvent]:
    """Stream events; the port pages lazily and may raise mid-iteration, so errors are mapped here."""
    group = check.log_group
    try:
        yield from ctx.aws.logs.events(group, start, end, filter_pattern(check))
    except AwsError as exc:
        raise aws_fail(
            exc,
            f"log group {group}",
            not_found=(
                f"log group {group} not found",
                f"check log_group in the plan and the region, or create the group ({group}), then re-run",
            ),
            permission="logs:FilterLogEvents",
        ) from None


@dataclass
class Scan:
    newest: datetime | None = None  # newest matching event
    count: int = 0
    disabled: datetime | None = None  # newest "switched off" line seen


def scan(events: Iterable[LogEvent], match: Callable[[str], bool], start: datetime, end: datetime) -> Scan:
    """One pass over the events; anything outside [start, end] is ignored whatever the port returned."""
    out = Scan()
    for ev in events:
        if not start <= ev.timestamp <= end:
            continue
        if match(ev.message):
            out.count += 1
            if out.newest is None or ev.timestamp > out.newest:
                out.newest = ev.timestamp
        elif any(json_matches(m, ev.message) for m in DISABLED_MARKERS):
            if out.disabled is None or ev.timestamp > out.disabled:
                out.disabled = ev.timestamp
    return out


def _age(now: datetime, t: datetime) -> float:
    return max((now - t).total_seconds(), 0.0)


# --- checks -------------------------------------------------------------------------------------

def _newest_before(ctx, check, match, since: datetime, deadline: float) -> tuple[datetime | None, str]:
    """Look back from `since`, one day at a time, newest first: (newest match, how far we searched)."""
    now, end = ctx.clock.now(), since
    limit = now - timedelta(seconds=LOOKBACK)
    while end > limit:
        start = max(end - timedelta(seconds=LOOKBACK_STEP), limit)
        newest = scan(_events(ctx, check, start, end), match, start, end).newest
        if newest is not None:
            return newest, ""
        end = start
        if end > limit and ctx.clock.monotonic() > deadline:
            return None, f"none in the last {duration(_age(now, end))} (look-back stopped at the timeout)"
    return None, f"none in the last {duration(LOOKBACK)}"


def _fresh(check: LogFreshnessCheck, ctx) -> str:
    deadline = ctx.clock.monotonic() + LOOKBACK_BUDGET * check.timeout
    match = matcher(check)
    now = ctx.clock.now()
    since = now - timedelta(seconds=check.max_age)
    recent = scan(_events(ctx, check, since, now), match, since, now)
    limit = duration(check.max_age)
    if recent.newest is not None:
        return f"last success {duration(_age(now, recent.newest))} ago (max {limit})"

    older, searched = _newest_before(ctx, check, match, since, deadline)
    age = f"newest is {duration(_age(now, older))} old" if older else searched
    detail = f"no success within {limit} in {check.log_group}; {age}"
    action = f"check the job writing to {check.log_group} runs and succeeds (schedule, errors in its log); re-run after a success"
    if recent.disabled is not None:
        detail += f"; refresh is disabled (refresh_error=refresh_disabled at {stamp(recent.disabled)})"
        action = "refresh is switched off: re-enable it, trigger one run, and re-run preflight after it succeeds"
    raise Fail(detail, action)


def _absent(check: LogAbsentCheck, ctx) -> str:
    match = matcher(check)
    now = ctx.clock.now()
    window = duration(check.window)
    start = now - timedelta(seconds=check.window)
    found = scan(_events(ctx, check, start, now), match, start, now)
    if found.newest is None:
        return f"no match in the last {window}"
    plural = "s" if found.count != 1 else ""
    raise Fail(
        f"{found.count} matching event{plural} in the last {window}; newest at {stamp(found.newest)} "
        f"({duration(_age(now, found.newest))} ago)",
        f"open {check.log_group} around {stamp(found.newest)} (CloudWatch Logs Insights) to see what matched; "
        "resolve it before advancing",
    )


_LOG_MATCH = {
    "json_match": {
        "type": "object",
        "minProperties": 1,
        "description": "fields a JSON log line must have, e.g. {refresh_succeeded: true}",
    },
    "contains": text(minLength=1, description="text the log line must contain"),
}
_ONE_MATCH = [{"required": ["json_match"]}, {"required": ["contains"]}]


def _match(c: LogFreshnessCheck | LogAbsentCheck) -> str:
    if c.json_match is not None:
        return "matching " + code(safe(json.dumps(c.json_match, sort_keys=True)))
    return "containing " + code(safe(c.contains or ""))


class _LogSearch(CheckType):
    """What both log types share: they search one group with FilterLogEvents."""

    def iam(self, check: LogFreshnessCheck | LogAbsentCheck, arn, read_only: bool) -> list[dict]:
        return [statement("SearchGateLogGroups", ["logs:FilterLogEvents"], [arn.log_group(check.log_group)])]

    def needs(self, check: LogFreshnessCheck | LogAbsentCheck) -> Iterator[Need]:
        yield Need("log_group", check.log_group)


# --- the sandbox's log events ----------------------------------------------------------------------------

# The newest timestamp CloudWatch Logs (and moto) accept, less a margin.
MAX_LOG_LEAD = timedelta(hours=2) - timedelta(minutes=5)


def _seeded_message(c: LogFreshnessCheck | LogAbsentCheck) -> str:
    """The event the sandbox writes for a freshness check; what a log_absent check would count."""
    return json.dumps(c.json_match) if c.json_match is not None else (c.contains or "")


class LogFreshness(_LogSearch):
    """Its IAM needs: FilterLogEvents on its group (`_LogSearch.iam`); the sandbox writes its marker event
    (`seed`, and `refresh` after a rehearsal fast-forwards its clock)."""

    def seed(self, plan, seeder, now: datetime) -> list[str]:
        """The markers, and a warning for each that a log_absent check on its group would count."""
        self.refresh(plan, seeder, now)
        absent = ABSENT.checks_in(plan)
        return [f"log group {fresh.log_group}: the event seeded for {fresh.name} also matches {c.name}"
                for fresh in self.checks_in(plan) for c in absent
                if c.log_group == fresh.log_group and _seeded_message(c) in _seeded_message(fresh)]

    def refresh(self, plan, seeder, now: datetime) -> None:
        """A fresh matching event for every check, a few minutes before `now` (as the real scheduled jobs
        would). moto, like AWS, drops events more than 2 h ahead of the real time, so a marker for a clock
        further ahead is written at the newest accepted time instead: the gate still measures its true age
        from `now`, and passes while that age is under max_age."""
        newest = datetime.now(timezone.utc) + MAX_LOG_LEAD
        for c in self.checks_in(plan):
            age = min(timedelta(minutes=5), timedelta(seconds=c.max_age / 2))  # always well inside max_age
            seeder.put_log_event(c.log_group, _seeded_message(c), min(now - age, newest))

    kind = "log_freshness"
    model = LogFreshnessCheck
    schema = fragment(
        "log_freshness",
        "log_freshness check",
        {
            "log_group": ref("log_group"),
            "max_age": ref("positive_duration", description="the newest match must be younger than this"),
            **_LOG_MATCH,
        },
        ["log_group", "max_age"],
        "30s",
        oneOf=_ONE_MATCH,
    )

    run = staticmethod(_fresh)  # the gate, above

    def describe(self, check: LogFreshnessCheck) -> str:
        return f"a log event {_match(check)} in {code(check.log_group)} within the last {format_duration(check.max_age)}"


class LogAbsent(_LogSearch):
    """Its IAM needs: FilterLogEvents on its group (`_LogSearch.iam`); the sandbox creates its (empty) group
    (`seed`)."""

    def seed(self, plan, seeder, now: datetime) -> list[str]:
        for group in dict.fromkeys(c.log_group for c in self.checks_in(plan)):
            seeder.put_log_group(group)
        return []

    kind = "log_absent"
    model = LogAbsentCheck
    schema = fragment(
        "log_absent",
        "log_absent check",
        {
            "log_group": ref("log_group"),
            "window": ref("positive_duration", description="how far back to look"),
            **_LOG_MATCH,
        },
        ["log_group", "window"],
        "30s",
        oneOf=_ONE_MATCH,
    )

    run = staticmethod(_absent)  # the gate, above

    def describe(self, check: LogAbsentCheck) -> str:
        return f"no log event {_match(check)} in {code(check.log_group)} in the last {format_duration(check.window)}"


FRESHNESS, ABSENT = LogFreshness(), LogAbsent()
