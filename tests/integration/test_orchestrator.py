"""The use cases end to end against the emulator over real HTTP (boto3 with AWS_ENDPOINT_URL)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.core import state
from cutover.testing.counter import CallCounter
from cutover.adapters.aws import make_ports
from cutover.errors import Blocked, ExitCode, GateFailed

ROOT = Path(__file__).parents[2]


def advance_to(e2e, phase):
    while True:
        view = state.StateStore(e2e.plan, e2e().aws.params).read()
        if view.phase == phase:
            return
        out = orchestrator.advance(e2e(), approve=True, reason="test")
        assert out.exit_code == 0, out.headline


def test_advance_through_every_phase_sets_exactly_the_declared_values(e2e):
    assert e2e.live() == e2e.plan.rollback_values()
    for phase in e2e.plan.phases:
        out = orchestrator.advance(e2e(), approve=True, reason="test")
        assert out.exit_code == 0 and phase.name in out.headline
        assert e2e.live() == e2e.plan.values_for(phase.name)
        rec = state.StateStore(e2e.plan, e2e().aws.params).read().record
        assert (rec.phase, rec.status, rec.actor) == (phase.name, "stable", "arn:aws:sts::123456789012:user/moto")
    assert "nothing to do" in orchestrator.advance(e2e(), approve=True, reason="test").headline


def test_secure_flag_is_a_securestring_and_never_in_evidence(e2e):
    advance_to(e2e, "canary")
    raw = make_ports("us-east-2", None, True).params.get_many(["/e2e/allow"])["/e2e/allow"]
    assert raw.type == "SecureString"
    for path in e2e.evidence.rglob("report.*"):
        assert "canary@example.com" not in path.read_text()


@pytest.mark.parametrize("phase", ["shadow", "canary", "full"])
def test_rollback_from_every_phase(e2e, phase):
    advance_to(e2e, phase)
    out = orchestrator.rollback(e2e(), reason="incident")
    assert out.exit_code == 0
    assert e2e.live() == e2e.plan.rollback_values()
    rec = state.StateStore(e2e.plan, e2e().aws.params).read().record
    assert (rec.phase, rec.status, rec.reason) == ("rolled_back", "stable", "incident")


def test_rollback_to_an_earlier_phase(e2e):
    advance_to(e2e, "full")
    assert orchestrator.rollback(e2e(), to="shadow").exit_code == 0
    assert e2e.live() == e2e.plan.values_for("shadow")
    assert state.StateStore(e2e.plan, e2e().aws.params).read().phase == "shadow"


def test_second_rollback_writes_nothing(e2e):
    advance_to(e2e, "canary")
    orchestrator.rollback(e2e())
    counter = CallCounter()
    out = orchestrator.rollback(e2e(counter=counter))
    assert "nothing to do" in out.headline and counter.writes() == {}


def test_advance_after_rollback_re_enters_phase_zero(e2e):
    advance_to(e2e, "canary")
    orchestrator.rollback(e2e())
    out = orchestrator.advance(e2e())
    assert out.exit_code == 0 and e2e.live() == e2e.plan.values_for("shadow")


def test_dry_runs_make_zero_write_requests(e2e, emulator):
    advance_to(e2e, "shadow")
    emulator.start_recording()
    try:
        adv = orchestrator.advance(e2e(dry_run=True), approve=True, reason="test")
        rb = orchestrator.rollback(e2e(dry_run=True))
        recorded = emulator.recorded_requests()
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert adv.exit_code == 0 and [c["flag"] for c in adv.data["changes"]] == ["kill", "outbound", "mode", "allow", "cohort"]
    assert rb.exit_code == 0 and [c["flag"] for c in rb.data["changes"]] == ["mode"]
    assert any(r["operation"] == "GetParameters" for r in recorded)  # the recorder did see the reads
    assert writes == []
    assert e2e.live() == e2e.plan.values_for("shadow")


def test_dry_run_session_refuses_writes_even_if_the_core_tried(e2e):
    from cutover.errors import ReadOnlyViolation

    with pytest.raises(ReadOnlyViolation):
        e2e(dry_run=True).aws.params.put("/e2e/kill", "on")


def test_failed_gate_writes_nothing(e2e, emulator):
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")
    counter = CallCounter()
    out = orchestrator.advance(e2e(counter=counter))
    assert out.exit_code == ExitCode.GATE_FAILED and "quiet" in out.headline
    assert set(counter.writes()) <= {"ssm:PutParameter", "ssm:DeleteParameter"}  # the lock only
    assert counter.calls["ssm:PutParameter"] == 1  # the lock create; no flag, no state record
    assert state.StateStore(e2e.plan, e2e().aws.params).read().record is None
    assert e2e.live() == e2e.plan.rollback_values()


def test_approval_is_required(e2e):
    advance_to(e2e, "shadow")
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e())
    assert "--approve" in err.value.hint
    assert e2e.live() == e2e.plan.values_for("shadow")


def test_bake_must_elapse_before_the_next_advance(e2e):
    import dataclasses

    plan = e2e.plan
    baking = dataclasses.replace(plan, phases=(dataclasses.replace(plan.phases[0], bake=1800), *plan.phases[1:]))
    assert orchestrator.advance(e2e(plan=baking)).exit_code == 0
    with pytest.raises(GateFailed) as err:
        orchestrator.advance(e2e(plan=baking), approve=True, reason="test")
    assert "still baking" in err.value.message and "left of 30m" in err.value.message
    e2e.clock.advance(1801)
    assert orchestrator.advance(e2e(plan=baking), approve=True, reason="test").exit_code == 0


def other_operator_lock(e2e, **kw):
    return state.acquire(e2e.plan, e2e().aws.params, e2e.clock, holder="arn:aws:iam::1:user/bob", command="advance",
                         run_id="bobsrun", **kw)


def test_advance_is_blocked_by_a_live_lock_naming_the_holder(e2e):
    other_operator_lock(e2e)
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e())
    assert "user/bob" in err.value.message and "unlock --force" in err.value.hint


def test_expired_lease_is_taken_over(e2e):
    other_operator_lock(e2e)
    e2e.clock.advance(e2e.plan.lock_lease + 1)
    out = orchestrator.advance(e2e())
    assert out.exit_code == 0
    assert any("took over a stale lock from arn:aws:iam::1:user/bob" in n for n in json.loads(
        next(e2e.evidence.rglob("report.json")).read_text())["notes"])
    assert state.read_lock(e2e.plan, e2e().aws.params) is None  # released after the advance


def test_rollback_while_another_operator_holds_the_lock(e2e):
    advance_to(e2e, "shadow")
    other_operator_lock(e2e)
    out = orchestrator.rollback(e2e(), reason="incident")
    assert out.exit_code == 0 and e2e.live() == e2e.plan.rollback_values()
    assert state.StateStore(e2e.plan, e2e().aws.params).read().record.preempted == "bobsrun"


def test_rollback_preempts_a_running_advance_before_its_next_write(e2e):
    """A rollback lands right after the advance's first flag write: the advance must stop (exit 3)
    without writing again, and every flag ends at its rollback value."""
    advance_to(e2e, "shadow")
    rt = e2e(counter=CallCounter())  # ports of its own: only this run's writes are wrapped below
    real_put = rt.aws.params.put
    puts = []

    def put(name, value, **kw):
        version = real_put(name, value, **kw)
        puts.append(name)
        if name.startswith("/e2e/") and len([p for p in puts if p.startswith("/e2e/")]) == 1:
            assert orchestrator.rollback(e2e(), reason="incident").exit_code == 0
        return version

    rt.aws.params.put = put
    with pytest.raises(Blocked) as err:
        orchestrator.advance(rt, approve=True, reason="test")
    assert "preempted" in err.value.message
    assert [p for p in puts if p.startswith("/e2e/")] == ["/e2e/kill"]
    assert e2e.live() == e2e.plan.rollback_values()
    assert state.StateStore(e2e.plan, e2e().aws.params).read().record.status == "stable"


def test_corrupt_state_record(e2e):
    params = e2e().aws.params
    params.put(e2e.plan.state_parameter, '{"phase": "canary"')
    params.put("/e2e/kill", "on")
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT and "corrupt" in st.headline and "rollback" in st.hint
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e())
    assert "corrupt" in err.value.message
    assert orchestrator.rollback(e2e()).exit_code == 0
    assert e2e.live() == e2e.plan.rollback_values()
    assert orchestrator.status(e2e(dry_run=True), check=True).exit_code == 0


def test_status_reports_drift_and_an_interrupted_advance(e2e):
    advance_to(e2e, "shadow")
    params = e2e().aws.params
    params.put("/e2e/mode", "hand-edited")
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT and st.data["drift"] == ["mode"]
    # An advance to canary that died after its first write: record says advancing, lock is gone.
    params.put("/e2e/mode", "shadow")
    state.StateStore(e2e.plan, params).write(state.StateRecord(phase="shadow", status="advancing", target="canary",
                                                               run_id="dead", command="advance"), e2e.clock)
    params.put("/e2e/kill", "on")
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT
    assert any("mixed between shadow and canary: at canary: kill; at shadow: outbound, mode, allow, cohort" in line for line in st.lines)
    # Re-running the advance converges to the same target.
    assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0
    assert e2e.live() == e2e.plan.values_for("canary")


def test_history_lists_every_transition(e2e):
    advance_to(e2e, "canary")
    orchestrator.rollback(e2e(), reason="incident")
    rows = orchestrator.history(e2e(dry_run=True)).data["history"]
    stable = [(r["from"], r["to"]) for r in rows if r["status"] == "stable"]
    assert stable == [("pending", "shadow"), ("shadow", "canary"), ("canary", "rolled_back")]
    assert rows[-1]["reason"] == "incident"


def test_two_advance_processes_at_once_one_wins(e2e, tmp_path):
    """Two real processes: one enters the phase, the other exits 3 naming the holder."""
    plan = tmp_path / "slow.yaml"
    text = (ROOT / "tests/plans/e2e.yaml").read_text()
    # A gate that takes a while, so both processes overlap while the winner holds the lock.
    text = text.replace("checks:\n", "checks:\n  slow:\n    type: command\n    run: [\"%s\", \"-c\", \"import time; time.sleep(2)\"]\n" % sys.executable)
    text = text.replace("gates: [env_ok, secrets_ok, quiet]", "gates: [env_ok, secrets_ok, quiet, slow]")
    plan.write_text(text)
    cmd = [sys.executable, "-m", "cutover", "--plan", str(plan), "--evidence-dir", str(tmp_path / "ev"), "advance", "--yes"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 3], results
    loser = next(r for r in results if r[0] == 3)
    assert "the lock is held by arn:aws:sts::123456789012:user/moto" in loser[2] and "Traceback" not in loser[2]
    assert e2e.live() == e2e.plan.values_for("shadow")


def test_advance_refuses_while_a_rollback_is_unfinished(e2e):
    advance_to(e2e, "shadow")
    params = e2e().aws.params
    state.StateStore(e2e.plan, params).write(state.StateRecord(phase="shadow", status="rolling_back", target="rolled_back",
                                                               run_id="died", command="rollback"), e2e.clock)
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(), approve=True, reason="test")
    assert "rollback is unfinished" in err.value.message
    assert orchestrator.rollback(e2e()).exit_code == 0  # finishing it is always possible
    assert state.StateStore(e2e.plan, params).read().record.status == "stable"
