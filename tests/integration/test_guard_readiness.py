"""The rollback-readiness gate (issue 12, item 11): before every advance, and in preflight, every flag
target must be readable now and, where IAM can simulate it, the rollback's calls allowed for the caller
and the guard's role. A target a rollback could not restore blocks the advance (exit 1), named.

The emulator stores a function's KMSKeyArn but never encrypts an environment and does not implement
iam:SimulatePrincipalPolicy: an undecryptable environment and the simulation's answers come from fakes
behind the ports (`FunctionStore`, `AccessSimulator`); everything else runs on the emulator."""

from __future__ import annotations

import dataclasses

import pytest

from cutover.commands import orchestrator
from cutover.commands import preflight
from cutover.commands import readiness
from cutover.adapters.aws import IamAccess, make_session
from cutover.errors import AwsError, ExitCode
from cutover.gates.result import FAIL, PASS
from cutover.ports import AwsPorts
from tests.fakes import FakeFunctionStore, FakeIdentity, FakeParameterStore
from tests.guardkit import ALIAS, KEY, admin_clients, variant

ACCOUNT = "123456789012"
GUARD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cutover-e2e-rollback-automation"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/release/alice"
CALLER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/release"


def results(out) -> dict[str, dict]:
    return {g["check"]: g for g in out.data["gates"]}


def encrypt_function(name: str, key: str) -> None:
    """Recreate the function with a customer managed key (the emulator keeps KMSKeyArn from creation only)."""
    from cutover.sandbox.seed import EmulatorSeeder, _tiny_zip
    import os

    seeder = EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2")
    env = seeder.environment(name)
    lam = admin_clients("us-east-2")("lambda")
    lam.delete_function(FunctionName=name)
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=seeder._lambda_role(), Handler="app.handler",
                        Code={"ZipFile": _tiny_zip()}, Environment={"Variables": env}, KMSKeyArn=key)


# --- on the emulator -----------------------------------------------------------------------------------------
def test_every_advance_and_preflight_show_the_readiness_gate(e2e):
    out = orchestrator.advance(e2e())
    gates = results(out)
    assert out.exit_code == 0 and gates[readiness.READABLE]["status"] == PASS and gates[readiness.ALLOWED]["status"] == PASS
    assert gates[readiness.READABLE]["detail"] == "every flag target is readable now (3 SSM parameter(s), 1 Lambda environment(s) decrypted)"
    # The emulator cannot simulate IAM (and its caller is no IAM principal): said, not failed.
    assert "not checked" in gates[readiness.ALLOWED]["detail"]
    assert any(line.startswith("rollback_readable PASS") for line in out.lines)
    pre = preflight.preflight(e2e(dry_run=True), "canary")
    assert results(pre)[readiness.READABLE]["status"] == PASS and pre.exit_code == 0
    dry = orchestrator.advance(e2e(dry_run=True), approve=True, reason="go")  # a dry run runs it too, reading only
    assert readiness.READABLE in results(dry)


def test_a_function_under_a_key_the_plan_does_not_name_blocks_the_advance(e2e):
    """The worker's environment is under a customer managed key: without `kms_key` nothing cutover grants
    may use it, so a rollback (the guard's above all) could not restore its flags. The advance stops with
    exit 1 naming the function and the key, writing nothing; naming the key in the plan lets it through."""
    assert orchestrator.advance(e2e()).exit_code == 0
    encrypt_function("e2e-worker", KEY)
    before = e2e.live()
    out = orchestrator.advance(e2e(), approve=True, reason="go")
    gate = results(out)[readiness.READABLE]
    assert out.exit_code == ExitCode.GATE_FAILED and "rollback_readable" in out.headline and "nothing was written" in out.headline
    assert gate["status"] == FAIL and "e2e-worker" in gate["detail"] and KEY in gate["detail"]
    assert f"set kms_key: {KEY} on every flag of e2e-worker" in gate["next_action"]
    assert e2e.live() == before and e2e.state().phase == "shadow"
    pre = preflight.preflight(e2e(dry_run=True), "canary")
    assert pre.exit_code == ExitCode.GATE_FAILED and results(pre)[readiness.READABLE]["status"] == FAIL

    other = KEY.replace("1234abcd-", "9999abcd-")
    wrong = orchestrator.advance(e2e(plan=variant(e2e.plan, kms_key=other)), approve=True, reason="go", accept_plan_change=True)
    assert wrong.exit_code == ExitCode.GATE_FAILED and f"the plan names {other}" in results(wrong)[readiness.READABLE]["detail"]
    alias = results(preflight.preflight(e2e(dry_run=True, plan=variant(e2e.plan, kms_key=ALIAS)), "canary"))[readiness.READABLE]
    assert alias["status"] == PASS and "not compared with the alias" in alias["detail"]
    named = orchestrator.advance(e2e(plan=variant(e2e.plan, kms_key=KEY)), approve=True, reason="go", accept_plan_change=True)
    assert named.exit_code == 0, named.headline


