"""A CloudWatch metric as a check names it and the metrics port reads it (a model of its own: the port
and the `metric` check type both use it, and neither layer may hold it for the other)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricQuery:
    """One CloudWatch metric as GetMetricData asks for it."""

    namespace: str
    metric: str
    dimensions: dict[str, str] = field(default_factory=dict)
    stat: str = "Sum"  # bad/total are always Sum; a value query names its statistic (p99, Average...)

    def describe(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.dimensions.items())
        return f"{self.namespace} {self.metric}" + (f" {{{dims}}}" if dims else "") + f" {self.stat}"
