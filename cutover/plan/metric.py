"""The `metric` and `logs_query` checks in phases.yaml: their nested values and the rules the schema
cannot say, each a line-numbered Violation (a part of `cutover.plan.load`, kept apart so the plan loader
stays readable)."""

from __future__ import annotations

from typing import Any, Callable

from yaml.nodes import Node

from cutover.model.plan import FieldLimit, LogsQueryCheck, MetricBaseline, MetricCheck, MetricQuery
from cutover.plan.schema import Violation, fields_of, node_seconds, scalar, where

_QUERIES = {"bad", "total", "value"}
_NUMBERS = {"max_rate", "max", "min", "max_ratio"}
HIGH_RES_PERIODS = (10.0, 20.0, 30.0)  # CloudWatch's high-resolution periods; otherwise whole minutes
_RATE_ONLY = ("min_total", "max_rate")
_VALUE_ONLY = ("max", "min", "max_ratio")


def metric_value(key: str, node: Node) -> Any:
    """How a metric check's own keys become model values; None: not one of them."""
    if key in _QUERIES:
        f = fields_of(node)
        dims = {k.value: v.value for k, v in f["dimensions"][1].value} if "dimensions" in f else {}
        stat = f["stat"][1].value if "stat" in f else "Sum"
        return MetricQuery(f["namespace"][1].value, f["metric"][1].value, dims, stat)
    if key == "baseline":
        f = fields_of(node)
        return MetricBaseline(
            offsets=tuple(node_seconds(item) for item in f["offsets"][1].value),
            worse_by=float(scalar(f["worse_by"][1])) if "worse_by" in f else 0.0,
            confidence=float(scalar(f["confidence"][1])) if "confidence" in f else 0.99,
        )
    if key in _NUMBERS:
        return float(scalar(node))
    if key in ("settle", "period"):
        return node_seconds(node)
    return None


MAX_LOG_GROUPS = 50  # StartQuery takes at most 50 log groups


def logs_query_value(key: str, node: Node) -> Any:
    """How a logs_query check's own keys become model values; None: not one of them."""
    if key == "expect":
        return {k.value: FieldLimit(**{n.value: float(scalar(v)) for n, v in limits.value}) for k, limits in node.value}
    if key == "log_groups":
        return tuple(item.value for item in node.value)
    return None


def check_logs_query_rules(fields: dict[str, tuple[Node, Node]], check: LogsQueryCheck, path: tuple) -> None:
    if len(check.log_groups) > MAX_LOG_GROUPS:
        raise Violation(fields["log_groups"][1], f"{where((*path, 'log_groups'))}: {len(check.log_groups)} log groups; "
                        f"a Logs Insights query takes at most {MAX_LOG_GROUPS}", "split the check in two")


def check_metric_rules(fields: dict[str, tuple[Node, Node]], check: MetricCheck, path: tuple) -> None:
    """What a metric check must say beyond its shape: a limit of its own form, and periods CloudWatch has."""
    here = where(path)
    forms = [key for key in ("bad", "total", "value") if key in fields]
    if forms not in (["bad", "total"], ["value"]):
        node = fields[forms[0]][0] if forms else next(iter(fields.values()))[0]
        raise Violation(node, f"{here}: a metric check is a rate (bad and total) or a value, not {' and '.join(forms) or 'neither'}",
                        "give bad: and total: (a rate), or value: (a value)")
    anchor = fields["total" if check.is_rate else "value"][0]
    wrong = _VALUE_ONLY if check.is_rate else _RATE_ONLY
    for key in wrong:
        if key in fields:
            form = "a rate (bad/total)" if check.is_rate else "a value"
            raise Violation(fields[key][0], f"{where((*path, key))}: {key} does not apply to {form} check",
                            "a rate check takes max_rate and baseline; a value check takes max, min and max_ratio")
    if check.is_rate and check.max_rate is None and check.baseline is None:
        raise Violation(anchor, f"{here}: a rate check needs max_rate, a baseline, or both",
                        "add max_rate: 0.05, or baseline: {offsets: [7d], worse_by: 0.005}")
    if not check.is_rate:
        _value_rules(fields, check, path, anchor)
    _period_rules(fields, check, path)


def _value_rules(fields: dict, check: MetricCheck, path: tuple, anchor: Node) -> None:
    here = where(path)
    if check.max is None and check.min is None and check.max_ratio is None:
        raise Violation(anchor, f"{here}: a value check needs max, min or max_ratio", "add max: 3000, say")
    if (check.max_ratio is None) != (check.baseline is None):
        node = fields["max_ratio" if check.max_ratio is not None else "baseline"][0]
        raise Violation(node, f"{here}: max_ratio and baseline go together in a value check",
                        "add baseline: {offsets: [7d]} for max_ratio, or max_ratio: 1.2 for the baseline")
    if check.baseline is not None and "worse_by" in fields_of(fields["baseline"][1]):
        raise Violation(fields["baseline"][1], f"{where((*path, 'baseline'))}: worse_by applies to rate checks only",
                        "compare a value with max_ratio")


def _period_rules(fields: dict, check: MetricCheck, path: tuple) -> None:
    period = check.period
    if period not in HIGH_RES_PERIODS and period % 60:
        _refuse(fields, "period", path, f"CloudWatch has no period of {fields['period'][1].value}",
                "use 10s, 20s, 30s or whole minutes (1m, 5m)")
    multiple: Callable[[float], bool] = lambda s: s >= period and s % period == 0  # noqa: E731
    if not multiple(check.window):
        _refuse(fields, "window", path, "the window must be a whole number of periods",
                f"make it a multiple of the period ({int(period)}s)")
    if check.baseline is not None and not all(multiple(o) for o in check.baseline.offsets):
        _refuse(fields, "baseline", path, "each baseline offset must be a whole number of periods",
                f"use offsets such as 1d or 7d (multiples of {int(period)}s)")


def _refuse(fields: dict, key: str, path: tuple, message: str, hint: str) -> None:
    node = fields[key][1] if key in fields else fields["type"][1]
    raise Violation(node, f"{where((*path, key))}: {message}", hint)