def test_an_unreadable_target_fails_preflight_naming_it(e2e, fault_proxy):
    from cutover.testing.faultproxy import Faults

    fault_proxy.reconfigure(Faults(deny={"GetFunctionConfiguration"}))
    pre = preflight.preflight(e2e(dry_run=True), "shadow")
    gate = results(pre)[readiness.READABLE]
    assert pre.exit_code == ExitCode.GATE_FAILED and gate["status"] == FAIL
    assert gate["detail"].startswith("a rollback could not restore: Lambda function e2e-worker:")


def test_the_iam_adapter_says_when_the_emulator_cannot_simulate(aws_env):
    """moto has no SimulatePrincipalPolicy: the adapter raises the project's error (one attempt, fast),
    which the gate reports as not checked; an endpoint that cannot answer is not asked again."""
    from cutover.testing.counter import CallCounter

    counter = CallCounter()
    access = IamAccess(make_session("us-east-2", None, True, hooks=[counter]))
    for _ in range(3):
        with pytest.raises(AwsError, match="unreadable answer to iam:SimulatePrincipalPolicy"):
            access.simulate(GUARD_ROLE, ["ssm:PutParameter"], ["*"], {})
    assert counter.calls["iam:SimulatePrincipalPolicy"] == 1


# --- the simulation's logic, through a fake port -------------------------------------------------------------
class FakeAccess:
    """An AccessSimulator answering from a table: principal -> set of (action, resource) denied, or an
    error to raise. Records every request."""

    def __init__(self, denied: dict | None = None, errors: dict | None = None) -> None:
        self.denied, self.errors, self.asked = denied or {}, errors or {}, []

    def simulate(self, principal_arn, actions, resources, context):
        self.asked.append((principal_arn, tuple(actions), tuple(resources), tuple(sorted(context.items()))))
        if principal_arn in self.errors:
            raise self.errors[principal_arn]
        no = self.denied.get(principal_arn, set())
        return {(a, r): ("implicitDeny" if (a, r) in no else "allowed") for a in actions for r in resources}


def fake_runtime(e2e, access, caller=CALLER, plan=None, functions=None):
    plan = plan or e2e.plan
    store = FakeParameterStore()
    for f in plan.ssm_flags:
        store.put(f.parameter, f.rollback, secure=f.secure)
    ports = AwsPorts(params=store, alarms=None, secrets=None, logs=None, identity=FakeIdentity(caller), region="us-east-2",
                     functions=functions or FakeFunctionStore({"e2e-worker": {"E2E_OUTBOUND": "off"}}), access=access)
    return orchestrator.Runtime(plan=plan, aws=ports, env={}, clock=e2e.clock, evidence_dir=None)


