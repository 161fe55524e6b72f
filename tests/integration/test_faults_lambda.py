"""Faults around Lambda flags, injected from outside the process by the fault proxy: someone else
changing the function between our read and our write (PreconditionFailedException on RevisionId,
which moto itself ignores), a function nobody may read, lost responses and throttling. The plan is
tests/plans/e2e.yaml, which mixes SSM flags with two variables of `e2e-worker`.
"""

from __future__ import annotations

import pytest

from cutover.commands import orchestrator
from cutover.testing.counter import CallCounter
from cutover.errors import AwsError, ExitCode, Incomplete
from cutover.testing.faultproxy import Faults


def to_canary(e2e):
    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    assert orchestrator.advance(e2e(), approve=True, reason="canary").exit_code == 0


def test_conflict_injected_by_the_fault_layer_keeps_someone_elses_change(e2e, emulator, fault_proxy, reliability):
    seeder = emulator.seeder("us-east-2")

    def someone_else(function):
        seeder.put_environment(function, {**seeder.environment(function), "LOG_LEVEL": "changed-meanwhile"})

    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    fault_proxy.reconfigure(Faults(revision_conflicts=2, before_conflict=someone_else))
    assert orchestrator.advance(e2e(), approve=True, reason="canary").exit_code == 0
    assert fault_proxy.injected["conflict"] == 2
    assert e2e.live() == e2e.plan.values_for("canary")
    assert e2e.others()["e2e-worker"]["LOG_LEVEL"] == "changed-meanwhile"
    reliability.record("Lambda: someone else changes the function between read and write",
                       "fault proxy answers PreconditionFailedException after changing another variable", True)


def test_endless_conflicts_stop_the_advance_and_a_rollback_repairs(e2e, fault_proxy, reliability):
    others = e2e.others()
    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    fault_proxy.reconfigure(Faults(revision_conflicts=1000))
    with pytest.raises(Incomplete) as err:
        orchestrator.advance(e2e(), approve=True, reason="canary")
    assert "e2e-worker" in err.value.message and "confirmed: kill" in err.value.message
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT and "interrupted" in st.headline
    fault_proxy.reconfigure(Faults())
    assert orchestrator.rollback(e2e()).exit_code == 0
    assert e2e.live() == e2e.plan.rollback_values() and e2e.others() == others
    reliability.record("Lambda: the function never stops changing", "every UpdateFunctionConfiguration refused", True)


def test_an_unreadable_function_does_not_stop_the_kill_switches(e2e, fault_proxy, reliability):
    to_canary(e2e)
    fault_proxy.reconfigure(Faults(deny={"GetFunctionConfiguration"}))

    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT and "e2e-worker" in st.headline
    assert any("cannot read Lambda function e2e-worker" in line for line in st.lines)
    assert {r["flag"] for r in st.data["flags"] if r.get("unreadable")} == {"outbound", "cohort"}

    with pytest.raises(Incomplete) as err:
        orchestrator.rollback(e2e(), reason="incident")
    assert "e2e-worker" in err.value.message
    live = e2e.live()
    ssm = {f.name for f in e2e.plan.ssm_flags}
    assert {k: v for k, v in live.items() if k in ssm} == {k: v for k, v in e2e.plan.rollback_values().items() if k in ssm}

    fault_proxy.reconfigure(Faults())
    assert orchestrator.rollback(e2e(), reason="incident").exit_code == 0
    assert e2e.live() == e2e.plan.rollback_values()
    reliability.record("Lambda: the function cannot be read", "GetFunctionConfiguration denied during status, "
                       "rollback and advance", True)


def test_advance_refuses_on_an_unreadable_function_and_writes_nothing(e2e, fault_proxy):
    fault_proxy.reconfigure(Faults(deny={"GetFunctionConfiguration"}))
    counter = CallCounter()
    with pytest.raises(AwsError) as err:
        orchestrator.advance(e2e(counter=counter))
    assert "lambda:GetFunctionConfiguration" in err.value.message and counter.writes() == {}
    assert e2e.state().record is None


def test_lambda_updates_whose_response_is_lost_are_recognised(e2e, fault_proxy, monkeypatch, reliability):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    others = e2e.others()
    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    fault_proxy.reconfigure(Faults(lost_response_rate=1.0, only_operations={"UpdateFunctionConfiguration"}))
    assert orchestrator.advance(e2e(), approve=True, reason="canary").exit_code == 0
    assert fault_proxy.calls["UpdateFunctionConfiguration"] == 1  # applied once, recognised by reading, not re-sent
    assert e2e.live() == e2e.plan.values_for("canary") and e2e.others() == others
    reliability.record("Lambda: update applied but response lost", "fault proxy applies it, then drops the connection", True)


def test_throttled_and_failing_lambda_calls_are_retried(e2e, fault_proxy, reliability):
    others = e2e.others()
    fault_proxy.reconfigure(Faults(seed=7, throttle_rate=0.3, error_rate=0.2,
                                   only_operations={"GetFunctionConfiguration", "UpdateFunctionConfiguration"}))
    to_canary(e2e)
    assert orchestrator.rollback(e2e()).exit_code == 0
    assert fault_proxy.injected["throttle"] + fault_proxy.injected["error"] > 0
    assert e2e.live() == e2e.plan.rollback_values() and e2e.others() == others
    reliability.record("Lambda: throttling and 5xx", "seeded share of Lambda calls throttled or failed", True)
