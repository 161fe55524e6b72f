"""The alarms check's `expect`: the alarms in AWS must be the monitoring the plan relies on.

Plan validation (line-numbered errors), the gate on fakes (each mismatch names the alarm and the
field), and the real CloudWatch adapter against the emulator (moto stores PutMetricAlarm's config).
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cutover.testing.clock import FakeClock
from cutover.clock import SystemClock
from cutover.errors import PlanError
from cutover.gates import FAIL, PASS, run_check
from cutover.gates.context import GateContext
from cutover.checks.alarm_expect import AlarmExpect
from cutover.checks.alarms import AlarmsCheck
from cutover.plan.load import load_plan, parse_plan
from cutover.ports import Alarm
from cutover.redact import Redactor

try:
    from gatefakes import FakeAlarms, make_ctx
except ImportError:  # tests/ became a package
    from tests.gatefakes import FakeAlarms, make_ctx

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-2"
ERRORS = "app-error-rate"
OPENAI = "app-openai-failures"


HEAD = """\
version: 1
name: demo
region: us-east-2
flags:
  kill: {parameter: /app/kill, rollback: "false"}
checks:
  quiet:
"""
PHASES = """\
phases:
  - name: one
    set: {kill: "true"}
    gates: [quiet]
"""


def plan_with(alarms_check: str) -> str:
    """A plan whose one check, `quiet`, is `alarms_check` (written unindented)."""
    return HEAD + textwrap.indent(textwrap.dedent(alarms_check), "    ") + PHASES


GOOD = """\
type: alarms
names: [app-error-rate, app-openai-failures]
expect:
  app-error-rate: {threshold: 5, comparison: GreaterThanThreshold, period: 15m, evaluation_periods: 1}
  app-openai-failures:
    threshold: 0
    metric: OpenAIFailures
    namespace: App/Worker