def test_the_simulation_asks_exactly_the_rollbacks_calls_for_the_caller_and_the_guard_role(e2e):
    access = FakeAccess()
    plan = variant(e2e.plan, kms_key=KEY)
    status, detail, _ = readiness.allowed(fake_runtime(e2e, access, plan=plan))
    assert status == PASS and f"caller {CALLER_ROLE}: allowed" in detail and f"guard role {GUARD_ROLE}: allowed" in detail
    base = f"arn:aws:ssm:us-east-2:{ACCOUNT}:parameter"
    expected = [
        (("ssm:GetParameters", "ssm:PutParameter"), (f"{base}/e2e/kill", f"{base}/e2e/mode", f"{base}/e2e/allow", f"{base}/cutover/e2e/state"), ()),
        (("lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"), (f"arn:aws:lambda:us-east-2:{ACCOUNT}:function:e2e-worker",), ()),
        (("kms:Decrypt", "kms:Encrypt"), (KEY,), (("kms:ViaService", "lambda.us-east-2.amazonaws.com"),)),
        (("kms:Encrypt", "kms:Decrypt"), ("*",), (("kms:ViaService", "ssm.us-east-2.amazonaws.com"),)),
    ]
    assert access.asked == [(CALLER_ROLE, *e) for e in expected] + [(GUARD_ROLE, *e) for e in expected]


def test_a_refused_rollback_call_blocks_naming_the_target(e2e):
    base = f"arn:aws:ssm:us-east-2:{ACCOUNT}:parameter"
    access = FakeAccess(denied={GUARD_ROLE: {("ssm:PutParameter", f"{base}/e2e/kill")},
                                CALLER_ROLE: {("lambda:UpdateFunctionConfiguration", f"arn:aws:lambda:us-east-2:{ACCOUNT}:function:e2e-worker")}})
    (readable, allowed) = readiness.check(fake_runtime(e2e, access))
    assert readable.status == PASS and allowed.status == FAIL
    assert f"guard role {GUARD_ROLE} may not ssm:PutParameter on /e2e/kill (kill)" in allowed.detail
    assert f"caller {CALLER_ROLE} may not lambda:UpdateFunctionConfiguration on Lambda function e2e-worker" in allowed.detail
    assert "cutover guard bootstrap" in allowed.next_action and "cutover iam-policy" in allowed.next_action


@pytest.mark.parametrize("errors,caller,words", [
    ({GUARD_ROLE: AwsError("no such role", code="NoSuchEntity")}, CALLER, ["guard role: not checked (the guard is not bootstrapped)",
                                                                            f"caller {CALLER_ROLE}: allowed"]),
    ({CALLER_ROLE: AwsError("AccessDenied: not authorized to perform iam:SimulatePrincipalPolicy", code="AccessDenied")}, CALLER,
     ["caller: not checked (AccessDenied: not authorized to perform iam:SimulatePrincipalPolicy)"]),
    ({}, f"arn:aws:iam::{ACCOUNT}:root", [f"caller arn:aws:iam::{ACCOUNT}:root: not checked (IAM cannot simulate this principal)"]),
    ({}, f"arn:aws:iam::{ACCOUNT}:user/ops/bob", [f"caller arn:aws:iam::{ACCOUNT}:user/ops/bob: allowed"]),
])
def test_what_cannot_be_simulated_is_said_and_does_not_fail(e2e, errors, caller, words):
    status, detail, _ = readiness.allowed(fake_runtime(e2e, FakeAccess(errors=errors), caller=caller))
    assert status == PASS
    for w in words:
        assert w in detail, detail
    assert readiness.allowed(dataclasses.replace(fake_runtime(e2e, None)))[1] == "not checked: no IAM policy simulation here"


def test_an_undecryptable_environment_fails_naming_the_function_and_the_fix(e2e):
    """What Lambda returns when the caller may not decrypt the environment (Environment.Error): the
    adapter turns it into an error (never an empty environment to write over); the gate names it."""

    class Undecryptable(FakeFunctionStore):
        def get(self, function):
            raise AwsError(f"cannot read the environment of function {function} (AccessDeniedException)",
                           "grant kms:Decrypt on the function's KMS key to the role you use", code="AccessDeniedException")

    readable, _ = readiness.check(fake_runtime(e2e, FakeAccess(), functions=Undecryptable()))
    assert readable.status == FAIL
    assert readable.detail == ("a rollback could not restore: Lambda function e2e-worker: cannot read the environment of "
                               "function e2e-worker (AccessDeniedException)")
    assert readable.next_action == "grant kms:Decrypt on the function's KMS key to the role you use"
