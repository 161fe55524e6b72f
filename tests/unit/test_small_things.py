"""Small things a tired person hits (the operator-experience issue, item 14), each pinned by a test."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.ports import Alarm, AwsPorts
from cutover.plan.load import load_plan
from cutover.testing.clock import FakeClock
from tests.fakes import FakeFunctionStore, FakeIdentity, FakeParameterStore
from tests.gatefakes import FakeAlarms, FakeLogs, FakeSecrets

PLAN = load_plan(str(Path(__file__).resolve().parents[1] / "plans" / "e2e.yaml"))


def runtime_with(record: dict, phase: str = "canary") -> orchestrator.Runtime:
    store = FakeParameterStore()
    values = PLAN.values_for(phase)
    for f in PLAN.ssm_flags:
        store.put(f.parameter, values[f.name], secure=f.secure)
    functions = FakeFunctionStore({"e2e-worker": {f.target.variable: values[f.name] for f in PLAN.flags if f.kind == "lambda"}})
    store.put(PLAN.state_parameter, json.dumps({"plan": PLAN.name, "entered_at": "2026-01-01T00:00:00Z", **record}))
    quiet = Alarm("e2e-errors", "OK", datetime(2025, 12, 1, tzinfo=timezone.utc))  # the plan's alarm, quiet
    ports = AwsPorts(params=store, alarms=FakeAlarms([quiet]), secrets=FakeSecrets(), logs=FakeLogs(), identity=FakeIdentity(),
                     region=PLAN.region, functions=functions)
    return orchestrator.Runtime(plan=PLAN, aws=ports, env={}, clock=FakeClock(), evidence_dir=None)


@pytest.mark.parametrize("status,says", [
    ("rolling_back", "finish it by re-running `cutover rollback`"),
    ("interrupted", "finish it with `cutover advance`, or undo it with `cutover rollback`"),
])
def test_an_unfinished_transition_names_each_command_once(status, says):
    out = orchestrator.status(runtime_with({"phase": "shadow", "status": status, "target": "canary"}))
    (line,) = [ln for ln in out.lines if "was interrupted" in ln]
    assert line.strip() == f"{status} was interrupted: {says}"
    assert line.count("`cutover rollback`") == 1


def test_rollback_to_the_current_phase_repairs_its_drift():
    rt = runtime_with({"phase": "shadow", "status": "stable"}, phase="shadow")
    drifted = next(f for f in PLAN.ssm_flags if not f.secure)
    rt.aws.params.put(drifted.parameter, "someone-else")
    out = orchestrator.rollback(rt, to="shadow", reason="drift")
    assert out.exit_code == 0, out.headline
    assert rt.aws.params.get_many([drifted.parameter])[drifted.parameter].value == PLAN.values_for("shadow")[drifted.name]
    st = orchestrator.status(rt, check=True)
    assert st.exit_code == 0, st.headline
    assert st.data["state"]["phase"] == "shadow"


def test_history_in_plain_text_names_the_command_and_the_approver():
    rt = runtime_with({"phase": "canary", "status": "stable", "actor": "arn:aws:iam::123456789012:user/rm",
                       "command": "advance", "approved_by": "jane@example.com", "reason": "CAB-42"})
    (line,) = orchestrator.history(rt).lines
    assert line.endswith("-> canary (stable) by `advance`, approved by jane@example.com, reason: CAB-42"), line


def test_a_healthy_status_says_the_next_step_and_when():
    shadow, canary = PLAN.phases[0], PLAN.phases[1]
    rt = runtime_with({"phase": shadow.name, "status": "stable"}, phase=shadow.name)
    st = orchestrator.status(rt)
    assert st.hint.startswith(f"`cutover advance` into {canary.name}")
    if shadow.bake:  # entered just now (the fake clock's start): the whole bake is left
        from cutover.model.durations import format_duration

        assert st.hint.endswith(f" in {format_duration(shadow.bake)}, when {shadow.name}'s bake ends")
    rt.clock.advance(shadow.bake + 1)
    assert orchestrator.status(rt).data["next"].startswith(f"`cutover advance` into {canary.name}")
    assert "bake ends" not in orchestrator.status(rt).hint


def test_watch_says_what_a_drifted_flag_holds_and_each_note_once_after_an_auto_rollback():
    from cutover.commands import watch

    rt = runtime_with({"phase": "canary", "status": "stable"}, phase="canary")
    mode = next(f for f in PLAN.ssm_flags if not f.sensitive and not f.secure)
    rt.aws.params.put(mode.parameter, "hand-edited")
    rt.notes.append("sandbox: something worth saying")
    out = watch.watch(rt, auto_rollback=True, interval=30, show=lambda p: None, max_polls=1)
    assert out.exit_code == 6, out.headline
    declared = PLAN.values_for("canary")[mode.name]
    assert f"flag drift: {mode.name} is 'hand-edited', declared '{declared}'" in out.headline
    assert out.lines.count("note: sandbox: something worth saying") == 1, out.lines


def test_advancing_into_an_approval_phase_during_a_bake_names_both_reasons(tmp_path):
    import dataclasses

    from cutover.errors import Blocked

    shadow, canary = PLAN.phases[0], PLAN.phases[1]
    assert canary.approval, "the e2e plan's canary needs approval"
    plan = dataclasses.replace(PLAN, phases=(dataclasses.replace(shadow, bake=3600.0), *PLAN.phases[1:]))
    rt = runtime_with({"phase": shadow.name, "status": "stable"}, phase=shadow.name)
    rt = dataclasses.replace(rt, plan=plan)
    with pytest.raises(Blocked) as caught:
        orchestrator.advance(rt, approve=False, reason="")
    assert "needs explicit approval" in caught.value.message and "still baking: 1h left of 1h" in caught.value.message
    assert caught.value.hint.startswith("wait for the bake to finish")


def test_dry_runs_write_their_evidence_under_one_folder(tmp_path):
    from cutover.core import evidence

    def report(command, dry_run):
        return evidence.Report(command=command, run_id="abc12345", plan="e2e", plan_digest="0" * 64, region="us-east-2",
                               started_at="2026-01-01T00:00:00Z", dry_run=dry_run)

    assert Path(evidence.write(report("advance", True), tmp_path)).parent == tmp_path / evidence.DRY_RUNS
    assert Path(evidence.write(report("rollback", False), tmp_path)).parent == tmp_path
    assert Path(evidence.write(report("preflight", True), tmp_path)).parent == tmp_path  # evidence of the gates
    assert Path(evidence.write(report("watch", True), tmp_path)).parent == tmp_path  # a read-only watch is real
