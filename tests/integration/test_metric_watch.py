"""`watch:` metric checks judged at every `cutover watch` poll on the emulator (data put with past
timestamps; the injected clock moves only when watch sleeps): a regression ends the watch like an
alarm, healthy noise does not, and a bake with no data never passes silently."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta, timezone

import pytest

from cutover.commands import orchestrator
from cutover.commands import watch
from cutover.testing.clock import FakeClock
from cutover.errors import ExitCode
from cutover.checks.metric import MetricCheck
from cutover.model.metrics import MetricQuery

START = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=2)
BAKE = 1800.0
PER_MINUTE = 200
SUCCESS = MetricCheck(
    name="order_success",
    bad=MetricQuery("RPMW/OrderStatus", "Failed", {"Env": "prod"}),
    total=MetricQuery("RPMW/OrderStatus", "Handled", {"Env": "prod"}),
    window=600.0, min_total=200, max_rate=0.02)


@pytest.fixture
def baking(e2e):
    """The e2e plan in shadow with a 30m bake watched by order_success; a clock two hours back, so every
    datapoint of the bake is in the past for CloudWatch."""
    shadow = dataclasses.replace(e2e.plan.phases[0], bake=BAKE, watch=("order_success",))
    plan = dataclasses.replace(e2e.plan, checks={**e2e.plan.checks, "order_success": SUCCESS},
                               phases=(shadow, *e2e.plan.phases[1:]))
    clock = FakeClock(START)
    assert orchestrator.advance(e2e(plan=plan, clock=clock)).exit_code == 0
    return plan, clock


def put_minutes(rates: list[float], seed: int = 0) -> None:
    """Per-minute Handled and Failed from the bake's start: minute i fails at rates[i], binomial noise."""
    import os

    from cutover.sandbox.seed import EmulatorSeeder

    rng = random.Random(seed)
    stamps = [START + timedelta(minutes=i) for i in range(len(rates))]
    failed = [sum(rng.random() < rate for _ in range(PER_MINUTE)) for rate in rates]
    seeder = EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2")
    seeder.put_metric_points(SUCCESS.total, [(t, PER_MINUTE) for t in stamps])
    seeder.put_metric_points(SUCCESS.bad, list(zip(stamps, failed)))


def test_healthy_noise_bakes_through_every_poll(e2e, baking):
    plan, clock = baking
    put_minutes([0.01] * 40, seed=3)
    polls = []
    out = watch.watch(e2e(plan=plan, clock=clock, dry_run=True), False, 60, polls.append)
    assert out.exit_code == ExitCode.OK, out.headline
    judged = [p.metrics[0] for p in polls if p.metrics and p.metrics[0]["outcome"] != "PENDING"]
    assert len(judged) >= 25 and all(m["outcome"] == "PASS" and m["test"] == "sprt_cusum" for m in judged)
    assert judged[-1]["total"] >= 25 * PER_MINUTE  # the whole bake so far, not a trailing window


def test_a_regression_rolls_back_with_auto_rollback(e2e, baking):
    plan, clock = baking
    put_minutes([0.01] * 12 + [0.08] * 28, seed=4)
    polls = []
    out = watch.watch(e2e(plan=plan, clock=clock), True, 60, polls.append)
    assert out.exit_code == ExitCode.ROLLED_BACK and polls[-1].event == "metric"
    assert "order_success FAIL rate" in out.headline and "rolled back automatically" in out.headline
    assert e2e.live() == plan.rollback_values()
    assert "auto-rollback by watch: order_success FAIL" in e2e.state().record.reason
    last = out.data["last_poll"]["metrics"][0]
    assert last["test"] == "sprt_cusum" and last["statistic"] >= last["critical"]
    assert 12 < len(polls) < 31  # caught during the bake, after the regression began


def test_a_regression_without_auto_rollback_exits_1_with_the_rollback_command(e2e, baking):
    plan, clock = baking
    put_minutes([0.1] * 40, seed=5)
    out = watch.watch(e2e(plan=plan, clock=clock, dry_run=True), False, 60, lambda p: None)
    assert out.exit_code == ExitCode.GATE_FAILED and "order_success FAIL" in out.headline
    assert out.hint.startswith("roll back now: cutover rollback --yes")
    assert e2e.live() == plan.values_for("shadow")


def test_a_bake_with_no_metric_data_does_not_pass(e2e, baking):
    plan, clock = baking
    polls = []
    out = watch.watch(e2e(plan=plan, clock=clock, dry_run=True), True, 60, polls.append)
    assert out.exit_code == ExitCode.GATE_FAILED and "has no judgement" in out.headline
    assert "no traffic" in out.headline
    assert e2e.live() == plan.values_for("shadow")  # no data is not a regression: nothing rolled back


def test_an_inconclusive_gate_blocks_the_advance_and_writes_nothing(e2e):
    """Through `advance`: exit 1, no flag written, the figures in --json data and in the evidence."""
    import json
    from pathlib import Path

    shadow = dataclasses.replace(e2e.plan.phases[0], gates=(*e2e.plan.phases[0].gates, "order_success"))
    plan = dataclasses.replace(e2e.plan, checks={**e2e.plan.checks, "order_success": SUCCESS},
                               phases=(shadow, *e2e.plan.phases[1:]))
    before = e2e.live()
    out = orchestrator.advance(e2e(plan=plan, clock=FakeClock(START)))
    assert out.exit_code == ExitCode.GATE_FAILED and "order_success" in out.headline
    assert e2e.live() == before and e2e.state().phase == "pending"
    gate = next(g for g in out.data["gates"] if g["check"] == "order_success")
    assert gate["data"]["outcome"] == "INCONCLUSIVE" and gate["data"]["total"] == 0
    report = json.loads((Path(out.evidence_path) / "report.json").read_text())
    assert next(g for g in report["gates"] if g["check"] == "order_success")["data"]["reason"] == gate["detail"]
