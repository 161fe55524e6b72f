"""metric: a rate (bad/total) or a value read from CloudWatch and judged by `cutover.stats`.

One GetMetricData request per evaluation: every query, over one span from the earliest baseline
window to the end of the judged window; cutover cuts the span into the window and each offset's
shifted window itself. The window ends `settle` before the (injected) clock's now, on a period
boundary. Four outcomes: PASS, FAIL, INCONCLUSIVE (not enough data) and ERROR (the read failed).
INCONCLUSIVE blocks unless the check says `inconclusive: pass` (and the detail then says so); FAIL and
ERROR always block. Every figure goes into the result's `data` (evidence and --json).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from typing import TYPE_CHECKING, Any, Callable, Iterator

from cutover import stats
from cutover.checks.aws_faults import aws_fail
from cutover.checks.interface import CheckType, Fail, Nodes, Passed, Problem, fragment, ref, statement
from cutover.checks.words import code, safe
from cutover.errors import AwsError
from cutover.model.durations import format_duration
from cutover.model.metrics import MetricQuery


@dataclass(frozen=True)
class MetricBaseline:
    """The same window shifted back by each offset (seconds); their counts are pooled."""

    offsets: tuple[float, ...]
    worse_by: float = 0.0
    confidence: float = 0.99


@dataclass(frozen=True)
class MetricCheck:
    """A rate (bad/total, with max_rate and/or a baseline) or a value (with max, min, max_ratio)."""

    name: str
    bad: MetricQuery | None = None
    total: MetricQuery | None = None
    value: MetricQuery | None = None
    window: float = 1800.0  # the window judged; it ends `settle` before now
    settle: float = 120.0
    period: float = 60.0
    min_total: int = 1
    max_rate: float | None = None
    baseline: MetricBaseline | None = None
    max: float | None = None
    min: float | None = None
    max_ratio: float | None = None
    inconclusive: str = "fail"  # fail | pass
    timeout: float = 30.0
    type: str = "metric"

    @property
    def is_rate(self) -> bool:
        return self.total is not None


if TYPE_CHECKING:  # annotations only: importing the ports costs every plan load ~3 ms
    from cutover.ports import AwsPorts, Datapoints

PERMISSION = "cloudwatch:GetMetricData"
_ACTIONS = {
    stats.FAIL: "do not advance: the metric is worse than the plan allows; investigate it (and `cutover rollback` "
                "if the feature is live), then re-run",
    stats.INCONCLUSIVE: "not enough data to judge: check the metric names, dimensions and region, wait for more "
                        "traffic, or set inconclusive: pass on the check to let no-data through",
}


def window_for(check: MetricCheck, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): `window` long, ending `settle` before now, on a period boundary (UTC)."""
    period = int(check.period)
    end_s = int((now - timedelta(seconds=check.settle)).timestamp()) // period * period
    end = datetime.fromtimestamp(end_s, tz=timezone.utc)
    return end - timedelta(seconds=check.window), end


def _queries(check: MetricCheck) -> dict:
    return {"bad": check.bad, "total": check.total} if check.is_rate else {"value": check.value}


def _offsets(check: MetricCheck) -> tuple[float, ...]:
    return check.baseline.offsets if check.baseline else ()