"""


def error_of(text: str) -> PlanError:
    with pytest.raises(PlanError) as info:
        parse_plan(text)
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the plan ----------------------------------------------------------------------------------------


def test_expect_becomes_the_model():
    check = parse_plan(plan_with(GOOD)).checks["quiet"]
    assert check.expect == {
        ERRORS: AlarmExpect(threshold=5.0, comparison="GreaterThanThreshold", period=900.0, evaluation_periods=1),
        OPENAI: AlarmExpect(threshold=0.0, metric="OpenAIFailures", namespace="App/Worker"),
    }
    assert AlarmsCheck("x", names=("a",)).expect == {}  # optional, empty by default


def test_expect_for_an_alarm_not_in_names_is_an_error_on_its_line():
    text = plan_with(GOOD.replace("  app-openai-failures:", "  app-openai-failure:"))
    err = error_of(text)
    assert err.line == line_of(text, "app-openai-failure:")
    assert "alarm 'app-openai-failure' is not in this check's names" in err.detail
    assert "did you mean 'app-openai-failures'?" in err.hint


def test_expect_may_name_an_alarm_under_the_prefix():
    text = plan_with("type: alarms\nprefix: app-\nexpect:\n  app-error-rate: {threshold: 5}\n")
    assert parse_plan(text).checks["quiet"].expect[ERRORS].threshold == 5
    text = plan_with("type: alarms\nprefix: app-\nexpect:\n  other-alarm: {threshold: 5}\n")
    assert "not in this check's names or prefix 'app-'" in error_of(text).detail


@pytest.mark.parametrize(
    "old,new,words",
    [
        ("comparison: GreaterThanThreshold", "comparison: '>'", ["'>' is not allowed", "GreaterThanThreshold"]),
        ("period: 15m", "period: 90s", ["CloudWatch has no period of 90s"]),
        ("period: 15m", "period: 0s", ["zero"]),
        ("threshold: 5,", "threshold: 5%,", ["expected a number"]),
        ("evaluation_periods: 1", "evaluation_periods: 0", ["0 is less than 1"]),
        ("evaluation_periods: 1", "evaluation_periods: 1.5", ["expected a whole number"]),
        ("evaluation_periods: 1", "statistic: Sum", ["unknown key 'statistic' for an alarm expectation"]),
        ("metric: OpenAIFailures", "metric: ''", ["empty value"]),
    ],
)
def test_bad_expectations_are_errors_on_their_line(old, new, words):
    text = plan_with(GOOD.replace(old, new))
    err = error_of(text)
    assert err.line == line_of(text, new), str(err)
    for w in words:
        assert w in err.detail, err.detail


def test_an_empty_expectation_and_expect_on_another_check_type():
    text = plan_with(GOOD.replace("{threshold: 5, comparison: GreaterThanThreshold, period: 15m, evaluation_periods: 1}", "{}"))
    assert "needs at least one entry" in error_of(text).detail
    text = plan_with("type: env\npresent: [HOME]\nexpect: {a: {threshold: 1}}\n")
    assert "unknown key 'expect' for an env check" in error_of(text).detail


def test_the_repo_plan_expects_the_documented_thresholds():
    quiet = load_plan(ROOT / "phases.yaml").checks["alarms_quiet"]
    assert set(quiet.expect) == set(quiet.names)  # every alarm the plan relies on is pinned
    worker = quiet.expect["rp-mw-prod-worker-error-rate"]
    assert (worker.threshold, worker.comparison, worker.period) == (5, "GreaterThanThreshold", 900)


# --- the gate on fakes ---------------------------------------------------------------------------------


def configured(name: str, clock: FakeClock, state: str = "OK", **config) -> Alarm:
    """An alarm in `state` for an hour, configured like EXPECT unless overridden."""
    base = dict(threshold=5.0, comparison="GreaterThanThreshold", period=900.0, evaluation_periods=1,
                metric="ErrorRate", namespace="App/Worker")
    return Alarm(name, state, clock.now() - timedelta(hours=1), **{**base, **config})


EXPECT = AlarmExpect(threshold=5, comparison="GreaterThanThreshold", period=900, evaluation_periods=1,
                     metric="ErrorRate", namespace="App/Worker")


def gate(*alarms: Alarm, **kw) -> AlarmsCheck:
    return AlarmsCheck("quiet", names=kw.pop("names", (ERRORS,)), quiet_for=900, expect=kw.pop("expect", {ERRORS: EXPECT}), **kw)


def run(check: AlarmsCheck, *alarms: Alarm, clock: FakeClock):
    return run_check(check, make_ctx(alarms=FakeAlarms(list(alarms)), clock=clock))


def test_matching_configuration_passes():
    clock = FakeClock()
    r = run(gate(), configured(ERRORS, clock), clock=clock)
    assert r.status == PASS and r.detail == "1 alarm OK, quiet for >= 15m; 1 configured as expected"


@pytest.mark.parametrize(
    "config,detail",
    [
        ({"threshold": 10.0}, "app-error-rate: expected threshold 5, AWS has 10"),
        ({"threshold": 5.5}, "app-error-rate: expected threshold 5, AWS has 5.5"),
        ({"comparison": "GreaterThanOrEqualToThreshold"},
         "app-error-rate: expected comparison GreaterThanThreshold, AWS has GreaterThanOrEqualToThreshold"),
        ({"period": 300.0}, "app-error-rate: expected period 15m, AWS has 5m"),
        ({"evaluation_periods": 3}, "app-error-rate: expected evaluation periods 1, AWS has 3"),
        ({"metric": "Errors"}, "app-error-rate: expected metric ErrorRate, AWS has Errors"),
        ({"namespace": None}, "app-error-rate: expected namespace App/Worker, AWS has none"),
    ],
)
def test_each_differing_field_fails_naming_alarm_and_field(config, detail):
    clock = FakeClock()
    r = run(gate(), configured(ERRORS, clock, **config), clock=clock)
    assert r.status == FAIL and r.detail == detail
    assert "fix the alarm" in r.next_action and "expect" in r.next_action


def test_several_differences_are_all_named_and_only_declared_fields_compared():
    clock = FakeClock()
    r = run(gate(), configured(ERRORS, clock, threshold=10.0, period=3600.0), clock=clock)
    assert r.detail == ("app-error-rate: expected threshold 5, AWS has 10; "
                        "app-error-rate: expected period 15m, AWS has 1h")
    loose = gate(expect={ERRORS: AlarmExpect(threshold=10)})  # only the threshold is pinned
    assert run(loose, configured(ERRORS, clock, threshold=10.0, period=60.0, metric="X"), clock=clock).status == PASS


def test_composite_alarm_has_no_threshold():
    clock = FakeClock()
    composite = Alarm(ERRORS, "OK", clock.now() - timedelta(hours=1), composite=True)
    r = run(gate(expect={ERRORS: AlarmExpect(threshold=5)}), composite, clock=clock)
    assert r.status == FAIL and r.detail == "app-error-rate: expected threshold 5, AWS has none (composite alarm)"


def test_expected_alarm_under_the_prefix_must_exist():
    clock = FakeClock()
    check = AlarmsCheck("quiet", prefix="app-", expect={OPENAI: AlarmExpect(threshold=0)})
    r = run(check, configured(ERRORS, clock), clock=clock)
    assert r.status == FAIL and r.detail == "alarm not found: app-openai-failures"


def test_a_firing_alarm_still_decides_the_next_action():
    clock = FakeClock()
    r = run(gate(), configured(ERRORS, clock, state="ALARM", threshold=10.0), clock=clock)
    assert r.status == FAIL and r.detail.startswith("app-error-rate in ALARM since ")
    assert "expected threshold 5, AWS has 10" in r.detail and r.next_action.startswith("do not advance")


# --- the real adapter against the emulator -----------------------------------------------------------------


@pytest.fixture
def cloudwatch(aws_env):
    import boto3

    return boto3.client("cloudwatch", region_name=REGION)


def put_alarm(cw, name: str, **over) -> None:
    args = dict(AlarmName=name, Namespace="App/Worker", MetricName="ErrorRate", Statistic="Average", Period=900,
                EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold")
    cw.put_metric_alarm(**{**args, **over})


def emulator_ctx() -> GateContext:
    from cutover.adapters.aws import make_ports

    return GateContext(aws=make_ports(REGION, None, read_only=True), env={}, clock=SystemClock(), redactor=Redactor())


def test_emulator_alarm_configuration_is_read_and_compared(emulator, cloudwatch):
    put_alarm(cloudwatch, ERRORS)
    put_alarm(cloudwatch, OPENAI, Threshold=10.0, Period=300, ComparisonOperator="GreaterThanOrEqualToThreshold")
    emulator.start_recording()
    ctx = emulator_ctx()
    check = AlarmsCheck("quiet", names=(ERRORS, OPENAI), expect={ERRORS: EXPECT, OPENAI: AlarmExpect(threshold=0, period=300)})
    r = run_check(check, ctx)
    emulator.stop_recording()
    assert r.status == FAIL and r.detail == "app-openai-failures: expected threshold 0, AWS has 10"
    assert emulator.write_requests() == []  # a gate never writes

    r = run_check(dataclasses.replace(check, expect={ERRORS: EXPECT}), ctx)
    assert r.status == PASS and r.detail.endswith("2 alarms OK, quiet for >= 0s; 1 configured as expected")


def test_emulator_metric_math_alarm(cloudwatch):
    """Errors / Invocations in percent: no MetricName or Period of its own, only in its Metrics."""
    stat = lambda name: {"Metric": {"Namespace": "AWS/Lambda", "MetricName": name}, "Period": 900, "Stat": "Sum"}  # noqa: E731
    cloudwatch.put_metric_alarm(
        AlarmName=ERRORS, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "rate", "Expression": "100*errors/invocations", "ReturnData": True},
                 {"Id": "errors", "MetricStat": stat("Errors"), "ReturnData": False},
                 {"Id": "invocations", "MetricStat": stat("Invocations"), "ReturnData": False}])
    [alarm] = emulator_ctx().aws.alarms.describe([ERRORS])
    assert (alarm.threshold, alarm.period, alarm.metric, alarm.namespace) == (5.0, 900.0, "100*errors/invocations", "AWS/Lambda")
    want = AlarmExpect(threshold=5, comparison="GreaterThanThreshold", period=900, namespace="AWS/Lambda")
    assert run_check(AlarmsCheck("quiet", names=(ERRORS,), expect={ERRORS: want}), emulator_ctx()).status == PASS


def test_sandbox_seeds_the_repo_plans_alarms_as_expected(aws_env):
    """`cutover rehearse` depends on it: seeded alarms match the plan's expect exactly."""
    from cutover.sandbox.emulator import seed

    plan = load_plan(ROOT / "phases.yaml")
    seed(plan, aws_env["AWS_ENDPOINT_URL"])
    check = dataclasses.replace(plan.checks["alarms_quiet"], quiet_for=0)
    r = run_check(check, emulator_ctx())
    assert r.status == PASS and r.detail.endswith("5 configured as expected"), r.detail
