"""CloudWatch: alarms, metric data, Logs Insights queries, log events."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from cutover.errors import AwsError
from cutover.ports import Alarm, LogEvent
from cutover.adapters.aws.errors import ClientFactory, chunks, few_names, unique, as_utc, aws_errors, epoch_ms


class CloudWatchAlarms:
    """AlarmSource on CloudWatch: metric and composite alarms, by name and by prefix."""

    BATCH = 100  # DescribeAlarms takes at most 100 names
    TYPES = ["MetricAlarm", "CompositeAlarm"]  # without AlarmTypes, AWS returns metric alarms only

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("cloudwatch")

    def describe(self, names: list[str], prefix: str | None = None) -> list[Alarm]:
        found: dict[str, Alarm] = {}
        for batch in chunks(unique(names), self.BATCH):
            with aws_errors("cloudwatch:DescribeAlarms", few_names(batch)):
                self._collect(found, AlarmNames=batch)
        if prefix:
            with aws_errors("cloudwatch:DescribeAlarms", f"alarms named {prefix}*"):
                self._collect(found, AlarmNamePrefix=prefix)
        return list(found.values())

    def _collect(self, found: dict[str, Alarm], **query: Any) -> None:
        pages = self._client().get_paginator("describe_alarms")
        for page in pages.paginate(AlarmTypes=self.TYPES, PaginationConfig={"PageSize": 100}, **query):
            for a in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                # StateTransitionedTimestamp (when the state last *changed*) is what "quiet for" means;
                # AWS also bumps StateUpdatedTimestamp on reason-only updates. moto returns only the latter.
                when = a.get("StateTransitionedTimestamp") or a.get("StateUpdatedTimestamp")
                found.setdefault(
                    a["AlarmName"],
                    Alarm(a["AlarmName"], a["StateValue"], as_utc(when), a.get("StateReason", ""), **self._config(a)),
                )

    @staticmethod
    def _config(a: dict) -> dict[str, Any]:
        """What `expect` compares. A metric-math alarm keeps its metrics in `Metrics`: its period is the
        returned query's, its metric the expression, its namespace the one its metrics share."""
        if "AlarmRule" in a:  # composite: no metric, threshold or period of its own
            return {"composite": True}
        queries = a.get("Metrics") or []
        returned = next((q for q in queries if q.get("ReturnData", True)), {})
        stats = [q["MetricStat"] for q in queries if "MetricStat" in q]
        spaces = {s["Metric"].get("Namespace") for s in stats}
        periods = {s.get("Period") for s in stats}
        period = (a.get("Period") or returned.get("Period") or returned.get("MetricStat", {}).get("Period")
                  or (periods.pop() if len(periods) == 1 else None))
        return {
            "threshold": a.get("Threshold"),
            "comparison": a.get("ComparisonOperator"),
            "period": float(period) if period else None,
            "evaluation_periods": a.get("EvaluationPeriods"),
            "metric": a.get("MetricName") or returned.get("Expression")
            or returned.get("MetricStat", {}).get("Metric", {}).get("MetricName"),
            "namespace": a.get("Namespace") or (spaces.pop() if len(spaces) == 1 else None),
        }


class CloudWatchMetrics:
    """MetricSource on GetMetricData: every query in one request, its pages merged by query id."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("cloudwatch")

    def get_data(self, queries: dict[str, Any], start: datetime, end: datetime, period: int) -> dict[str, list]:
        request = [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": q.namespace, "MetricName": q.metric,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions.items()]},
            "Period": int(period), "Stat": q.stat}} for qid, q in queries.items()]
        with aws_errors("cloudwatch:GetMetricData", few_names([q.metric for q in queries.values()])):
            pages = self._client().get_paginator("get_metric_data").paginate(
                MetricDataQueries=request, StartTime=start, EndTime=end, ScanBy="TimestampAscending")
            return merge_metric_pages(list(queries), pages)


class CloudWatchLogsInsights:
    """LogsInsights on StartQuery / GetQueryResults (the caller polls until the query is done)."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("logs")

    def start_query(self, log_groups: list[str], query: str, start: datetime, end: datetime) -> str:
        with aws_errors("logs:StartQuery", few_names(log_groups)):
            resp = self._client().start_query(logGroupNames=log_groups, queryString=query,
                                              startTime=int(start.timestamp()), endTime=int(end.timestamp()))
        return resp["queryId"]

    def query_results(self, query_id: str) -> tuple[str, list[dict[str, str]]]:
        with aws_errors("logs:GetQueryResults", f"query {query_id}"):
            resp = self._client().get_query_results(queryId=query_id)
        rows = [{f["field"]: f.get("value", "") for f in row if f.get("field") != "@ptr"} for row in resp.get("results", [])]
        return resp.get("status", "Unknown"), rows


def merge_metric_pages(ids: list[str], pages: Iterable[dict]) -> dict[str, list]:
    """GetMetricData's pages -> each query id's datapoints, oldest first. A result's StatusCode on its
    last page stands: anything but Complete (PartialData, Forbidden, InternalError) is an AwsError."""
    found: dict[str, list] = {qid: [] for qid in ids}
    status: dict[str, str] = {}
    for page in pages:
        for r in page.get("MetricDataResults", []):
            found.setdefault(r["Id"], []).extend(zip(map(as_utc, r.get("Timestamps", [])), r.get("Values", [])))
            status[r["Id"]] = r.get("StatusCode", "Complete")
    if bad := sorted(f"{qid} {code}" for qid, code in status.items() if code != "Complete"):
        raise AwsError(f"GetMetricData returned incomplete results ({', '.join(bad)})",
                       "re-run; if it persists, narrow the window or the baseline offsets",
                       code=status[bad[0].split()[0]], operation="cloudwatch:GetMetricData")
    return {qid: sorted(points) for qid, points in found.items()}


class CloudWatchLogs:
    """LogSource on CloudWatch Logs FilterLogEvents, following nextToken to the end."""

    def __init__(self, clients: ClientFactory, page_size: int | None = None) -> None:
        self._client = lambda: clients("logs")
        self.page_size = page_size  # None = the service default; small values exercise paging in tests

    def events(self, log_group: str, start: datetime, end: datetime, filter_pattern: str = "") -> Iterator[LogEvent]:
        query: dict[str, Any] = {"logGroupName": log_group, "startTime": epoch_ms(start), "endTime": epoch_ms(end)}
        if filter_pattern:
            query["filterPattern"] = filter_pattern
        if self.page_size:
            query["limit"] = self.page_size
        while True:
            with aws_errors("logs:FilterLogEvents", f"log group {log_group}"):
                page = self._client().filter_log_events(**query)
            for e in page.get("events", []):
                yield LogEvent(datetime.fromtimestamp(e["timestamp"] / 1000, tz=timezone.utc), e.get("message", ""))
            # AWS may return empty pages with a token while it searches: only a missing token ends it.
            token = page.get("nextToken")
            if not token or token == query.get("nextToken"):
                return
            query["nextToken"] = token
