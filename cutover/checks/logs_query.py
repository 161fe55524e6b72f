"""logs_query: a CloudWatch Logs Insights query over the last `window`, polled until it is Complete;
each `expect` field of its rows must be within its max/min (every row: the worst one decides).

Failed, Cancelled, Timeout or Unknown, or still running when the check's time is up, is an ERROR; no
row carrying an expected field is INCONCLUSIVE (blocks unless `inconclusive: pass`), never a PASS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from typing import Any, Iterator

from cutover import stats
from cutover.checks.aws_faults import aws_fail
from cutover.checks.interface import CheckType, Fail, Nodes, Passed, Problem, fragment, list_of, ref, statement, text
from cutover.checks.metric import evidence, gate_result, inconclusive_key
from cutover.checks.words import code, names, safe
from cutover.errors import AwsError
from cutover.model.durations import format_duration


@dataclass(frozen=True)
class FieldLimit:
    max: float | None = None
    min: float | None = None


@dataclass(frozen=True)
class LogsQueryCheck:
    """A CloudWatch Logs Insights query over the last `window`; each `expect` field of its result rows
    must be within its limits."""

    name: str
    log_groups: tuple[str, ...]
    query: str
    window: float
    expect: dict[str, FieldLimit] = field(default_factory=dict)
    inconclusive: str = "fail"  # no row with an expected field: fail (default) | pass
    timeout: float = 60.0
    type: str = "logs_query"


POLL = 1.0  # seconds between GetQueryResults calls
_RUNNING = {"Scheduled", "Running"}
_SEVERITY = {stats.PASS: 0, stats.INCONCLUSIVE: 1, stats.FAIL: 2, stats.ERROR: 3}


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text  # judged as "not a number": INCONCLUSIVE


def run_query(check: LogsQueryCheck, ctx, window: tuple) -> list[dict[str, str]]:
    """Start the query and poll it on the injected clock; Fail (an ERROR line) unless it completes."""
    insights = ctx.aws.insights
    if insights is None:
        raise AwsError("no CloudWatch Logs Insights client", "run with AWS access", code="NoInsightsClient")
    query_id = insights.start_query(list(check.log_groups), check.query, *window)
    deadline = ctx.clock.monotonic() + max(check.timeout - POLL, POLL)
    while True:
        status, rows = insights.query_results(query_id)
        if status == "Complete":
            return rows
        if status not in _RUNNING:
            raise Fail(f"{check.name} {stats.ERROR} the Logs Insights query ended {status}",
                       "check the query in the Logs Insights console (syntax, log groups, the window), then re-run")
        if ctx.clock.monotonic() >= deadline:
            raise Fail(f"{check.name} {stats.ERROR} the Logs Insights query was still {status} after "
                       f"{check.timeout:g}s", "narrow the window or the query, or raise the check's timeout")
        ctx.clock.sleep(POLL)


def _judge_field(check: LogsQueryCheck, name: str, rows: list[dict[str, str]], window: tuple) -> stats.Judgement:
    values = [(i, _number(r[name])) for i, r in enumerate(rows) if name in r]
    if not values:
        return stats.Judgement(check.name, stats.INCONCLUSIVE,
                               f"{check.name} {stats.INCONCLUSIVE} no row has field {name!r} ({len(rows)} row(s))", window)
    limit = check.expect[name]
    return stats.judge_value(check.name, values, stat=name, window=window, max_value=limit.max, min_value=limit.min,
                             of="rows")


def judge_rows(check: LogsQueryCheck, rows: list[dict[str, str]], window: tuple) -> stats.Judgement:
    """Each expected field judged over the rows (stats.judge_value); the worst field decides."""
    judged = [_judge_field(check, name, rows, window) for name in check.expect]
    worst = max(judged, key=lambda j: _SEVERITY[j.outcome])
    reason = f"{check.name} {worst.outcome} " + "; ".join(j.reason.split(" ", 2)[2] for j in judged)
    return stats.Judgement(check.name, worst.outcome, reason, window, value=worst.value,
                           tests=tuple(t for j in judged for t in j.tests))


def check_logs_query(check: LogsQueryCheck, ctx) -> Passed:
    end = ctx.clock.now()
    window = (end - timedelta(seconds=check.window), end)
    try:
        rows = run_query(check, ctx, window)
    except AwsError as exc:
        fail = aws_fail(exc, f"the Logs Insights query of {check.name}",
                        permission="logs:StartQuery and logs:GetQueryResults")
        judgement = stats.error_result(check.name, f"{fail.detail}: {fail.next_action}", window)
        return gate_result(check, judgement)
    except Fail as fail:
        judgement = stats.Judgement(check.name, stats.ERROR, fail.detail, window)
        raise Fail(fail.detail, fail.next_action, evidence(check, judgement)) from None
    judgement = judge_rows(check, rows, window)
    return gate_result(check, judgement, {**evidence(check, judgement), "rows": len(rows)})


# --- the type: its schema, its nested keys, its rule, its words ------------------------------------------

MAX_LOG_GROUPS = 50  # StartQuery takes at most 50 log groups


def _bounds(lim: FieldLimit) -> str:
    return " and ".join([*([f"at most {stats.number(lim.max)}"] if lim.max is not None else []),
                         *([f"at least {stats.number(lim.min)}"] if lim.min is not None else [])])


class LogsQuery(CheckType):
    """The sandbox cans its results, keyed by query (`cutover.sandbox.emulator`)."""

    kind = "logs_query"
    model = LogsQueryCheck
    schema = fragment(
        "logs_query",
        "logs_query check",
        {
            "log_groups": list_of(ref("log_group"), uniqueItems=True,
                                  description="the CloudWatch Logs groups queried (at most 50)"),
            "query": text(minLength=1, maxLength=10000, description="a Logs Insights query, e.g. "
                          "'filter @message like /request_failed/ | stats count() as failures'"),
            "window": ref("positive_duration", description="how far back the query looks"),
            "expect": {
                "type": "object",
                "minProperties": 1,
                "description": "per result field, its limits, e.g. {failures: {max: 0}}",
                "propertyNames": text(title="field", minLength=1, maxLength=255),
                "additionalProperties": ref("field_limit"),
            },
            "inconclusive": inconclusive_key("no row with an expected field"),
        },
        ["log_groups", "query", "window", "expect"],
        "60s",
    )

    def value(self, key: str, node: Any, read: Nodes) -> Any:
        """`expect` as each field's limits, `log_groups` as a tuple."""
        if key == "expect":
            return {k.value: FieldLimit(**{n.value: read.number(v) for n, v in limits.value}) for k, limits in node.value}
        if key == "log_groups":
            return tuple(item.value for item in node.value)
        return None

    def problems(self, check: LogsQueryCheck, fields: dict) -> Iterator[Problem]:
        if len(check.log_groups) > MAX_LOG_GROUPS:
            yield (fields["log_groups"][1], ("log_groups",), f"{len(check.log_groups)} log groups; "
                   f"a Logs Insights query takes at most {MAX_LOG_GROUPS}", "split the check in two")

    def iam(self, check: LogsQueryCheck, arn: Any, read_only: bool) -> list[dict]:
        return [statement("QueryGateLogGroups", ["logs:StartQuery"], [arn.log_group(g) for g in check.log_groups]),
                # GetQueryResults names a query id, not a log group: AWS accepts only "*" for it.
                statement("ReadGateQueryResults", ["logs:GetQueryResults"], "*")]

    run = staticmethod(check_logs_query)  # the gate, above

    def describe(self, c: LogsQueryCheck) -> str:
        limits = [f"{code(safe(name))} {_bounds(lim)}" for name, lim in c.expect.items()]
        no_rows = "no rows lets it through (inconclusive: pass)" if c.inconclusive == "pass" else "no rows blocks"
        return (f"the Logs Insights query {code(safe(c.query))} on {names(c.log_groups)} over the last "
                f"{format_duration(c.window)} gives, in every row, {'; '.join(limits)}; {no_rows}; a failed query blocks")


TYPE = LogsQuery()
