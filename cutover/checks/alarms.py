"""alarms: every named or prefixed CloudWatch alarm is OK, and has been for at least quiet_for; and
each alarm with an `expect` is configured as the plan says (threshold, comparison, period...).

An empty selection fails: a gate over no alarms would pass vacuously. INSUFFICIENT_DATA fails unless
the plan says `insufficient_data: ok`; even then the alarm must have been out of ALARM for
quiet_for (we cannot see its history, only how long it has been in its current state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import difflib
from typing import TYPE_CHECKING, Iterator

from cutover.checks.alarm_expect import AlarmExpect, differences
from cutover.checks.aws_faults import aws_fail
from cutover.checks.fmt import duration, stamp
from cutover.checks.interface import CheckType, Fail, Need, Nodes, Problem, fragment, list_of, ref, statement
from cutover.checks.metric import HIGH_RES_PERIODS
from cutover.checks.words import code, names as code_names
from cutover.errors import AwsError
from cutover.model.durations import format_duration


@dataclass(frozen=True)
class AlarmsCheck:
    name: str
    names: tuple[str, ...] = ()
    prefix: str | None = None
    quiet_for: float = 0.0
    insufficient_data: str = "fail"  # fail | ok
    expect: dict[str, AlarmExpect] = field(default_factory=dict)  # alarm name -> its expected configuration
    timeout: float = 30.0
    type: str = "alarms"


if TYPE_CHECKING:  # annotations only: importing the ports costs every plan load ~3 ms
    from cutover.ports import Alarm

MAX_NAMED = 3  # names listed per problem class before "+N more"


def _names(items: list[str], sep: str = ", ") -> str:
    head = sep.join(items[:MAX_NAMED])
    return head + (f" +{len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _run(check: AlarmsCheck, ctx) -> str:
    names = list(check.names)
    what = f"alarms {_names(names)}" if names else f"alarms with prefix {check.prefix}"
    if not names and not check.prefix:
        raise Fail("no alarm names or prefix: a gate with no alarms would pass vacuously", "list alarm names (or a prefix) in the check")
    try:
        alarms = ctx.aws.alarms.describe(names, check.prefix)
    except AwsError as exc:
        raise aws_fail(exc, what, permission="cloudwatch:DescribeAlarms") from None
    by_name: dict[str, Alarm] = {a.name: a for a in alarms}
    if not by_name:
        raise Fail(
            f"no alarms matched (prefix {check.prefix!r}); a gate with no alarms would pass vacuously",
            "check the alarm names/prefix and the region, or create the alarms, then re-run",
        )

    now = ctx.clock.now()
    allow_insufficient = check.insufficient_data == "ok"
    # An alarm named under expect (one under the prefix, say) is one the plan relies on: it must exist.
    missing = [n for n in dict.fromkeys([*names, *check.expect]) if n not in by_name]
    mismatched = [f"{n}: {d}" for n, exp in check.expect.items() if n in by_name for d in differences(exp, by_name[n])]
    firing, insufficient, settling = [], [], []
    wait_longest = 0.0
    for a in sorted(by_name.values(), key=lambda a: a.name):
        age = max((now - a.updated_at).total_seconds(), 0.0)
        if a.state == "ALARM":
            firing.append(f"{a.name} in ALARM since {stamp(a.updated_at)} ({duration(age)})")
        elif a.state == "INSUFFICIENT_DATA" and not allow_insufficient:
            insufficient.append(a.name)
        elif a.state not in ("OK", "INSUFFICIENT_DATA"):
            firing.append(f"{a.name} in unknown state {a.state}")
        elif age < check.quiet_for:
            left = check.quiet_for - age
            wait_longest = max(wait_longest, left)
            settling.append(f"{a.name} {a.state} for only {duration(age)}, quiet in {duration(left)}")

    problems, action = [], ""
    # The most urgent class decides the next action.
    if settling:
        problems.append(_names(settling, "; "))
        action = f"wait {duration(wait_longest)} for the alarms to stay quiet, then re-run"
    if insufficient:
        problems.insert(0, f"INSUFFICIENT_DATA: {_names(insufficient)}")
        action = "check the alarms' metrics are being published (new alarms start INSUFFICIENT_DATA), or set insufficient_data: ok if expected"
    if mismatched:
        problems.insert(0, _names(mismatched, "; "))
        action = ("the alarm in AWS is not the monitoring the plan relies on: fix the alarm (where it is defined, "
                  "e.g. Terraform) or, if the change was intended, the check's expect in the plan; then re-run")
    if missing:
        problems.insert(0, f"alarm not found: {_names(missing)}")
        action = "create the missing alarm or fix its name in the plan (right region?), then re-run"
    if firing:
        problems.insert(0, _names(firing, "; "))
        action = "do not advance: investigate the alarm in CloudWatch (and `cutover rollback` if the feature is live); re-run once it is OK and quiet"
    if problems:
        raise Fail("; ".join(problems), action)

    n_ins = sum(1 for a in by_name.values() if a.state == "INSUFFICIENT_DATA")
    n_ok = len(by_name) - n_ins
    counts = f"{n_ok} alarm{'s' if n_ok != 1 else ''} OK" + (f", {n_ins} INSUFFICIENT_DATA (allowed)" if n_ins else "")
    matched = f"; {len(check.expect)} configured as expected" if check.expect else ""
    return f"{counts}, quiet for >= {duration(check.quiet_for)}{matched}"


def _describe(c: AlarmsCheck) -> str:
    which = []
    if c.names:
        which.append(code_names(c.names))
    if c.prefix:
        which.append(f"every alarm named {code(c.prefix + '*')}")
    quiet = f" and quiet for {format_duration(c.quiet_for)}" if c.quiet_for else ""
    no_data = "no data (INSUFFICIENT_DATA) counts as OK" if c.insufficient_data == "ok" else "no data (INSUFFICIENT_DATA) fails"
    return f"alarms {' and '.join(which)} OK{quiet}; {no_data}"


def _expect_lines(c: AlarmsCheck) -> list[str]:
    """How each alarm must be configured (the check fails naming the field that changed in AWS)."""
    out = []
    for name, exp in c.expect.items():
        fields = []
        for key, value in exp.declared().items():
            if key == "period":
                value = format_duration(value)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            fields.append(f"{key.replace('_', ' ')} {value}")
        out.append(f"  - {code(name)} configured with {', '.join(fields)}")
    return out


class Alarms(CheckType):
    """Its IAM needs: DescribeAlarms on its names and prefix (`iam`, below; the runbook's list and the
    guard's rule take the same names from `needs`, through `iam.inventory`); the sandbox creates its alarms,
    OK and configured as `expect` says (`seed`: one alarm per name across checks)."""

    def iam(self, check: AlarmsCheck, arn, read_only: bool) -> list[dict]:
        named = dict.fromkeys((*check.names, *check.expect))  # `expect` configures alarms it may also name
        alarms = [arn.alarm(n) for n in named] + ([arn.alarm(check.prefix + "*")] if check.prefix else [])
        return [statement("DescribeGateAlarms", ["cloudwatch:DescribeAlarms"], alarms)]

    def seed(self, plan, seeder, now) -> list[str]:
        checks = self.checks_in(plan)
        names: dict[str, None] = {}
        for c in checks:
            names.update(dict.fromkeys(c.names))
            if c.prefix and not any(n.startswith(c.prefix) for n in c.names):
                names[c.prefix + "sandbox"] = None  # so a prefix-only check finds something
        expects = {n: e for c in checks for n, e in c.expect.items()}
        for name in [*names, *(n for n in expects if n not in names)]:
            seeder.put_alarm(name, "OK", expect=expects.get(name))  # configured as the plan's `expect` says
        return []

    def needs(self, check: AlarmsCheck) -> Iterator[Need]:
        yield from (Need("alarm", n) for n in (*check.names, *check.expect))
        if check.prefix:
            yield Need("alarm_prefix", check.prefix)

    kind = "alarms"
    model = AlarmsCheck
    schema = fragment(
        "alarms",
        "alarms check",
        {
            "names": list_of(ref("alarm_name"), uniqueItems=True, description="CloudWatch alarm names"),
            "prefix": ref("alarm_name", description="every alarm whose name starts with this"),
            "quiet_for": ref("duration", default=0, description="each alarm continuously OK for this long"),
            "insufficient_data": {
                "type": "string",
                "enum": ["fail", "ok"],
                "default": "fail",
                "description": "how to treat INSUFFICIENT_DATA: fail (default) or ok",
            },
            "expect": {
                "type": "object",
                "minProperties": 1,
                "description": "per alarm, how it must be configured in CloudWatch, e.g. "
                "{my-alarm: {threshold: 5, comparison: GreaterThanThreshold, period: 15m}}",
                "propertyNames": ref("alarm_name", title="alarm"),
                "additionalProperties": ref("alarm_expect"),
            },
        },
        [],
        "30s",
        anyOf=[{"required": ["names"]}, {"required": ["prefix"]}],
    )

    def value(self, key: str, node, read: Nodes) -> dict[str, AlarmExpect] | None:
        """`expect:`, each alarm's expected configuration."""
        if key != "expect":
            return None
        return {k.value: _expected(v, read) for k, v in node.value}

    def problems(self, check: AlarmsCheck, fields: dict) -> Iterator[Problem]:
        """A period under `expect` is one CloudWatch has; each alarm named there is one the check watches:
        listed in `names`, or under `prefix`."""
        for k, v in fields["expect"][1].value if "expect" in fields else ():
            period = check.expect[k.value].period
            if period is not None and period not in HIGH_RES_PERIODS and period % 60:
                node = next(pv for pk, pv in v.value if pk.value == "period")
                yield (node, ("expect", k.value, "period"), f"CloudWatch has no period of {node.value}",
                       "use 10s, 20s, 30s or whole minutes (1m, 5m, 15m, 1h)")
        for k, _ in fields["expect"][1].value if "expect" in fields else ():
            name = k.value
            if name in check.names or (check.prefix and name.startswith(check.prefix)):
                continue
            close = difflib.get_close_matches(name, list(check.names), n=1)
            tip = f"did you mean {close[0]!r}? " if close else ""
            scope = f"names{' or prefix ' + repr(check.prefix) if check.prefix else ''}"
            yield (k, ("expect",), f"alarm {name!r} is not in this check's {scope}",
                   f"{tip}add it to names, or fix the alarm name under expect")

    run = staticmethod(_run)  # the gate, above
    describe = staticmethod(_describe)
    details = staticmethod(_expect_lines)


def longest_quiet(plan) -> float:
    """The longest `quiet_for` of the plan's alarms checks (0 without one): how long freshly seeded alarms
    take to count as quiet in a sandbox."""
    return max((c.quiet_for for c in TYPE.checks_in(plan)), default=0.0)


def _expected(node, read: Nodes) -> AlarmExpect:
    fields = read.fields(node)

    def get(key: str):
        return read.scalar(fields[key][1]) if key in fields else None

    threshold = get("threshold")
    return AlarmExpect(
        threshold=float(threshold) if threshold is not None else None,
        comparison=get("comparison"),
        period=read.seconds(fields["period"][1]) if "period" in fields else None,
        evaluation_periods=get("evaluation_periods"),
        metric=get("metric"),
        namespace=get("namespace"),
    )


TYPE = Alarms()
