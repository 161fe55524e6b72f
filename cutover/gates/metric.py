"""metric: a rate (bad/total) or a value read from CloudWatch and judged by `cutover.stats`.

One GetMetricData request per evaluation: every query, over one span from the earliest baseline
window to the end of the judged window; cutover cuts the span into the window and each offset's
shifted window itself. The window ends `settle` before the (injected) clock's now, on a period
boundary. Four outcomes: PASS, FAIL, INCONCLUSIVE (not enough data) and ERROR (the read failed).
INCONCLUSIVE blocks unless the check says `inconclusive: pass` (and the detail then says so); FAIL and
ERROR always block. Every figure goes into the result's `data` (evidence and --json).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cutover import stats
from cutover.errors import AwsError
from cutover.model.plan import MetricCheck
from cutover.ports import AwsPorts, Datapoints

from ._aws import aws_fail
from ._fail import Fail, Passed
from .context import GateContext

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


def check_metric(check: MetricCheck, ctx: GateContext) -> Passed:
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
