"""An alarm's configuration in AWS against the plan's `expect`: the monitoring the plan relies on.

A plan that says "worker errors > 5% over 15 minutes" must not pass a gate over an alarm that
someone changed to 10%, or to a 1-hour period: the alarm would stay OK while the feature fails.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING


from cutover.checks.fmt import one_line


@dataclass(frozen=True)
class AlarmExpect:
    """How one alarm must be configured in CloudWatch; None = not checked."""

    threshold: float | None = None
    comparison: str | None = None  # a CloudWatch ComparisonOperator, e.g. GreaterThanThreshold
    period: float | None = None  # seconds
    evaluation_periods: int | None = None
    metric: str | None = None  # MetricName
    namespace: str | None = None

    def declared(self) -> dict[str, object]:
        """The fields the plan sets, in a stable order."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


if TYPE_CHECKING:  # annotations only: importing the ports costs every plan load ~3 ms
    from cutover.ports import Alarm


def _number(x: float) -> str:
    return f"{x:g}"


def _period(seconds: float) -> str:
    from cutover.model.durations import format_duration

    return format_duration(seconds)


_SHOW = {"threshold": _number, "period": _period}
_LABEL = {"evaluation_periods": "evaluation periods"}


def _same(field: str, want, have) -> bool:
    if have is None:
        return False
    if field in ("threshold", "period"):
        return math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-9)
    return want == have


def differences(expect: AlarmExpect, alarm: Alarm) -> list[str]:
    """One 'expected FIELD X, AWS has Y' per declared field that differs (empty when it matches)."""
    out = []
    for field, want in expect.declared().items():
        have = getattr(alarm, field, None)
        if _same(field, want, have):
            continue
        show = _SHOW.get(field, str)
        if have is None:
            has = "none (composite alarm)" if alarm.composite else "none"
        else:
            has = one_line(show(have), 80)
        out.append(f"expected {_LABEL.get(field, field)} {show(want)}, AWS has {has}")
    return out
