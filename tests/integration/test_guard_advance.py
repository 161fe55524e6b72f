"""The guard and the rest of the tool: entering an `auto_rollback` phase arms it first (or is refused),
and `status` shows it whenever the plan relies on it."""

import dataclasses
import json

import pytest

from cutover.compile import guard
from cutover.commands import orchestrator
from cutover.adapters.aws import GuardResources
from cutover.errors import Blocked
from tests.guardkit import bootstrap_roles


def auto_canary(e2e):
    phases = tuple(dataclasses.replace(p, auto_rollback=True) if p.name == "canary" else p for p in e2e.plan.phases)
    return dataclasses.replace(e2e.plan, phases=phases)


def guard_store(dry_run=False):
    return lambda: GuardResources.connect("us-east-2", None, read_only=dry_run)


def test_entering_an_auto_rollback_phase_arms_the_guard_first(e2e):
    plan = auto_canary(e2e)
    assert orchestrator.advance(e2e(plan=plan, guard_store=guard_store())).exit_code == 0  # shadow: no guard needed
    # The roles are an admin's one-time bootstrap: until then the phase is not entered, and it says why.
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(plan=plan, guard_store=guard_store()), approve=True, reason="go")
    assert "roles are not bootstrapped" in err.value.message and "cutover guard bootstrap" in err.value.hint
    assert e2e.live() == plan.values_for("shadow")
    bootstrap_roles(plan)
    st = orchestrator.status(e2e(plan=plan, dry_run=True, guard_store=guard_store(True)))
    assert st.data["guard"] == "disarmed" and any("guard NOT ARMED" in line for line in st.lines)
    dry = orchestrator.advance(e2e(plan=plan, dry_run=True, guard_store=guard_store(True)), approve=True, reason="go")
    assert any("arms the guard first" in n for n in dry.data["notes"])
    out = orchestrator.advance(e2e(plan=plan, guard_store=guard_store()), approve=True, reason="go")
    assert out.exit_code == 0 and any(n.startswith("guard: guard armed") for n in out.data["notes"])
    assert e2e.live() == plan.values_for("canary")
    st = orchestrator.status(e2e(plan=plan, dry_run=True, guard_store=guard_store(True)))
    assert st.data["guard"] == "armed"
    # What it armed rolls back the Lambda flags too, and its role may write exactly that function.
    n = guard.names(plan)
    armed = json.loads(guard_store(True)().get_document(n.document)["content"])
    assert [s["inputs"]["InputPayload"]["Function"] for s in armed["mainSteps"]
            if "Function" in s["inputs"].get("InputPayload", {})] == ["e2e-worker"]
    assert armed["mainSteps"][-1]["name"] == guard.RECORD_STEP  # it checks its rollback before recording it
    policy = guard_store(True)().get_role(n.automation_role)["policies"][guard.POLICY_NAME]
    assert "arn:aws:lambda:us-east-2:123456789012:function:e2e-worker" in json.dumps(policy)


def test_an_auto_rollback_phase_is_not_entered_unprotected(e2e):
    plan = auto_canary(e2e)
    assert orchestrator.advance(e2e(plan=plan)).exit_code == 0
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(plan=plan), approve=True, reason="go")  # no way to arm it from here
    assert "auto_rollback" in err.value.message and "nothing was written" in err.value.message
    assert e2e.live() == plan.values_for("shadow") and e2e.state().phase == "shadow"


def test_status_says_nothing_of_the_guard_when_the_plan_does_not_use_it(e2e):
    st = orchestrator.status(e2e(dry_run=True, guard_store=guard_store(True)))
    assert "guard" not in st.data


def test_iam_policy_adds_the_guard_when_asked_or_when_a_phase_needs_it(tmp_path):
    from typer.testing import CliRunner

    from cutover.cli.app import app

    def sids(*args, plan="phases.yaml"):
        r = CliRunner().invoke(app, ["--plan", plan, "iam-policy", *args])
        assert r.exit_code == 0, r.output
        return {s["Sid"] for s in json.loads(r.stdout)["Statement"]}

    assert not any("Guard" in s for s in sids())
    assert {"ManageGuardDocument", "ReadGuardRule"} <= sids("--guard")
    assert {s for s in sids("--guard", "--read-only") if "Guard" in s} == {"ReadGuardRoles", "ReadGuardDocument", "ReadGuardRule"}
    text = open("tests/plans/e2e.yaml").read().replace("    approval: true\n", "    approval: true\n    auto_rollback: true\n")
    (tmp_path / "auto.yaml").write_text(text)
    assert "ManageGuardRule" in sids(plan=str(tmp_path / "auto.yaml"))