def _within(points: Datapoints, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    return [(t, v) for t, v in points if start <= t < end]


def fetch(check: MetricCheck, aws: AwsPorts, start: datetime, end: datetime) -> dict[str, Datapoints]:
    """Every query of the check over [start - the longest offset, end), in one request."""
    if aws.metrics is None:
        raise AwsError("no CloudWatch metrics client", "run with AWS access (cutover reads GetMetricData)",
                       code="NoMetricsClient")
    earliest = start - timedelta(seconds=max(_offsets(check), default=0.0))
    return aws.metrics.get_data(_queries(check), earliest, end, int(check.period))


def judge(check: MetricCheck, data: dict[str, Datapoints], start: datetime, end: datetime, *,
          bake_periods: int | None = None) -> stats.Judgement:
    """Cut the fetched span into the window and the baseline windows and judge them. With `bake_periods`
    the rate is judged sequentially (`stats.watch_rate`, for a bake's polls) instead of once."""
    shifted = [(start - timedelta(seconds=o), end - timedelta(seconds=o)) for o in _offsets(check)]
    if not check.is_rate:
        base = [_within(data["value"], s, e) for s, e in shifted] if check.baseline else None
        return stats.judge_value(check.name, _within(data["value"], start, end), stat=check.value.stat,
                                 window=(start, end), max_value=check.max, min_value=check.min, baseline=base,
                                 max_ratio=check.max_ratio)
    kw = dict(window=(start, end), min_total=check.min_total, max_rate=check.max_rate)
    if check.baseline:
        kw.update(baseline=[(_within(data["bad"], s, e), _within(data["total"], s, e)) for s, e in shifted],
                  worse_by=check.baseline.worse_by, confidence=check.baseline.confidence)
    bad, total = _within(data["bad"], start, end), _within(data["total"], start, end)
    if bake_periods is not None:
        return stats.watch_rate(check.name, bad, total, bake_periods=bake_periods, **kw)
    return stats.judge_rate(check.name, bad, total, **kw)


def evaluate(check: MetricCheck, aws: AwsPorts, start: datetime, end: datetime, *,
             bake_periods: int | None = None) -> stats.Judgement:
    """Fetch and judge; a failed read is an ERROR judgement whose reason names the fix."""
    try:
        data = fetch(check, aws, start, end)
    except AwsError as exc:
        fail = aws_fail(exc, f"metrics of {check.name}", permission=PERMISSION)
        return stats.error_result(check.name, f"{fail.detail}: {fail.next_action}", (start, end))
    return judge(check, data, start, end, bake_periods=bake_periods)


def evidence(check, judgement: stats.Judgement) -> dict:
    """The judgement's figures, and whether the plan's `inconclusive: pass` let it through."""
    return {**judgement.to_dict(), "inconclusive": check.inconclusive,
            "passed": judgement.passes(check.inconclusive)}


def gate_result(check, judgement: stats.Judgement, data: dict | None = None) -> Passed:
    """A judgement as a gate: PASS passes, INCONCLUSIVE only under `inconclusive: pass` (and says so);
    anything else raises Fail with the reason line and the figures."""
    data = data if data is not None else evidence(check, judgement)
    if judgement.outcome == stats.PASS:
        return Passed(judgement.reason, data)
    if judgement.passes(check.inconclusive):
        return Passed(f"{judgement.reason} (let through by inconclusive: pass)", data)
    action = _ACTIONS.get(judgement.outcome, "fix the read (see the reason), then re-run")
    raise Fail(judgement.reason, action, data)


def check_metric(check: MetricCheck, ctx) -> Passed:
    start, end = window_for(check, ctx.clock.now())
    return gate_result(check, evaluate(check, ctx.aws, start, end))


def bake_window(check: MetricCheck, entered_at: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The bake so far in whole periods: from the period holding `entered_at` to the window's usual end
    (`settle` before now). None while not one period has closed."""
    period = int(check.period)
    start = datetime.fromtimestamp(int(entered_at.timestamp()) // period * period, tz=timezone.utc)
    _, end = window_for(check, now)
    return (start, end) if end > start else None


def judge_bake(check: MetricCheck, aws: AwsPorts, entered_at: datetime, now: datetime,
               bake: float) -> stats.Judgement | None:
    """A `watch:` check at one poll: a rate by the sequential test over every period since the phase was
    entered (so polling often raises no more false alarms), a value over the same span; None until one
    period has closed."""
    span = bake_window(check, entered_at, now)
    if span is None:
        return None
    periods = max(1, -(-int(max(bake, check.period)) // int(check.period)))
    return evaluate(check, aws, *span, bake_periods=periods if check.is_rate else None)


# --- the type: its schema, its nested keys, its rules, its words ------------------------------------------

HIGH_RES_PERIODS = (10.0, 20.0, 30.0)  # CloudWatch's high-resolution periods; otherwise whole minutes
_QUERIES = {"bad", "total", "value"}
_NUMBERS = {"max_rate", "max", "min", "max_ratio"}
_RATE_ONLY = ("min_total", "max_rate")
_VALUE_ONLY = ("max", "min", "max_ratio")


def inconclusive_key(what: str) -> dict:
    """The schema of `inconclusive:`, which metric and logs_query checks share; `what` is their no-data."""
    return {"type": "string", "enum": ["fail", "pass"], "default": "fail",
            "description": f"{what}: fail (default) blocks, pass lets it through"}


def _refuse(fields: dict, key: str, message: str, hint: str) -> Problem:
    """A rule on `key` broken: at its value, or at the check's type when the key is left to its default."""
    return (fields[key][1] if key in fields else fields["type"][1], (key,), message, hint)


def _form_problems(fields: dict, check: MetricCheck) -> Iterator[Problem]:
    """A limit of the check's own form: a rate takes max_rate and a baseline, a value max, min, max_ratio."""
    forms = [key for key in ("bad", "total", "value") if key in fields]
    if forms not in (["bad", "total"], ["value"]):
        node = fields[forms[0]][0] if forms else next(iter(fields.values()))[0]
        yield (node, (), f"a metric check is a rate (bad and total) or a value, not {' and '.join(forms) or 'neither'}",
               "give bad: and total: (a rate), or value: (a value)")
        return
    wrong = _VALUE_ONLY if check.is_rate else _RATE_ONLY
    for key in wrong:
        if key in fields:
            form = "a rate (bad/total)" if check.is_rate else "a value"
            yield (fields[key][0], (key,), f"{key} does not apply to {form} check",
                   "a rate check takes max_rate and baseline; a value check takes max, min and max_ratio")
            return
    anchor = fields["total" if check.is_rate else "value"][0]
    if check.is_rate and check.max_rate is None and check.baseline is None:
        yield (anchor, (), "a rate check needs max_rate, a baseline, or both",
               "add max_rate: 0.05, or baseline: {offsets: [7d], worse_by: 0.005}")
    elif not check.is_rate:
        yield from _value_problems(fields, check, anchor)


def _value_problems(fields: dict, check: MetricCheck, anchor: Any) -> Iterator[Problem]:
    if check.max is None and check.min is None and check.max_ratio is None:
        yield (anchor, (), "a value check needs max, min or max_ratio", "add max: 3000, say")
    elif (check.max_ratio is None) != (check.baseline is None):
        node = fields["max_ratio" if check.max_ratio is not None else "baseline"][0]
        yield (node, (), "max_ratio and baseline go together in a value check",
               "add baseline: {offsets: [7d]} for max_ratio, or max_ratio: 1.2 for the baseline")
    elif check.baseline is not None and "worse_by" in {k.value for k, _ in fields["baseline"][1].value}:
        yield (fields["baseline"][1], ("baseline",), "worse_by applies to rate checks only", "compare a value with max_ratio")


def _period_problems(fields: dict, check: MetricCheck) -> Iterator[Problem]:
    """Periods CloudWatch has, and a window and baseline offsets in whole periods."""
    period = check.period
    if period not in HIGH_RES_PERIODS and period % 60:
        yield _refuse(fields, "period", f"CloudWatch has no period of {fields['period'][1].value}",
                      "use 10s, 20s, 30s or whole minutes (1m, 5m)")
    multiple: Callable[[float], bool] = lambda s: s >= period and s % period == 0  # noqa: E731
    if not multiple(check.window):
        yield _refuse(fields, "window", "the window must be a whole number of periods",
                      f"make it a multiple of the period ({int(period)}s)")
    if check.baseline is not None and not all(multiple(o) for o in check.baseline.offsets):
        yield _refuse(fields, "baseline", "each baseline offset must be a whole number of periods",
                      f"use offsets such as 1d or 7d (multiples of {int(period)}s)")


def _metric_name(q: MetricQuery) -> str:
    dims = ", ".join(f"{k}={v}" for k, v in q.dimensions.items())
    return f"{code(safe(q.metric))} ({safe(q.namespace)}{', ' + safe(dims) if dims else ''})"


def in_words(c: MetricCheck, span: str = "") -> str:
    """A metric check in words: what is measured, over which window (or `span`), and each limit."""
    span = span or f"over the {format_duration(c.window)} ending {format_duration(c.settle)} ago ({format_duration(c.period)} periods)"
    back = f"the same window {' and '.join(format_duration(o) for o in c.baseline.offsets)} back" if c.baseline else ""
    limits = []
    if c.is_rate:
        what = f"the share of {_metric_name(c.bad)} in {_metric_name(c.total)}"
        if c.max_rate is not None:
            limits.append(f"at most {stats.percent(c.max_rate)}")
        if c.baseline:
            limits.append(f"not worse than {back} by more than {stats.points(c.baseline.worse_by)} "
                          f"(one-sided, {100 * c.baseline.confidence:g}% confidence)")
        few = f"; fewer than {c.min_total} events in the window or the baseline is not enough data"
    else:
        what = f"the {safe(c.value.stat)} of {_metric_name(c.value)}, its worst period,"
        limits += [f"at most {stats.number(c.max)}"] if c.max is not None else []
        limits += [f"at least {stats.number(c.min)}"] if c.min is not None else []
        limits += [f"at most {c.max_ratio:g} times its value {back}"] if c.max_ratio is not None else []
        few = ""
    policy = "; not enough data lets it through (inconclusive: pass)" if c.inconclusive == "pass" \
        else "; not enough data blocks"
    return f"{what} {span} is {' and '.join(limits)}{few}{policy}; a failed read blocks"


# --- the sandbox's datapoints -------------------------------------------------------------------------

SEED_AHEAD = timedelta(hours=2)  # healthy data is seeded this far ahead, so a sandbox's metric gates pass that long
SEED_RATE = 0.005  # the share of bad events seeded for rate checks (under any max_rate, it is halved)


def inside(high: float | None, low: float | None) -> float:
    """A value within max (high) and min (low), whichever are set."""
    if high is not None and low is not None:
        return (high + low) / 2
    if high is not None:
        return high / 2 if high > 0 else high - 1
    if low is not None:
        return low * 2 if low > 0 else low + 1
    return 100.0


def _period_stamps(c: MetricCheck, now: datetime, ahead: timedelta = timedelta(0)) -> list[datetime]:
    """The start of every period of the check's window at `now`, and of the periods `ahead` after it."""
    start, end = window_for(c, now)
    step = timedelta(seconds=c.period)
    return [start + i * step for i in range(int((end + ahead - start) / step))]


def _healthy(c: MetricCheck, baseline: bool) -> list[tuple[MetricQuery, float]]:
    """(query, value per period) that pass the check: a steady low rate, or a value inside its limits."""
    if c.is_rate:
        window_periods = max(1, int(c.window // c.period))
        total = max(1000, -(-2 * c.min_total // window_periods))  # enough for a whole bad event per period
        rate = SEED_RATE if c.max_rate is None else min(SEED_RATE, c.max_rate / 2)
        return [(c.total, float(total)), (c.bad, float(round(total * rate)))]
    value = inside(c.max, c.min)
    if baseline and c.max_ratio:
        value = value / (0.9 * c.max_ratio)  # the window's value is 0.9 x max_ratio times the baseline's
    return [(c.value, value)]


def write_healthy(c: MetricCheck, seeder, now: datetime, ahead: timedelta = timedelta(0)) -> None:
    """Data so the check passes at `now` (and up to `ahead` later): the judged window and each baseline
    window, at one steady healthy level. Where spans written twice overlap, Sums add up: bad and total
    alike, so the rate stays the same."""
    stamps = _period_stamps(c, now, ahead)
    for offset in (0.0, *(c.baseline.offsets if c.baseline else ())):
        shifted = [t - timedelta(seconds=offset) for t in stamps]
        for query, value in _healthy(c, bool(offset)):
            seeder.put_metric_points(query, [(t, value) for t in shifted])


def write_regression(c: MetricCheck, seeder, now: datetime, share: float = 0.2) -> None:
    """A metric incident for rehearsals: as many events again in the rate check's current window, `share`
    of them bad, on top of the healthy data already there, so the check fails."""
    stamps = _period_stamps(c, now)
    (total_query, total), _ = _healthy(c, False)
    seeder.put_metric_points(total_query, [(t, total) for t in stamps])
    seeder.put_metric_points(c.bad, [(t, float(round(total * share))) for t in stamps])


class Metric(CheckType):
    """The sandbox writes its healthy datapoints (`seed`, for the next SEED_AHEAD; `refresh` after a
    rehearsal fast-forwards its clock)."""

    def seed(self, plan, seeder, now: datetime) -> list[str]:
        for c in self.checks_in(plan):
            write_healthy(c, seeder, now, SEED_AHEAD)
        return []

    def refresh(self, plan, seeder, now: datetime) -> None:
        for c in self.checks_in(plan):
            write_healthy(c, seeder, now)

    kind = "metric"
    model = MetricCheck
    schema = fragment(
        "metric",
        "metric check",
        {
            "bad": ref("metric_count", description="the bad events, e.g. {namespace: App, metric: Failed} (Sum)"),
            "total": ref("metric_count", description="all events, bad ones included (Sum)"),
            "value": ref("metric_value"),
            "window": ref("positive_duration", default="30m", description="the window judged; it ends `settle` before now"),
            "settle": ref("duration", default="2m", description="how late data may arrive"),
            "period": ref("positive_duration", default="1m", description="the GetMetricData period: 10s, 20s, 30s or whole minutes"),
            "min_total": {"type": "integer", "minimum": 1, "default": 1,
                          "description": "fewer events than this in the window or the baseline: INCONCLUSIVE"},
            "max_rate": {"type": "number", "minimum": 0, "maximum": 1,
                         "description": "FAIL when bad/total is above this, e.g. 0.05"},
            "baseline": ref("metric_baseline"),
            "max": {"type": "number", "description": "FAIL when the value is above this"},
            "min": {"type": "number", "description": "FAIL when the value is below this"},
            "max_ratio": {"type": "number", "exclusiveMinimum": 0,
                          "description": "FAIL when the value is more than this times the baseline's, e.g. 1.2"},
            "inconclusive": inconclusive_key("not enough data"),
        },
        [],
        "30s",
        oneOf=[{"required": ["bad", "total"]}, {"required": ["value"]}],
    )

    def value(self, key: str, node: Any, read: Nodes) -> Any:
        """Its queries and baseline as model objects, its limits as numbers, settle and period in seconds."""
        if key in _QUERIES:
            f = read.fields(node)
            dims = {k.value: v.value for k, v in f["dimensions"][1].value} if "dimensions" in f else {}
            stat = f["stat"][1].value if "stat" in f else "Sum"
            return MetricQuery(f["namespace"][1].value, f["metric"][1].value, dims, stat)
        if key == "baseline":
            f = read.fields(node)
            return MetricBaseline(
                offsets=tuple(read.seconds(item) for item in f["offsets"][1].value),
                worse_by=read.number(f["worse_by"][1]) if "worse_by" in f else 0.0,
                confidence=read.number(f["confidence"][1]) if "confidence" in f else 0.99,
            )
        if key in _NUMBERS:
            return read.number(node)
        if key in ("settle", "period"):
            return read.seconds(node)
        return None

    def problems(self, check: MetricCheck, fields: dict) -> Iterator[Problem]:
        """A limit of its own form, and periods CloudWatch has; the first problem is the one reported."""
        yield from _form_problems(fields, check)
        yield from _period_problems(fields, check)

    def iam(self, check: MetricCheck, arn: Any, read_only: bool) -> list[dict]:
        # GetMetricData has no resource-level permissions: AWS accepts only "*" for it.
        return [statement("ReadGateMetrics", [PERMISSION], "*")]

    run = staticmethod(check_metric)  # the gate, above

    def describe(self, check: MetricCheck) -> str:
        return in_words(check)


TYPE = Metric()
