"""`cutover watch` on the emulator with an injected clock: bake completes, an alarm fires (with and
without auto-rollback), drift is caught, and a manual rollback never triggers a second one."""

from datetime import datetime, timezone

import pytest

from cutover.commands import orchestrator
from cutover.core import state
from cutover.commands import watch
from cutover.testing.clock import FakeClock
from cutover.errors import ExitCode


@pytest.fixture
def baking(e2e):
    """The e2e plan in shadow with a 30m bake, and a fake clock that only moves when watch sleeps."""
    import dataclasses

    plan = dataclasses.replace(e2e.plan, phases=(dataclasses.replace(e2e.plan.phases[0], bake=1800), *e2e.plan.phases[1:]))
    clock = FakeClock(datetime.now(timezone.utc))
    assert orchestrator.advance(e2e(plan=plan, clock=clock)).exit_code == 0
    return plan, clock


def test_quiet_bake_completes_and_says_the_next_advance_may_proceed(e2e, baking):
    plan, clock = baking
    polls = []
    out = watch.watch(e2e(plan=plan, clock=clock, dry_run=True), False, 60, polls.append)
    assert out.exit_code == ExitCode.OK and "baked for 30m" in out.headline and "--approve" in out.hint
    assert polls[-1].event == "baked" and len(polls) == 31  # a poll a minute, no real waiting
    assert all(p.alarms[0]["state"] == "OK" for p in polls)


def test_alarm_without_auto_rollback_exits_1_with_the_command(e2e, emulator, baking):
    plan, clock = baking
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")
    out = watch.watch(e2e(plan=plan, clock=clock, dry_run=True), False, 60, lambda p: None)
    assert out.exit_code == ExitCode.GATE_FAILED and "e2e-errors" in out.headline
    assert out.hint.startswith("roll back now: cutover rollback --yes")
    assert e2e.live() == plan.values_for("shadow")  # nothing changed


def test_alarm_with_auto_rollback_rolls_back_and_exits_6(e2e, emulator, baking):
    plan, clock = baking
    polls = []

    def show(p):
        polls.append(p)
        if len(polls) == 3:  # the incident starts ten minutes into the bake
            emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")

    out = watch.watch(e2e(plan=plan, clock=clock), True, 300, show)
    assert out.exit_code == ExitCode.ROLLED_BACK and polls[-1].event == "alarm"
    assert e2e.live() == plan.rollback_values()
    rec = e2e.state().record
    assert rec.phase == "rolled_back" and "auto-rollback by watch: alarm e2e-errors" in rec.reason


def test_drift_is_caught_like_an_alarm(e2e, baking):
    plan, clock = baking
    e2e().aws.params.put("/e2e/allow", "everyone@example.com", secure=True)
    out = watch.watch(e2e(plan=plan, clock=clock), True, 60, lambda p: None)
    assert out.exit_code == ExitCode.ROLLED_BACK and "drift: allow" in out.headline
    assert e2e.live() == plan.rollback_values()
    assert "everyone@example.com" not in str(out.data)


def test_a_manual_rollback_stops_the_watch_without_a_second_rollback(e2e, baking):
    plan, clock = baking
    polls = []

    def show(p):
        polls.append(p)
        if len(polls) == 2:
            assert orchestrator.rollback(e2e(plan=plan, clock=clock), reason="manual").exit_code == 0

    out = watch.watch(e2e(plan=plan, clock=clock), True, 60, show)
    assert out.exit_code == ExitCode.BLOCKED and "watch stopped" in out.headline
    versions = [v for v in state.StateStore(plan, e2e().aws.params).history()]
    assert [r.reason for _, _, r, _ in versions if r and r.status == "stable"][-1] == "manual"  # no automatic one after it


def test_nothing_to_watch_when_pending(e2e):
    out = watch.watch(e2e(dry_run=True), False, 1, lambda p: None)
    assert out.exit_code == 0 and "nothing to watch" in out.headline


def test_cli_watch_prints_json_lines(e2e, tmp_path):
    import json

    from typer.testing import CliRunner

    from cutover.cli.app import app

    assert orchestrator.advance(e2e()).exit_code == 0  # shadow, no bake: the first poll completes it
    result = CliRunner().invoke(app, ["--plan", "tests/plans/e2e.yaml", "--evidence-dir", str(tmp_path), "watch", "--interval", "1"])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.exit_code == 0 and lines[0]["event"] == "baked" and lines[0]["phase"] == "shadow"
    assert "stderr is not a terminal, so each poll is one JSON line on stdout" in result.stderr  # said, not silent


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), 0, -5, 0.5, 3601])
def test_an_interval_out_of_range_is_refused_before_any_aws_call(e2e, interval):
    from cutover.testing.counter import CallCounter
    from cutover.errors import UsageError

    counter = CallCounter()
    with pytest.raises(UsageError, match="from 1 to 3600"):
        watch.watch(e2e(dry_run=True, counter=counter), False, interval, lambda p: None)
    assert counter.total == 0
