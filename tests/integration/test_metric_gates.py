"""metric checks on the emulator: data put with past timestamps (the window and a baseline a day
back), read by cutover's one GetMetricData call, judged PASS / FAIL / INCONCLUSIVE / ERROR."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from cutover.testing.clock import FakeClock
from cutover.gates import FAIL, PASS, GateContext, run_check
from cutover.model.metrics import MetricQuery
from cutover.plan.load import parse_plan
from cutover.redact import Redactor

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=5)
NS = "RPMW/OrderStatus"

PLAN = """\
version: 1
name: demo
region: us-east-2
flags:
  mode: {{parameter: /demo/mode, rollback: "off"}}
checks:
  order_success:
    type: metric
    bad:   {{namespace: RPMW/OrderStatus, metric: Failed,  dimensions: {{Env: prod}}}}
    total: {{namespace: RPMW/OrderStatus, metric: Handled, dimensions: {{Env: prod}}}}
    window: 30m
    settle: 2m
{extra}
phases:
  - name: shadow
    set: {{mode: shadow}}
    gates: [order_success]
"""
WITHIN_BASELINE = "    min_total: 200\n    baseline: {offsets: [1d], worse_by: 0.005}\n"


def check_of(extra: str = WITHIN_BASELINE, name: str = "order_success"):
    return parse_plan(PLAN.format(extra=extra)).checks[name]


HANDLED = MetricQuery(NS, "Handled", {"Env": "prod"})
FAILED = MetricQuery(NS, "Failed", {"Env": "prod"})


def put_counts(end: datetime, minutes: int, handled: int, failed: int | None) -> None:
    """Per-minute counts for the `minutes` before `end` (failed None: no Failed datapoints at all)."""
    from cutover.sandbox.seed import EmulatorSeeder

    seeder = EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2")
    stamps = [end - timedelta(minutes=i) for i in range(1, minutes + 1)]
    seeder.put_metric_points(HANDLED, [(t, handled) for t in stamps])
    if failed is not None:
        seeder.put_metric_points(FAILED, [(t, failed) for t in stamps])


def window_end() -> datetime:
    return NOW - timedelta(minutes=2)  # settle


def seed(window_failed: int, baseline_failed: int = 2) -> None:
    put_counts(window_end(), 30, 100, window_failed)
    put_counts(window_end() - timedelta(days=1), 30, 200, baseline_failed)


def ctx_for(ports) -> GateContext:
    return GateContext(aws=ports, env={}, clock=FakeClock(NOW), redactor=Redactor())


@pytest.fixture
def counted(aws_env):
    from cutover.testing.counter import CallCounter
    from cutover.adapters.aws import make_ports

    counter = CallCounter()
    return make_ports("us-east-2", None, read_only=True, counter=counter), counter


def test_within_baseline_passes_with_one_get_metric_data_call(counted):
    ports, counter = counted
    seed(window_failed=1)
    r = run_check(check_of(), ctx_for(ports))
    assert r.status == PASS, r
    assert r.detail.startswith("order_success PASS rate 1.0% (30/3000) vs baseline 1.0% (60/6000)")
    assert counter["cloudwatch:GetMetricData"] == 1
    d = r.to_dict()["data"]
    assert d["window"] == {"start": (window_end() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "end": window_end().strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert (d["bad"], d["total"], d["baseline"]["bad"], d["baseline"]["total"]) == (30, 3000, 60, 6000)
    assert d["test"] == "farrington_manning" and d["threshold"] == 0.005 and d["statistic"] < d["critical"]


def test_beyond_baseline_fails_with_the_reason_line(counted):
    ports, _ = counted
    seed(window_failed=4)
    r = run_check(check_of(), ctx_for(ports))
    assert r.status == FAIL
    assert r.detail == ("order_success FAIL rate 4.0% (120/3000) vs baseline 1.0% (60/6000): "
                        "worse by 3.0 pp > 0.5 pp (p < 0.001)")
    assert "do not advance" in r.next_action
    assert r.data["outcome"] == "FAIL" and r.data["p_value"] < 0.001


def test_missing_failed_datapoints_count_as_zero(counted):
    ports, _ = counted
    put_counts(window_end(), 30, 100, None)
    r = run_check(check_of("    max_rate: 0.01\n"), ctx_for(ports))
    assert r.status == PASS and r.data["bad"] == 0 and r.data["total"] == 3000, r


def test_no_data_is_inconclusive_and_blocks(counted):
    ports, _ = counted
    r = run_check(check_of(), ctx_for(ports))
    assert r.status == FAIL and r.data["outcome"] == "INCONCLUSIVE"
    assert r.detail == "order_success INCONCLUSIVE no traffic in the window: no total events"
    assert "inconclusive: pass" in r.next_action


def test_too_few_events_is_inconclusive(counted):
    ports, _ = counted
    seed(window_failed=1)
    r = run_check(check_of("    min_total: 5000\n    max_rate: 0.05\n"), ctx_for(ports))
    assert r.status == FAIL and r.data["outcome"] == "INCONCLUSIVE"
    assert "only 3000 events in the window, fewer than min_total 5000" in r.detail


def test_a_baseline_with_no_data_is_inconclusive(counted):
    ports, _ = counted
    put_counts(window_end(), 30, 100, 1)
    r = run_check(check_of(), ctx_for(ports))
    assert r.data["outcome"] == "INCONCLUSIVE" and "no traffic in the baseline" in r.detail


def test_inconclusive_pass_lets_no_data_through_and_says_so(counted):
    ports, _ = counted
    r = run_check(check_of("    max_rate: 0.05\n    inconclusive: pass\n"), ctx_for(ports))
    assert r.status == PASS and r.detail.endswith("(let through by inconclusive: pass)")
    assert r.data["outcome"] == "INCONCLUSIVE" and r.data["passed"] is True


def test_access_denied_is_an_error_that_blocks_even_with_inconclusive_pass(aws_env, emulator, monkeypatch):
    from cutover.adapters.aws import make_ports
    from cutover.testing.faultproxy import FaultProxy, Faults

    seed(window_failed=1)
    with FaultProxy(emulator.endpoint, Faults(deny={"GetMetricData"})) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        ports = make_ports("us-east-2", None, read_only=True)
        r = run_check(check_of("    max_rate: 0.05\n    inconclusive: pass\n"), ctx_for(ports))
        assert proxy.injected["deny"] == 1
    assert r.status == FAIL and r.data["outcome"] == "ERROR"
    assert r.detail.startswith("order_success ERROR access denied to metrics of order_success (AccessDeniedException)")
    assert "cloudwatch:GetMetricData" in r.detail


def test_a_value_check_judges_the_worst_period(counted):
    ports, _ = counted
    from cutover.sandbox.seed import EmulatorSeeder

    duration = MetricQuery("AWS/Lambda", "Duration", {"FunctionName": "worker"})
    EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2").put_metric_points(
        duration, [(window_end() - timedelta(minutes=3 + i), ms) for i, ms in enumerate([900.0, 2500.0, 1200.0])])
    plan = PLAN.format(extra="    max_rate: 0.05\n  latency:\n    type: metric\n    value: {namespace: AWS/Lambda, "
                       "metric: Duration, dimensions: {FunctionName: worker}, stat: Maximum}\n    window: 15m\n"
                       "    max: 2000\n")
    r = run_check(parse_plan(plan).checks["latency"], ctx_for(ports))
    assert r.status == FAIL and r.detail == "latency FAIL Maximum 2500 (highest of 3 periods) > max 2000"
    assert r.data["value"] == 2500.0


# --- the plan: line-numbered errors before any AWS call -----------------------------------------------

@pytest.mark.parametrize("extra, line, message", [
    ("    min_total: 200\n", 10, "a rate check needs max_rate, a baseline, or both"),
    ("    max_rate: 0.05\n    max: 3\n", 14, "max does not apply to a rate (bad/total) check"),
    ("    max_rate: 0.05\n    period: 45s\n", 14, "CloudWatch has no period of 45s"),
    ("    max_rate: 0.05\n    period: 7m\n", 11, "the window must be a whole number of periods"),
    ("    max_rate: 1.5\n", 13, "max_rate: 1.5 is more than 1"),
    ("    max_rate: 0.05\n    baseline: {offsets: [90s]}\n", 14, "each baseline offset must be a whole number"),
    ("    max_rate: 0.05\n    inconclusive: maybe\n", 14, "'maybe' is not allowed"),
])
def test_metric_plan_errors_name_the_line(extra, line, message):
    from cutover.errors import PlanError

    with pytest.raises(PlanError) as err:
        parse_plan(PLAN.format(extra=extra))
    assert err.value.line == line and message in str(err.value), str(err.value)


@pytest.mark.parametrize("drop, add, line, words", [
    ("    total:", "", 9, "a rate (bad and total) or a value, not bad"),  # found by the fuzzed-plan test
    ("    bad:", "", 7, "needs one of bad, value"),
    ("", "    value: {namespace: A, metric: B, stat: p99}\n", 14, "has both bad and value; use only one"),
])
def test_a_metric_check_is_a_rate_or_a_value(drop, add, line, words):
    from cutover.errors import PlanError

    text = "".join(l for l in PLAN.format(extra="    max_rate: 0.05\n" + add).splitlines(keepends=True)
                   if not (drop and l.startswith(drop)))
    with pytest.raises(PlanError) as err:
        parse_plan(text)
    assert err.value.line == line and words in str(err.value), str(err.value)


def test_watch_takes_declared_metric_checks():
    from cutover.errors import PlanError

    good = PLAN.format(extra="    max_rate: 0.05\n") + "    watch: [order_success]\n"
    assert parse_plan(good).phases[0].watch == ("order_success",)
    for name, message in (("nope", "undeclared check 'nope'"), ("env_ok", "is a env check; watch: takes metric checks")):
        text = PLAN.format(extra="    max_rate: 0.05\n  env_ok: {type: env, present: [HOME]}\n") + f"    watch: [{name}]\n"
        with pytest.raises(PlanError) as err:
            parse_plan(text)
        assert message in str(err.value) and err.value.line == 20, str(err.value)


def test_value_check_rules():
    from cutover.errors import PlanError

    head = "    max_rate: 0.05\n  lat:\n    type: metric\n    value: {namespace: N, metric: M, stat: p99}\n"
    assert parse_plan(PLAN.format(extra=head + "    max: 3000\n")).checks["lat"].value.stat == "p99"
    for extra, message in (("", "needs max, min or max_ratio"), ("    max_ratio: 1.2\n", "max_ratio and baseline go together"),
                           ("    max: 1\n    min_total: 5\n", "min_total does not apply to a value check")):
        with pytest.raises(PlanError) as err:
            parse_plan(PLAN.format(extra=head + extra))
        assert message in str(err.value), str(err.value)


def test_the_schema_names_every_metric_field_and_jsonschema_agrees():
    import dataclasses

    import yaml

    from cutover.checks.metric import MetricCheck
    from cutover.plan.schema import plan_schema

    props = plan_schema()["$defs"]["metric_check"]["properties"]
    assert set(props) == {f.name for f in dataclasses.fields(MetricCheck)} - {"name"}
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(plan_schema())
    assert not list(validator.iter_errors(yaml.safe_load(PLAN.format(extra=WITHIN_BASELINE))))
    both = PLAN.format(extra=WITHIN_BASELINE + "    value: {namespace: N, metric: M, stat: p99}\n")
    assert list(validator.iter_errors(yaml.safe_load(both)))  # a rate and a value at once: oneOf refuses


def test_iam_policy_grants_get_metric_data_only_to_plans_with_metric_checks():
    from cutover.compile import iam

    plan = parse_plan(PLAN.format(extra=WITHIN_BASELINE))
    for read_only in (False, True):
        stmts = {s["Sid"]: s for s in iam.policy(plan, read_only=read_only)["Statement"]}
        assert stmts["ReadGateMetrics"]["Action"] == ["cloudwatch:GetMetricData"]
        assert stmts["ReadGateMetrics"]["Resource"] == "*"  # GetMetricData has no resource-level permissions
    plain = PLAN.format(extra="").split("checks:")[0] + "phases:\n  - name: shadow\n    set: {mode: shadow}\n"
    assert "ReadGateMetrics" not in {s["Sid"] for s in iam.policy(parse_plan(plain))["Statement"]}


def test_the_runbook_says_each_metric_gate_and_watch_in_words():
    from cutover.compile import runbook

    text = PLAN.format(extra="    min_total: 200\n    max_rate: 0.05\n    baseline: {offsets: [7d], worse_by: 0.005}\n")
    text = text.replace("    gates: [order_success]\n", "    gates: [order_success]\n    watch: [order_success]\n    bake: 1h\n")
    out = runbook.render(parse_plan(text))
    gate = ("- `order_success` (metric): the share of `Failed` (RPMW/OrderStatus, Env=prod) in `Handled` "
            "(RPMW/OrderStatus, Env=prod) over the 30m ending 2m ago (1m periods) is at most 5.0% and not worse "
            "than the same window 7d back by more than 0.5 pp (one-sided, 99% confidence); fewer than 200 events "
            "in the window or the baseline is not enough data; not enough data blocks; a failed read blocks")
    assert gate in out
    assert "Every poll also judges these metric checks over the bake so far, with a sequential test" in out
    assert "- `order_success`: the share of `Failed` (RPMW/OrderStatus, Env=prod) in `Handled` " \
           "(RPMW/OrderStatus, Env=prod) over the bake so far is at most 5.0%" in out


def test_pages_are_merged_by_query_id_and_partial_data_is_an_error():
    """moto never pages GetMetricData nor returns PartialData: the merge is tested on AWS-shaped pages."""
    from cutover.adapters.aws import merge_metric_pages
    from cutover.errors import AwsError

    t = [datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc) for m in range(4)]
    pages = [{"MetricDataResults": [{"Id": "total", "Timestamps": [t[3], t[2]], "Values": [5.0, 4.0],
                                     "StatusCode": "PartialData"}]},
             {"MetricDataResults": [{"Id": "total", "Timestamps": [t[1]], "Values": [3.0], "StatusCode": "Complete"},
                                    {"Id": "bad", "Timestamps": [t[1]], "Values": [1.0], "StatusCode": "Complete"}]}]
    assert merge_metric_pages(["bad", "total"], pages) == {"bad": [(t[1], 1.0)],
                                                           "total": [(t[1], 3.0), (t[2], 4.0), (t[3], 5.0)]}
    with pytest.raises(AwsError) as err:
        merge_metric_pages(["total"], pages[:1])
    assert err.value.code == "PartialData" and "total PartialData" in err.value.message


def test_sandbox_seeding_makes_every_metric_check_pass(counted):
    from cutover.sandbox.emulator import refresh

    ports, _ = counted
    extra = ("    max_rate: 0.01\n    min_total: 5000\n    baseline: {offsets: [1d]}\n"
             "  lat:\n    type: metric\n    value: {namespace: AWS/Lambda, metric: Duration, stat: Maximum}\n"
             "    max: 3000\n    min: 10\n    max_ratio: 1.2\n    baseline: {offsets: [1h, 2h]}\n")
    plan = parse_plan(PLAN.format(extra=extra))
    assert refresh(plan, os.environ["AWS_ENDPOINT_URL"], NOW).metric_points > 0
    for check in plan.checks.values():
        r = run_check(check, ctx_for(ports))
        assert r.status == PASS and r.data["outcome"] == "PASS", r.detail
