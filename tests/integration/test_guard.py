"""The guard (issue 7): the plan's rollback armed inside AWS (alarm -> EventBridge -> SSM Automation).

The emulator stores Automation documents, rules, targets and roles, but runs no Automation: these tests
execute the generated document's steps with a small interpreter (`execute_locally`: the
`aws:executeAwsApi` and `aws:executeScript` subset the document uses) against the emulator over real
HTTP (a script step's handler runs in this process, its boto3 pointed at the emulator by the
environment), and feed it the parameters the armed rule's input transformer actually produces (moto
applies rules and transformers to put_events, delivering to an SQS probe target). moto has no
TestEventPattern, so the rule's pattern is also checked by a small matcher with EventBridge's
exact-match semantics. moto ignores a Lambda RevisionId, so the Lambda step's conflict path runs
behind the fault proxy, which refuses updates as Lambda does when the function changed meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cutover.core import flags as flagmod
from cutover.commands import guard as guard_cmd
from cutover.compile import guard
from cutover.commands import orchestrator
from cutover.model import program
from cutover.core import state
from cutover.errors import AwsError, Blocked, ExitCode, ReadOnlyViolation, UsageError
from cutover.model.plan import ROLLED_BACK, function_name
from cutover.plan.load import load_plan, parse_plan
from cutover.redact import HIDDEN
from cutover.sandbox.emulator import OTHER_VARIABLES
from tests.guardkit import KEY, admin_clients, bootstrap_roles, variant

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "tests" / "plans" / "e2e.yaml"
# The repo plan and every valid test plan (billion_laughs and python_tag are invalid on purpose).
PLANS = {"repo": ROOT / "phases.yaml", "e2e": E2E, "minimal": ROOT / "tests" / "plans" / "minimal.yaml",
         "every_check": ROOT / "tests" / "plans" / "every_check.yaml"}
ROLE_READS = {"iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:GetPolicy",
              "iam:GetPolicyVersion"}  # what the guard reads of its roles
ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-2"


# --- a local SSM Automation runtime for the document's subset -------------------------------------------
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_:.-]+)\s*\}\}")


class Execution(list):
    """(step name, "Success" | "Failed: ...") per step run, and the execution's status as Automation
    reports it: Failed when a step failed (every step is critical by default, `onFailure: Continue` or not)."""

    @property
    def status(self) -> str:
        return "Failed" if any(r != "Success" for _, r in self) else "Success"


def execute_locally(doc: dict, params: dict, call) -> Execution:
    """Run an Automation document the way SSM would, for the subset the guard uses: schemaVersion 0.3,
    String parameters (given as EventBridge passes them, {"Name": ["value"]}, or defaulted), `{{ name }}`
    and `{{automation:EXECUTION_ID}}` substitution in string inputs (nested ones too), `aws:executeAwsApi`
    and python3.11 `aws:executeScript` steps in order, `onFailure: Continue` or the default Abort.
    `call(service, api, inputs)` makes an API call; a script's handler runs here (`run_script`)."""
    assert doc["schemaVersion"] == "0.3"
    declared = doc.get("parameters", {})
    unknown = set(params) - set(declared)
    if unknown:
        raise ValueError(f"parameters not declared by the document: {sorted(unknown)}")
    values = {}
    for name, spec in declared.items():
        assert spec["type"] == "String", "the subset has String parameters only"
        value = params.get(name, spec.get("default"))
        if isinstance(value, list):
            assert len(value) == 1, f"a String parameter takes one value, got {value}"
            value = value[0]
        if value is None:
            raise ValueError(f"parameter {name} is required")
        values[name] = value
    values["automation:EXECUTION_ID"] = str(uuid.uuid4())

    def substitute(v):
        # An unknown variable is an error, as in SSM (a KeyError here fails the test loudly).
        if isinstance(v, dict):
            return {k: substitute(x) for k, x in v.items()}
        if isinstance(v, list):
            return [substitute(x) for x in v]
        return _VAR.sub(lambda m: values[m.group(1)], v) if isinstance(v, str) else v

    results = Execution()
    for step in doc["mainSteps"]:
        assert step["action"] in ("aws:executeAwsApi", "aws:executeScript"), f"the subset has no {step['action']}"
        inputs = substitute(step["inputs"])
        try:
            if step["action"] == "aws:executeScript":
                run_script(inputs, {"automation:EXECUTION_ID": values["automation:EXECUTION_ID"], "global:ACCOUNT_ID": ACCOUNT})
            else:
                service, api = inputs.pop("Service"), inputs.pop("Api")
                call(service, api, inputs)
            results.append((step["name"], "Success"))
        except Exception as err:  # noqa: BLE001 - a failed step, as Automation records it
            results.append((step["name"], f"Failed: {err}"))
            if step.get("onFailure", "Abort") != "Continue":
                break
    return results


def run_script(inputs: dict, context: dict | None = None):
    """An `aws:executeScript` step as Automation runs it: the inline Script, its Handler called with the
    InputPayload and the automation context; boto3 inside reaches whatever AWS_ENDPOINT_URL names."""
    assert inputs["Runtime"] == "python3.11" and set(inputs) <= {"Runtime", "Handler", "Script", "InputPayload"}
    namespace: dict = {"__name__": "automation_script"}
    exec(compile(inputs["Script"], "<guard script step>", "exec"), namespace)  # noqa: S102 - the document's own script
    return namespace[inputs["Handler"]](inputs.get("InputPayload", {}), context or {})


class ApiCaller:
    """`call` for execute_locally: boto3 through cutover.adapters.aws (the project's session and error
    translation), recording every call."""

    def __init__(self, region: str) -> None:
        from cutover.adapters import aws

        self._aws = aws
        self.clients = aws.Clients(aws.make_session(region, None, False))
        self.calls: list[tuple[str, str, dict]] = []

    def __call__(self, service: str, api: str, inputs: dict) -> None:
        if (service, api) == ("ssm", "PutParameter") and inputs.get("Name") == self.refused:
            raise AwsError(f"refused PutParameter {self.refused} (the test's injected step failure)",
                                     code="AccessDeniedException")
        client = self.clients(service)
        method = {v: k for k, v in client.meta.method_to_api_mapping.items()}[api]
        with self._aws.aws_errors(f"{service}:{api}", inputs.get("Name", "")):
            getattr(client, method)(**inputs)
        self.calls.append((service, api, inputs))

    def fail_on(self, parameter: str) -> "ApiCaller":
        """Make every PutParameter of `parameter` fail (as AccessDenied would), so its step fails."""
        self.refused = parameter
        return self

    refused: str | None = None

    def puts(self) -> list[tuple[str, str, str]]:
        return [(i["Name"], i["Value"], i.get("Type", "String")) for s, a, i in self.calls if (s, a) == ("ssm", "PutParameter")]


# --- EventBridge's matching, for the pattern's subset -------------------------------------------------------
def matches(pattern: dict, event: dict) -> bool:
    """EventBridge semantics for this pattern's subset: every key must match (AND); a list holds
    alternatives (OR) of exact values (case- and type-sensitive) or {"prefix": ...}; a nested object
    matches a nested object; "$or" holds alternative sub-patterns; a field missing from the event never
    matches."""
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(alt, event) for alt in rule):
                return False
            continue
        if not isinstance(event, dict) or key not in event:
            return False
        value = event[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not matches(rule, value):
                return False
            continue
        candidates = value if isinstance(value, list) else [value]
        if not any(_alternative(a, v) for a in rule for v in candidates):
            return False
    return True


def moto_matches(pattern: dict, event: dict) -> bool:
    """The emulator's own EventBridge matcher (moto's EventPattern): an implementation independent of ours."""
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _alternative(alt, value) -> bool:
    if isinstance(alt, dict):
        (op, arg), = alt.items()
        assert op == "prefix", f"the matcher does not implement {op}"
        return isinstance(value, str) and value.startswith(arg)
    return type(alt) is type(value) and alt == value


def alarm_event(name: str, value: str = "ALARM", previous: str = "OK", source: str = "aws.cloudwatch",
                detail_type: str = "CloudWatch Alarm State Change") -> dict:
    """A CloudWatch alarm state change event, shaped as CloudWatch sends it to EventBridge."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source, "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z", "region": REGION, "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": value, "reason": "Threshold Crossed", "timestamp": "2026-01-01T00:00:00.000+0000"},
            "previousState": {"value": previous, "reason": "Threshold not crossed", "timestamp": "2025-12-31T23:00:00.000+0000"},
            "configuration": {"description": "", "metrics": [{"id": "m1", "metricStat": {"metric": {"namespace": "App", "name": "Errors"},
                                                                                              "period": 60, "stat": "Sum"}}]},
        },
    }


def strict(plan, alarm: str) -> bool:
    """Does some alarms check watching `alarm` fail on INSUFFICIENT_DATA (the default)? Written out
    from the checks, independently of cutover.compile.guard."""
    return any(c.insufficient_data == "fail" and (alarm in c.names or alarm in c.expect or (c.prefix and alarm.startswith(c.prefix)))
               for c in plan.checks.values() if c.type == "alarms")


def samples(plan) -> list[tuple[dict, bool]]:
    """(event, should the guard fire) for a plan: ALARM of each plan alarm fires; INSUFFICIENT_DATA fires
    when a check watching the alarm says `insufficient_data: fail` (the default, as the gates); OK, other
    alarms, near-miss names, and other sources or detail types do not."""
    names, prefixes = guard.watched_alarms(plan)

    def watched(alarm: str) -> bool:
        return alarm in names or any(alarm.startswith(p) for p in prefixes)

    out = []
    for n in names:
        out += [(alarm_event(n), True), (alarm_event(n, "OK", "ALARM"), False),
                (alarm_event(n, "INSUFFICIENT_DATA"), strict(plan, n)), (alarm_event(n + "-2"), watched(n + "-2")),
                (alarm_event(n.upper()), watched(n.upper())), (alarm_event(n, source="custom.app"), False),
                (alarm_event(n, detail_type="CloudWatch Alarm Configuration Change"), False)]
    for p in prefixes:
        out += [(alarm_event(p + "anything"), True), (alarm_event(p + "x", "OK"), False),
                (alarm_event(p + "y", "INSUFFICIENT_DATA"), strict(plan, p + "y")), (alarm_event("x" + p), watched("x" + p))]
    out.append((alarm_event("someone-elses-alarm"), False))
    return out


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture
def store(e2e):
    """The guard's resources on the emulator, the e2e plan's roles bootstrapped by an admin."""
    from cutover.adapters.aws import GuardResources

    bootstrap_roles(e2e.plan)
    return GuardResources.connect(REGION, None, read_only=False)


def changed_plan(plan, **edits):
    """The e2e plan's text with replacements (same name, new digest)."""
    text = Path(plan.path).read_text()
    for old, new in edits.values():
        assert old in text
        text = text.replace(old, new)
    return parse_plan(text, plan.path)


def seeder(plan, endpoint: str | None = None):
    from cutover.sandbox.seed import EmulatorSeeder

    return EmulatorSeeder(endpoint or os.environ["AWS_ENDPOINT_URL"], plan.region)


def seed_functions(plan) -> None:
    """The plan's Lambda functions, each with the sandbox's other variables beside its flags."""
    for fn in plan.functions:
        seeder(plan).put_function(function_name(fn), {**OTHER_VARIABLES, **{
            f.target.variable: f.rollback for f in plan.flags if f.kind == "lambda" and f.target.function == fn}})


def envs(plan) -> dict[str, dict[str, str]]:
    """Every flag function's whole environment, read from the emulator."""
    return {fn: seeder(plan).environment(function_name(fn)) for fn in plan.functions}


def live(plan, params) -> dict[str, str]:
    """Every flag's live value, both kinds."""
    got, env = params.get_many([f.parameter for f in plan.ssm_flags]), envs(plan)
    return {f.name: got[f.parameter].value if f.kind == "ssm" else env[f.target.function].get(f.target.variable)
            for f in plan.flags}


def put_phase(plan, params, phase: str, clock) -> None:
    """Flags at the phase's values and a stable record of it, as a finished advance leaves them (a
    function's other variables kept)."""
    values = plan.values_for(phase)
    for f in plan.ssm_flags:
        params.put(f.parameter, values[f.name], secure=f.secure)
    for fn, env in envs(plan).items():
        seeder(plan).put_environment(function_name(fn), {**env, **{
            f.target.variable: values[f.name] for f in plan.flags if f.kind == "lambda" and f.target.function == fn}})
    state.StateStore(plan, params).write(state.StateRecord(
        phase=phase, status=state.STABLE, entered_at=state.iso(clock.now()), actor="arn:aws:iam::123456789012:user/t",
        run_id="seeded00", plan_digest=plan.digest, command="advance", reason="seeded"), clock)


def others(plan) -> dict[str, dict[str, str]]:
    """Per function, the variables that are not the plan's flags: nothing may change them."""
    mine = {f.target.variable for f in plan.flags if f.kind == "lambda"}
    return {fn: {k: v for k, v in env.items() if k not in mine} for fn, env in envs(plan).items()}


def lambda_steps(doc: dict) -> list[dict]:
    return [s for s in doc["mainSteps"] if s["action"] == "aws:executeScript" and "Function" in s["inputs"]["InputPayload"]]


class Recording:
    """A ParameterStore that records every put, in order."""

    def __init__(self, inner) -> None:
        self.inner, self.puts = inner, []

    def get_many(self, names):
        return self.inner.get_many(names)

    def put(self, name, value, *, secure=False, overwrite=True):
        self.puts.append((name, value, "SecureString" if secure else "String"))
        return self.inner.put(name, value, secure=secure, overwrite=overwrite)

    def delete(self, name):
        return self.inner.delete(name)

    def history(self, name):
        return self.inner.history(name)


# --- the document is the rollback -------------------------------------------------------------------------
def expected_steps(plan) -> list[tuple[str, str, dict]]:
    """The guard's step layout, written out from the rule: rollback order; an SSM flag is one step; a
    Lambda function is one step at the place of its first flag, with all its flag variables."""
    targets, out = program.targets(plan), []
    for f, v in targets:
        if f.kind == "ssm":
            out.append(("ssm", f.parameter, {f.parameter: v}))
        elif f.target.function not in [where for kind, where, _ in out if kind == "lambda"]:
            out.append(("lambda", f.target.function, {g.target.variable: w for g, w in targets
                                                      if g.kind == "lambda" and g.target.function == f.target.function}))
    return out


@pytest.mark.parametrize("key", PLANS)
def test_document_writes_exactly_the_rollback_targets_then_the_state(key):
    plan = load_plan(PLANS[key])
    doc = guard.build_document(plan, ACCOUNT)
    writes = guard.document_writes(doc)
    targets = program.targets(plan)
    assert sorted((w["key"], w["value"]) for w in writes[:-1]) == sorted((f.key, v) for f, v in targets)
    assert [(f.name, v) for f, v in targets] == list(plan.rollback_values().items())
    steps = doc["mainSteps"][:-1]
    layout = [("ssm", s["inputs"]["Name"], {s["inputs"]["Name"]: s["inputs"]["Value"]}) if s["action"] == "aws:executeAwsApi"
              else ("lambda", s["inputs"]["InputPayload"]["Function"], s["inputs"]["InputPayload"]["Variables"]) for s in steps]
    assert layout == expected_steps(plan)
    secure = {f.parameter for f in plan.ssm_flags if f.secure}
    assert all(w["type"] == ("SecureString" if w["parameter"] in secure else "String") for w in writes[:-1])
    assert writes[-1]["parameter"] == plan.state_parameter and writes[-1]["type"] == "String"
    # The shape SSM Automation expects, and nothing the subset interpreter would not run.
    assert doc["schemaVersion"] == "0.3" and doc["assumeRole"] == f"arn:aws:iam::{ACCOUNT}:role/{guard.names(plan).automation_role}"
    assert plan.digest in doc["description"] and guard.armed_digest(doc) == plan.digest
    names = [s["name"] for s in doc["mainSteps"]]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[A-Za-z0-9_]{1,128}", n) for n in names)
    assert all(s["inputs"]["Overwrite"] is True for s in doc["mainSteps"] if s["action"] == "aws:executeAwsApi")
    assert len(lambda_steps(doc)) == len(plan.functions) and (key not in ("repo", "e2e") or plan.functions)
    for step in lambda_steps(doc):
        inputs = step["inputs"]
        assert (inputs["Runtime"], inputs["Handler"], inputs["Script"]) == ("python3.11", "handler", guard.LAMBDA_SCRIPT)
        assert step["onFailure"] == "Continue" and step["timeoutSeconds"] <= 600  # Automation's ceiling for a script
        # No {{ }}: Automation would substitute it. And the handler exists, with Automation's signature.
        assert "{{" not in inputs["Script"] and "}}" not in inputs["Script"]
        namespace: dict = {}
        exec(compile(inputs["Script"], "<script>", "exec"), namespace)  # noqa: S102
        assert namespace["handler"].__code__.co_varnames[:2] == ("events", "context")
    # The record, once Automation substitutes its variables, is one the tool reads as rolled back.
    text = writes[-1]["value"].replace("{{AlarmName}}", "some-alarm").replace("{{automation:EXECUTION_ID}}", str(uuid.uuid4()))
    view = state.interpret(plan, state.Param(plan.state_parameter, text, 1))
    assert view.problem is None
    rec = view.record
    assert (rec.phase, rec.status, rec.command, rec.plan, rec.plan_digest) == (ROLLED_BACK, state.STABLE, "guard", plan.name, plan.digest)
    assert rec.reason == "auto-rollback by guard: alarm some-alarm" and rec.target is None
    assert len(text.encode()) + 255 <= state.MAX_RECORD_BYTES


@pytest.mark.parametrize("key", PLANS)
def test_rollback_targets_are_the_declared_values_of_each_state(key):
    plan = load_plan(PLANS[key])
    for dest in (ROLLED_BACK, *plan.phase_names):
        targets = program.targets(plan, dest)
        assert [f.name for f, _ in targets] == [f.name for f in plan.flags]  # plan (rollback) order
        assert dict((f.name, v) for f, v in targets) == plan.values_for(dest)


def changed(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Per function, the variables whose value changed (or appeared)."""
    return {fn: {k: v for k, v in env.items() if before[fn].get(k) != v} for fn, env in after.items()}


@pytest.mark.parametrize("key", ["repo", "e2e", "every_check"])
def test_the_cli_rollback_and_the_guard_write_the_same_flags_in_the_same_order(key, e2e, tmp_path, monkeypatch):
    """From every phase: what `orchestrator.rollback` writes (only the flags that differ, in order) is
    the document's run with the unchanged flags left out, and both end at the same values, every other
    variable of a flag function untouched."""
    from cutover.adapters.aws import make_ports

    plan = load_plan(PLANS[key])
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):  # a script's boto3 runs in the automation's region, the plan's
        monkeypatch.setenv(name, plan.region)
    seed_functions(plan)
    kept = others(plan)
    assert all(OTHER_VARIABLES.items() <= env.items() for env in kept.values())
    ports = make_ports(plan.region, None, read_only=False)
    caller = ApiCaller(plan.region)
    doc = guard.build_document(plan, ACCOUNT)
    flag_params = {f.parameter for f in plan.ssm_flags}
    for phase in plan.phase_names:
        put_phase(plan, ports.params, phase, e2e.clock)
        before = envs(plan)
        rec = Recording(ports.params)
        rt = orchestrator.Runtime(plan=plan, aws=dataclasses.replace(ports, params=rec), env={}, clock=e2e.clock,
                                  evidence_dir=tmp_path / "ev")
        assert orchestrator.rollback(rt, None, "test").exit_code == 0
        cli_writes = [w for w in rec.puts if w[0] in flag_params]
        cli_env_writes = changed(before, envs(plan))
        after_cli = live(plan, ports.params)
        assert others(plan) == kept

        put_phase(plan, ports.params, phase, e2e.clock)
        caller.calls.clear()
        assert all(r == "Success" for _, r in execute_locally(doc, {"AlarmName": ["a"]}, caller))
        doc_writes = [w for w in caller.puts() if w[0] in flag_params]
        doc_env_writes = changed(before, envs(plan))
        after_doc = live(plan, ports.params)
        assert others(plan) == kept, "the guard's Lambda step keeps every other variable"

        # Least privilege, exactly: the automation role may write what the document writes, nothing more.
        arn = guard.GuardArns(plan.region, ACCOUNT)
        policy = {st["Sid"]: st for st in guard.automation_policy(plan, ACCOUNT)["Statement"]}
        # (The state record is written by the last step's script, which reads every flag back first.)
        assert {arn.parameter(w[0]) for w in caller.puts()} | {arn.parameter(plan.state_parameter)} == set(
            policy["RollBackAndReadBackFlagsAndState"]["Resource"])
        functions = [s["inputs"]["InputPayload"]["Function"] for s in lambda_steps(doc)]
        assert [arn.function(fn) for fn in functions] == policy.get("RollBackLambdaFlags", {}).get("Resource", [])

        differing = {f.key for f in plan.flags if plan.values_for(phase)[f.name] != f.rollback}
        assert cli_writes == [w for w in doc_writes if w[0] in differing], phase
        assert doc_writes == [(f.parameter, v, "SecureString" if f.secure else "String")
                              for f, v in program.targets(plan) if f.kind == "ssm"]
        assert cli_env_writes == doc_env_writes == {fn: {f.target.variable: f.rollback for f in plan.flags if f.key in differing
                                                         and f.kind == "lambda" and f.target.function == fn} for fn in plan.functions}
        assert after_cli == after_doc == plan.rollback_values()
        if phase == plan.phase_names[-1]:
            assert cli_writes and (any(cli_env_writes.values()) or not plan.functions), "a rollback from the last phase writes something"


def test_the_lambda_step_keeps_a_change_made_between_its_read_and_its_write(e2e, fault_proxy, emulator):
    """Someone changes the function after the step read it: Lambda refuses the step's write (the fault
    proxy answers as Lambda does), and the step reads and merges again, so their change is kept."""
    from cutover.testing.faultproxy import Faults

    plan = e2e.plan
    (step,) = lambda_steps(guard.build_document(plan, ACCOUNT))
    fn = step["inputs"]["InputPayload"]["Function"]
    direct = seeder(plan, emulator.endpoint)  # the emulator itself, not through the proxy
    edits = []

    def someone_else(function: str) -> None:
        edits.append(function)
        direct.put_environment(function, {**direct.environment(function), "HAND_EDIT": f"edit {len(edits)}"})

    put_phase(plan, e2e().aws.params, "full", e2e.clock)
    fault_proxy.reconfigure(Faults(revision_conflicts=2, before_conflict=someone_else))
    calls_before = Counter(fault_proxy.calls)
    out = run_script(step["inputs"])
    calls = Counter(fault_proxy.calls) - calls_before
    assert out == {"Function": fn, "Variables": sorted(step["inputs"]["InputPayload"]["Variables"]), "Conflicts": 2}
    assert edits == [fn, fn] and calls["UpdateFunctionConfiguration"] == 3  # refused, refused, applied
    env = direct.environment(fn)
    assert env["HAND_EDIT"] == "edit 2", "the change made meanwhile is kept, not overwritten by a stale merge"
    assert OTHER_VARIABLES.items() <= env.items()
    assert {k: env[k] for k in step["inputs"]["InputPayload"]["Variables"]} == step["inputs"]["InputPayload"]["Variables"]
    # Only what the automation role grants: read and update the function's configuration.
    assert set(calls) == {"GetFunctionConfiguration", "UpdateFunctionConfiguration"}

    # The function never stops changing: the step gives up after its bounded attempts and fails (the
    # execution shows it), having written nothing over anyone; the other steps still roll back.
    put_phase(plan, e2e().aws.params, "full", e2e.clock)
    edits.clear()
    fault_proxy.reconfigure(Faults(revision_conflicts=1000, before_conflict=someone_else))
    results = dict(execute_locally(guard.build_document(plan, ACCOUNT), {"AlarmName": ["e2e-errors"]}, ApiCaller(REGION)))
    assert results[step["name"]].startswith("Failed: ") and "attempts" in results[step["name"]]
    assert [n for n, r in results.items() if r != "Success"] == [step["name"], guard.RECORD_STEP]
    assert 2 <= len(edits) <= 10, "bounded: a few read-merge-write rounds, then the step fails"
    env = direct.environment(fn)
    assert env["HAND_EDIT"] == f"edit {len(edits)}" and OTHER_VARIABLES.items() <= env.items()
    values = plan.values_for("full")
    assert {f.name: env[f.target.variable] for f in plan.flags if f.kind == "lambda"} == {
        f.name: values[f.name] for f in plan.flags if f.kind == "lambda"}
    fault_proxy.reconfigure(Faults())
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT, "the flags the guard could not restore show as drift"


# --- a partial rollback is never reported as done (issue 12, item 8) ---------------------------------------
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:cutover-e2e"


def with_topic(plan):
    """The e2e plan with a notify topic (same flags)."""
    return parse_plan(Path(plan.path).read_text().replace("flags:\n", f"notify:\n  sns_topic_arn: {TOPIC}\nflags:\n", 1), plan.path)


class TopicInbox:
    """The plan's SNS topic on the emulator, with an SQS queue subscribed: what the topic was told."""

    def __init__(self) -> None:
        from cutover.adapters.aws import Clients, make_session

        clients = Clients(make_session(REGION, None, False))
        self.sns, self.sqs = clients("sns"), clients("sqs")
        arn = self.sns.create_topic(Name="cutover-e2e")["TopicArn"]
        assert arn == TOPIC
        self.queue = self.sqs.create_queue(QueueName="cutover-e2e-inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})

    def messages(self) -> list[dict]:
        got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in got]


@pytest.mark.parametrize("failing", ["nothing", "ssm step", "lambda step"])
def test_the_guard_records_rolled_back_only_when_every_flag_reads_back(e2e, fault_proxy, failing):
    """Every flag step is attempted whatever fails before it. If all flags read back at their rollback
    values, the record says rolled_back (stable) and the topic hears so. If any did not (a refused
    PutParameter; a Lambda step that never gets its update in), the record says the rollback is unfinished
    (rolling_back, from the recorded phase), the topic is told which flags are still live (names and where,
    no value), and the execution ends Failed; `cutover status` says so and `cutover rollback` finishes it."""
    from cutover.testing.faultproxy import Faults

    plan = with_topic(e2e.plan)
    inbox = TopicInbox()
    put_phase(plan, e2e().aws.params, "canary", e2e.clock)  # live: emails in the allowlist and the cohort
    kept = others(plan)
    doc = guard.build_document(plan, ACCOUNT)
    caller = ApiCaller(REGION)
    if failing == "ssm step":
        caller.fail_on("/e2e/mode")
    if failing == "lambda step":
        fault_proxy.reconfigure(Faults(revision_conflicts=1000))
    run = execute_locally(doc, {"AlarmName": ["e2e-errors"]}, caller)
    fault_proxy.reconfigure(Faults())

    assert [n for n, _ in run] == [s["name"] for s in doc["mainSteps"]], "every step is attempted"
    failed_steps = [n for n, r in run if r != "Success"]
    rec = e2e.state().record
    values = live(plan, e2e().aws.params)
    told = inbox.messages()
    assert len(told) == 1
    message = told[0]["Subject"] + "\n" + told[0]["Message"]
    assert "@" not in message and "=" not in message, "names and places only: no value, sensitive or not"
    assert others(plan) == kept
    if failing == "nothing":
        assert run.status == "Success" and not failed_steps
        assert (rec.phase, rec.status, rec.target, rec.command) == (ROLLED_BACK, state.STABLE, None, "guard")
        assert rec.reason == "auto-rollback by guard: alarm e2e-errors" and rec.entered_at and rec.updated_at
        assert values == plan.rollback_values()
        assert "guard ROLLED BACK" in told[0]["Subject"] and "all 5 flag(s) read back" in message
        assert orchestrator.status(e2e(dry_run=True, plan=plan), check=True).exit_code == 0
        return

    still = (["mode (/e2e/mode)"] if failing == "ssm step"
             else ["outbound (e2e-worker env E2E_OUTBOUND)", "cohort (e2e-worker env E2E_COHORT)"])
    step = {"ssm step": "Flag03_mode", "lambda step": "Env02_e2e_worker"}[failing]
    assert run.status == "Failed" and failed_steps == [step, guard.RECORD_STEP], run
    assert "rollback UNFINISHED" in dict(run)[guard.RECORD_STEP] and all(s in dict(run)[guard.RECORD_STEP] for s in still)
    assert (rec.phase, rec.status, rec.target, rec.command) == ("canary", state.ROLLING_BACK, ROLLED_BACK, "guard")
    assert rec.reason == "auto-rollback by guard: alarm e2e-errors: UNFINISHED, still live: " + ", ".join(still)
    stuck = {f.name for f in plan.flags if any(s.startswith(f.name + " (") for s in still)}
    assert {k for k, v in values.items() if v != plan.rollback_values()[k]} == stuck, "every other flag is restored"
    assert "guard rollback UNFINISHED" in told[0]["Subject"] and all(f"  - {s}" in message for s in still)
    assert "cutover rollback" in message
    st = orchestrator.status(e2e(dry_run=True, plan=plan), check=True)
    assert st.exit_code == ExitCode.DRIFT and st.headline == "rolling_back canary -> rolled_back is unfinished", st.headline
    assert any("finish it by re-running `cutover rollback`" in line for line in st.lines)
    with pytest.raises(Blocked):
        orchestrator.advance(e2e(plan=plan), approve=True, reason="go")
    out = orchestrator.rollback(e2e(plan=plan), reason="finish the guard's rollback")
    assert out.exit_code == 0 and live(plan, e2e().aws.params) == plan.rollback_values()
    assert orchestrator.status(e2e(dry_run=True, plan=plan), check=True).exit_code == 0


def verify_inputs(plan, alarm: str = "e2e-errors") -> dict:
    """The last step's inputs with Automation's variables filled in, as `execute_locally` would."""
    (step,) = [s for s in guard.build_document(plan, ACCOUNT)["mainSteps"] if s["name"] == guard.RECORD_STEP]
    text = json.dumps(step["inputs"]).replace("{{AlarmName}}", alarm).replace("{{automation:EXECUTION_ID}}", "exec-1")
    assert "{{" not in text
    return json.loads(text)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=6, max_size=40))
def test_the_topic_never_hears_a_flag_value_in_any_encoding(e2e, value):
    """Sensitive flags hold anything (emails, tokens): whatever they hold when the guard cannot restore
    them, the message names the flags and where they live, never what they hold."""
    import base64
    from urllib.parse import quote

    plan = with_topic(e2e.plan)
    forms = {value, json.dumps(value)[1:-1], quote(value), base64.b64encode(value.encode()).decode()}
    inputs = verify_inputs(plan)
    assume(not any(f in guard.VERIFY_SCRIPT or f in json.dumps(inputs) for f in forms))
    inbox = getattr(test_the_topic_never_hears_a_flag_value_in_any_encoding, "inbox", None)
    if inbox is None or inbox.queue not in inbox.sqs.list_queues().get("QueueUrls", []):
        inbox = test_the_topic_never_hears_a_flag_value_in_any_encoding.inbox = TopicInbox()
    e2e().aws.params.put("/e2e/allow", value, secure=True)
    seeder(plan).put_environment("e2e-worker", {**OTHER_VARIABLES, "E2E_COHORT": value, "E2E_OUTBOUND": value})
    with pytest.raises(RuntimeError, match="rollback UNFINISHED"):
        run_script(inputs)
    (told,) = inbox.messages()
    text = told["Subject"] + "\n" + told["Message"]
    assert "allow (/e2e/allow)" in text and "cohort (e2e-worker env E2E_COHORT)" in text
    assert not any(f in text for f in forms)
    assert not any(f in e2e.state().record.reason for f in forms)


# --- the event pattern -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", PLANS)
def test_the_rule_fires_on_alarm_of_a_plan_alarm_only(key):
    plan = load_plan(PLANS[key])
    pattern = guard.build_event_pattern(plan)
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    cases = samples(plan)
    assert any(fire for _, fire in cases) and any(not fire for _, fire in cases)
    for event, fire in cases:
        seen = (event["detail"]["alarmName"], event["detail"]["state"]["value"], event["source"])
        assert matches(pattern, event) is fire, seen
        assert moto_matches(pattern, event) is fire, seen


def alarm_plan(*checks: str):
    """The e2e plan whose alarms checks are `checks` (YAML bodies), all of them gates of the first phase."""
    text = E2E.read_text()
    quiet = "  quiet:\n    type: alarms\n    names: [e2e-errors]\n    quiet_for: 0s\n"
    assert quiet in text
    bodies = "".join(f"  watch{i}:\n    type: alarms\n" + "".join(f"    {line}\n" for line in c.split("; ")) for i, c in enumerate(checks))
    text = text.replace(quiet, bodies).replace("gates: [env_ok, secrets_ok, quiet]",
                                               f"gates: [env_ok, secrets_ok, {', '.join(f'watch{i}' for i in range(len(checks)))}]")
    return parse_plan(text.replace("gates: [fresh, quiet]", "gates: [fresh]").replace("gates: [quiet]", "gates: []"), str(E2E))


@pytest.mark.parametrize("checks, fires_on_insufficient", [
    (["names: [a]"], {"a": True}),  # the default is insufficient_data: fail, as in the gates
    (["names: [a]; insufficient_data: fail"], {"a": True}),
    (["names: [a]; insufficient_data: ok"], {"a": False}),
    # One alarm watched by two checks with different policies: the stricter wins.
    (["names: [a, b]; insufficient_data: ok", "names: [b, c]"], {"a": False, "b": True, "c": True}),
    (["names: [a]; insufficient_data: ok", "prefix: a"], {"a": True, "ab": True}),
    (["prefix: app-; insufficient_data: ok", "names: [app-one]"], {"app-one": True, "app-two": False}),
    (["prefix: app-; insufficient_data: ok", "names: [z]; insufficient_data: ok"], {"app-x": False, "z": False}),
])
def test_the_rule_fires_on_insufficient_data_as_the_checks_say(checks, fires_on_insufficient):
    """A CloudWatch alarm going to INSUFFICIENT_DATA (its metric stopped arriving) fires the guard when a
    check watching it says `insufficient_data: fail` (the gates' default): the guard treats it as the
    gates do. `ok` fires on ALARM only. Checked with two matchers on events shaped as CloudWatch sends them."""
    plan = alarm_plan(*checks)
    pattern = guard.build_event_pattern(plan)
    for alarm, fires in fires_on_insufficient.items():
        for value, fire in (("ALARM", True), ("INSUFFICIENT_DATA", fires), ("OK", False)):
            event = alarm_event(alarm, value)
            assert matches(pattern, event) is fire and moto_matches(pattern, event) is fire, (checks, alarm, value)
    assert not moto_matches(pattern, alarm_event("unwatched", "INSUFFICIENT_DATA"))
    line = guard_cmd.trigger_line(plan)
    strict_alarms = [a for a, f in fires_on_insufficient.items() if f]
    assert ("INSUFFICIENT_DATA" in line) is bool(strict_alarms), line


def test_status_names_the_insufficient_data_policy_and_a_change_of_it(e2e, store):
    guard_cmd.arm(e2e(), store)
    st = guard_cmd.status(e2e(dry_run=True), store)
    assert any("ALARM or INSUFFICIENT_DATA" in line and "e2e-errors" in line for line in st.lines), st.lines
    lenient = changed_plan(e2e.plan, q=("quiet_for: 0s", "quiet_for: 0s\n    insufficient_data: ok"))
    st = guard_cmd.status(e2e(dry_run=True, plan=lenient), store, check=True)
    assert st.exit_code == ExitCode.DRIFT
    assert "fires on INSUFFICIENT_DATA of e2e-errors, the plan says it should not (insufficient_data: ok)" in st.data["differences"]
    assert any("on ALARM only" in line and "e2e-errors" in line for line in st.lines), st.lines


def test_the_repo_plan_watches_all_five_alarms():
    plan = load_plan(PLANS["repo"])
    alarms = guard.build_event_pattern(plan)["detail"]["alarmName"]
    assert alarms == ["rp-mw-prod-worker-error-rate", "rp-mw-prod-shopify-refresh-errors", "rp-mw-prod-richpanel-429-spike",
                      "rp-mw-prod-shopify-429-spike", "rp-mw-prod-openai-intent-failures"]


# --- names and permissions ----------------------------------------------------------------------------------------
def test_names_derive_from_the_plan_and_fit_aws_limits():
    plan = load_plan(E2E)
    n = guard.names(plan)
    assert (n.document, n.rule, n.automation_role, n.events_role) == (
        "cutover-e2e-rollback", "cutover-e2e-rollback", "cutover-e2e-rollback-automation", "cutover-e2e-rollback-events")
    long_a = dataclasses.replace(plan, name="a" * 60 + "xyz")
    long_b = dataclasses.replace(plan, name="a" * 60 + "xyw")
    for p in (long_a, long_b):
        for name in guard.names(p).__dict__.values():
            assert len(name) <= 64 and re.fullmatch(r"[A-Za-z0-9_.-]+", name) and name.startswith("cutover-")
    assert guard.names(long_a) != guard.names(long_b)


def test_roles_are_least_privilege():
    plan = load_plan(PLANS["repo"])
    auto = guard.automation_policy(plan, ACCOUNT)
    arns = [f"arn:aws:ssm:us-east-2:{ACCOUNT}:parameter{p}" for p in [*(f.parameter for f in plan.ssm_flags), plan.state_parameter]]
    ssm, lam = auto["Statement"]  # the repo plan has no SecureString flag and no topic: no KMS, no SNS grant
    # Written, and read back by the last step: exactly the SSM flags and the state.
    assert ssm["Action"] == ["ssm:PutParameter", "ssm:GetParameters"] and ssm["Resource"] == arns
    # Read-merge-write of exactly the flag function ($LATEST, unqualified: no version, no wildcard).
    assert lam["Action"] == ["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"]
    assert lam["Resource"] == [f"arn:aws:lambda:us-east-2:{ACCOUNT}:function:rp-mw-prod-worker"]
    assert "*" not in json.dumps(auto)
    assert not any(p.parameter.endswith("/lock") for p in plan.ssm_flags) and plan.lock_parameter not in json.dumps(auto)
    ev = guard.events_policy(plan, ACCOUNT)["Statement"]
    assert [s["Action"] for s in ev] == [["ssm:StartAutomationExecution"], ["iam:PassRole"]]
    assert ev[0]["Resource"] == [f"arn:aws:ssm:us-east-2:{ACCOUNT}:automation-definition/cutover-order-status-prod-rollback:*"]
    assert ev[1]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/cutover-order-status-prod-rollback-automation"]
    assert ev[1]["Condition"] == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}
    trust = guard.automation_trust(plan, ACCOUNT)["Statement"][0]
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"} and trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    etrust = guard.events_trust(plan, ACCOUNT)["Statement"][0]
    assert etrust["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:events:us-east-2:{ACCOUNT}:rule/cutover-order-status-prod-rollback"}
    # A SecureString flag adds Encrypt (to write) and Decrypt (to read back) through SSM only; a plan
    # without Lambda flags gets no Lambda grant; a topic is published to by the last step.
    e2e = load_plan(E2E)
    kms = guard.automation_policy(e2e, ACCOUNT)["Statement"][-1]
    assert kms["Action"] == ["kms:Encrypt", "kms:Decrypt"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.us-east-2.amazonaws.com"}}
    ssm_only = dataclasses.replace(e2e, flags=tuple(dataclasses.replace(f, secure=False) for f in e2e.ssm_flags))
    assert [s["Sid"] for s in guard.automation_policy(ssm_only, ACCOUNT)["Statement"]] == [
        "RollBackAndReadBackFlagsAndState"]
    told = guard.automation_policy(with_topic(e2e), ACCOUNT)["Statement"][-1]
    assert (told["Action"], told["Resource"]) == (["sns:Publish"], [TOPIC])
    # A function's environment under the plan's kms_key: Decrypt to read it, Encrypt to write it, through
    # Lambda only, on that key only.
    keyed = {st["Sid"]: st for st in guard.automation_policy(variant(e2e, kms_key=KEY), ACCOUNT)["Statement"]}
    assert keyed["LambdaEnvironmentKeysViaLambda"] == {
        "Sid": "LambdaEnvironmentKeysViaLambda", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": [KEY],
        "Condition": {"StringEquals": {"kms:ViaService": "lambda.us-east-2.amazonaws.com"}}}


def test_plans_the_guard_cannot_express_are_refused_before_any_aws_call():
    plan = load_plan(E2E)
    with pytest.raises(UsageError, match="no alarms"):
        guard.check_plan(dataclasses.replace(plan, checks={k: c for k, c in plan.checks.items() if c.type != "alarms"}))
    bad = changed_plan(plan, v=('rollback: "safe"', 'rollback: "{{x}}"'))
    with pytest.raises(UsageError, match="variable") as err:
        guard.check_plan(bad)
    assert err.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="cannot pass on"):
        guard.check_plan(changed_plan(plan, a=("names: [e2e-errors]", 'names: ["e2e-\\"x"]')))


# --- on the emulator -------------------------------------------------------------------------------------------
def test_arm_creates_the_guard_and_it_rolls_back_on_a_plan_alarm(e2e, store, tmp_path):
    from cutover.adapters.aws import Clients, make_session

    plan = e2e.plan
    n = guard.names(plan)
    out = guard_cmd.arm(e2e(), store)
    assert out.exit_code == 0 and out.headline.startswith("guard armed for e2e: created 3 resource(s)"), out.headline
    assert out.evidence_path and Path(out.evidence_path, "report.json").exists()

    doc = store.get_document(n.document)
    assert doc["type"] == "Automation" and json.loads(doc["content"]) == guard.build_document(plan, ACCOUNT)
    assert doc["tags"][guard.TAG_DIGEST] == plan.digest
    # Stored as YAML: the Lambda steps' inline scripts are documented for YAML runbooks.
    ssm = Clients(make_session(REGION, None, True))("ssm")
    assert ssm.describe_document(Name=n.document)["Document"]["DocumentFormat"] == "YAML"
    rule = store.get_rule(n.rule)
    assert rule["state"] == "ENABLED" and rule["pattern"] == guard.build_event_pattern(plan)
    (target,) = store.list_targets(n.rule)
    assert target["Arn"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-definition/{n.document}:$DEFAULT"
    assert target["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{n.events_role}"
    for spec in guard.desired(plan, ACCOUNT).roles:  # the bootstrap's, exactly as arm expects them
        role = store.get_role(spec.name)
        assert role["trust"] == spec.trust and role["policies"] == {guard.POLICY_NAME: spec.policy}

    # The armed pattern and input transformer, run by the emulator's EventBridge: only a plan alarm's
    # ALARM gets through, as the Automation parameters EventBridge would pass. (moto cannot deliver to an
    # SSM Automation target: a matching event on the guard's own rule fails PutEvents with a 500. So the
    # armed pattern and transformer are copied onto a probe rule, on its own bus, with an SQS target.)
    clients = Clients(make_session(REGION, None, False))
    sqs, events = clients("sqs"), clients("events")
    queue = sqs.create_queue(QueueName="guard-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name="guard-probe")
    events.put_rule(Name="probe", EventBusName="guard-probe", EventPattern=events.describe_rule(Name=n.rule)["EventPattern"])
    events.put_targets(Rule="probe", EventBusName="guard-probe",
                       Targets=[{"Id": "probe", "Arn": queue_arn, "InputTransformer": target["InputTransformer"]}])
    cases = samples(plan)
    assert len(cases) <= 10
    resp = events.put_events(Entries=[{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                                       "Resources": e["resources"], "EventBusName": "guard-probe"} for e, _ in cases])
    assert resp["FailedEntryCount"] == 0
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    params = [json.loads(m["Body"]) for m in got]
    # ALARM, and INSUFFICIENT_DATA (the check's default insufficient_data: fail), of the plan's alarm.
    assert params == [{"AlarmName": [e["detail"]["alarmName"]]} for e, fire in cases if fire] == [{"AlarmName": ["e2e-errors"]}] * 2

    # The alarm fires in the last phase: the armed document, run with those parameters, rolls back.
    ports = e2e().aws
    put_phase(plan, ports.params, "full", e2e.clock)
    kept = others(plan)
    armed = json.loads(store.get_document(n.document)["content"])
    results = execute_locally(armed, params[0], ApiCaller(REGION))
    assert [r for _, r in results] == ["Success"] * len(armed["mainSteps"])
    assert [s["name"] for s in lambda_steps(armed)] == ["Env02_e2e_worker"]  # at the place of its first flag
    assert live(plan, ports.params) == plan.rollback_values()
    assert others(plan) == kept and OTHER_VARIABLES.items() <= envs(plan)["e2e-worker"].items()
    assert ports.params.get_many(["/e2e/allow"])["/e2e/allow"].type == "SecureString"
    view = e2e.state()
    assert view.problem is None and view.record.phase == ROLLED_BACK and view.record.status == state.STABLE
    assert view.record.reason == "auto-rollback by guard: alarm e2e-errors" and view.record.command == "guard"
    assert view.record.plan_digest == plan.digest and view.record.run_id and "{{" not in view.record.run_id
    assert orchestrator.status(e2e(dry_run=True), check=True).exit_code == 0
    # A rollback by hand afterwards has nothing to do (the two agree), and writes nothing.
    assert orchestrator.rollback(e2e(), None, "after the guard").headline.startswith("nothing to do")


def test_arm_is_idempotent_and_a_dry_run_writes_nothing(e2e, aws_env):
    from cutover.testing.counter import CallCounter
    from cutover.adapters.aws import GuardResources

    bootstrap_roles(e2e.plan)
    counter = CallCounter()
    ro = GuardResources.connect(REGION, None, read_only=True, hooks=[counter])
    out = guard_cmd.arm(e2e(dry_run=True), ro)
    assert out.exit_code == 0 and out.headline.startswith("dry run: arming the guard for e2e would create 3 resource(s)")
    assert [r["action"] for r in out.data["resources"]] == ["unchanged"] * 2 + ["create"] * 3
    assert counter.total > 0 and counter.writes() == {}
    assert guard_cmd.status(e2e(dry_run=True), ro).data["state"] == "disarmed"
    with pytest.raises(ReadOnlyViolation):  # the read-only session refuses writes
        ro.put_rule("x", {"source": ["a"]}, "", {})

    rw = GuardResources.connect(REGION, None, read_only=False, hooks=[counter])
    assert guard_cmd.arm(e2e(), rw).exit_code == 0
    counter.reset()
    again = guard_cmd.arm(e2e(), rw)
    assert again.headline == "nothing to do: the guard for e2e is armed and matches the plan"
    assert counter.writes() == {}
    assert guard_cmd.arm(e2e(dry_run=True), ro).headline.startswith("nothing to do")


def test_status_says_what_differs_and_rearming_updates_in_place(e2e, store):
    plan = e2e.plan
    n = guard.names(plan)
    rt = e2e(dry_run=True)
    st = guard_cmd.status(rt, store, check=True)
    assert st.data["state"] == "disarmed" and st.exit_code == ExitCode.DRIFT and "NOT ARMED" in st.headline
    guard_cmd.arm(e2e(), store)
    st = guard_cmd.status(rt, store, check=True)
    assert st.exit_code == 0 and st.data["state"] == "armed" and st.data["current"] and st.data["armed_digest"] == plan.digest
    # What it would do, in order (the function's variables in one step, at its first flag), the
    # sensitive values hidden.
    steps = [(s["target"], s["value"]) for s in st.data["steps"]]
    assert steps[:5] == [("/e2e/kill", "off"), ("e2e-worker env E2E_OUTBOUND", "off"),
                         ("e2e-worker env E2E_COHORT", HIDDEN), ("/e2e/mode", "safe"), ("/e2e/allow", HIDDEN)]
    assert steps[5][0] == plan.state_parameter and "rolled_back" in steps[5][1] and "<alarm name>" in steps[5][1]
    assert [s["step"] for s in st.data["steps"]][1:3] == ["Env02_e2e_worker"] * 2
    assert not any("/e2e/allow = none" in line or "(cohort) = none" in line for line in st.lines)
    assert "    2. Lambda e2e-worker, one update keeping its other variables:" in st.lines
    assert f"         E2E_COHORT (cohort) = {HIDDEN}" in st.lines and "    3. /e2e/mode (mode) = safe" in st.lines

    # The plan changes: rollback values of both kinds, a Lambda flag added, an alarm, the digest. Status
    # names each (sensitive values hidden); --check exits 5.
    new = changed_plan(plan, v=('rollback: "safe"', 'rollback: "safer"'), a=("names: [e2e-errors]", "names: [e2e-errors, e2e-latency]"),
                       o=('E2E_OUTBOUND}\n    rollback: "off"', 'E2E_OUTBOUND}\n    rollback: "halt"'),
                       c=('E2E_COHORT}\n    rollback: "none"', 'E2E_COHORT}\n    rollback: "nobody"'),
                       x=("\nchecks:", '\n  extra:\n    lambda: {function: e2e-worker, variable: E2E_EXTRA}\n    rollback: "no"\nchecks:'))
    st = guard_cmd.status(e2e(dry_run=True, plan=new), store, check=True)
    assert st.exit_code == ExitCode.DRIFT and st.data["state"] == "stale"
    text = "\n".join(st.data["differences"])
    assert "/e2e/mode: armed safe (String), plan safer (String)" in text
    assert "e2e-worker env E2E_OUTBOUND: armed off, plan halt" in text
    assert f"e2e-worker env E2E_COHORT: armed {HIDDEN}, plan {HIDDEN}" in text and "nobody" not in text
    assert "e2e-worker env E2E_EXTRA is not rolled back by the armed guard" in text
    assert "alarms not watched by the armed rule: e2e-latency" in text
    assert f"armed for plan sha256 {plan.digest[:12]}" in text
    # Its automation role may write the same function: the permissions did not change.
    assert not any("permissions" in d for d in text.splitlines())
    assert guard_cmd.arm(e2e(dry_run=True, plan=new), store).data["resources"][2]["action"] == "update"

    out = guard_cmd.arm(e2e(plan=new), store)
    assert out.exit_code == 0 and "updated" in out.headline
    doc = store.get_document(n.document)
    assert (doc["default_version"], doc["latest_version"]) == ("2", "2")  # $DEFAULT runs the new content
    assert json.loads(doc["content"]) == guard.build_document(new, ACCOUNT)
    assert store.get_rule(n.rule)["pattern"]["detail"]["alarmName"] == ["e2e-errors", "e2e-latency"]
    assert guard_cmd.status(e2e(dry_run=True, plan=new), store).data["current"]
    # Back to the first plan: SSM refuses a duplicate version; the version holding it becomes the default.
    guard_cmd.arm(e2e(), store)
    doc = store.get_document(n.document)
    assert doc["default_version"] == "1" and json.loads(doc["content"]) == guard.build_document(plan, ACCOUNT)
    assert guard_cmd.status(e2e(dry_run=True), store, check=True).exit_code == 0


def test_status_names_a_lambda_step_that_runs_another_script_and_rearming_replaces_it(e2e, store):
    """A document armed by another cutover version (or edited by hand) whose Lambda step runs another
    script is stale even when every value matches: it is the script that keeps the other variables."""
    n = guard.names(e2e.plan)
    guard_cmd.arm(e2e(), store)
    doc = json.loads(store.get_document(n.document)["content"])
    (step,) = lambda_steps(doc)
    edited = step["inputs"]["Script"].replace("write(dict(variables, **want), revision, attempt)", "write(dict(want), revision, attempt)")
    assert edited != step["inputs"]["Script"]  # (the merge line this edit drops the other variables from)
    step["inputs"]["Script"] = edited
    store.update_document(n.document, json.dumps(doc, indent=2), {guard.TAG_PLAN: e2e.plan.name, guard.TAG_DIGEST: e2e.plan.digest})
    st = guard_cmd.status(e2e(dry_run=True), store, check=True)
    assert st.exit_code == ExitCode.DRIFT and st.data["state"] == "stale"
    assert st.data["differences"] == ["the armed step for Lambda function e2e-worker runs another script than this cutover's "
                                      "(armed by another version, or edited)"]
    assert guard_cmd.arm(e2e(), store).exit_code == 0
    assert lambda_steps(json.loads(store.get_document(n.document)["content"]))[0]["inputs"]["Script"] == guard.LAMBDA_SCRIPT
    assert guard_cmd.status(e2e(dry_run=True), store, check=True).exit_code == 0


def test_a_partly_armed_guard_is_reported_and_arm_repairs_it(e2e, store):
    n = guard.names(e2e.plan)
    guard_cmd.arm(e2e(), store)
    store.remove_targets(n.rule, [guard.TARGET_ID])
    st = guard_cmd.status(e2e(dry_run=True), store, check=True)
    assert st.exit_code == ExitCode.DRIFT and st.data["state"] == "partial" and "missing target" in st.headline
    out = guard_cmd.arm(e2e(), store)
    assert "created 1 resource(s)" in out.headline, out.headline
    assert guard_cmd.status(e2e(dry_run=True), store).data["state"] == "armed"

    # Someone widens the automation role by hand: status says so and sends an admin to the bootstrap; arm
    # (which never writes IAM) refuses, writing nothing, until the role is the plan's again.
    iam_admin = admin_clients(REGION)("iam")
    iam_admin.put_role_policy(RoleName=n.automation_role, PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}))
    st = guard_cmd.status(e2e(dry_run=True), store, check=True)
    assert st.exit_code == ExitCode.DRIFT and "extra inline policies: extra" in st.data["differences"]
    assert "cutover guard bootstrap" in st.hint
    new = changed_plan(e2e.plan, v=('rollback: "safe"', 'rollback: "safer"'))
    with pytest.raises(Blocked) as err:
        guard_cmd.arm(e2e(plan=new), store)
    assert err.value.exit_code == ExitCode.BLOCKED and "automation role cutover-e2e-rollback-automation differs" in err.value.message
    assert "cutover guard bootstrap" in err.value.hint and "nothing was written" in err.value.message
    assert guard_cmd.status(e2e(dry_run=True), store).data["armed_digest"] == e2e.plan.digest, "the document was not touched"
    iam_admin.delete_role_policy(RoleName=n.automation_role, PolicyName="extra")
    assert guard_cmd.arm(e2e(plan=new), store).exit_code == 0


def test_arm_without_the_bootstrap_says_to_run_it_and_writes_nothing(e2e, aws_env):
    """The everyday operator cannot create or change roles: arm (a dry run too) refuses with exit 3 and the
    bootstrap command, before any write; once an admin applied the printed template, arm works."""
    from cutover.testing.counter import CallCounter
    from cutover.adapters.aws import GuardResources

    counter = CallCounter()
    rw = GuardResources.connect(REGION, None, read_only=False, hooks=[counter])
    for dry_run in (True, False):
        with pytest.raises(Blocked) as err:
            guard_cmd.arm(e2e(dry_run=dry_run), rw)
        assert err.value.exit_code == ExitCode.BLOCKED
        assert "automation role cutover-e2e-rollback-automation is missing" in err.value.message
        assert "events role cutover-e2e-rollback-events is missing" in err.value.message
        assert "cutover guard bootstrap" in err.value.hint and "--stack-name cutover-e2e-guard-roles" in err.value.hint
    assert counter.writes() == {}
    st = guard_cmd.status(e2e(dry_run=True), rw)
    assert st.data["state"] == "disarmed" and "cutover guard bootstrap" in st.hint
    bootstrap_roles(e2e.plan)
    assert guard_cmd.arm(e2e(), rw).exit_code == 0
    assert not any(a.startswith("iam:") and a not in ROLE_READS for a in counter.calls), "arm reads the roles and writes no IAM"


def test_the_bootstrap_template_makes_exactly_the_roles_arm_expects(e2e):
    """The printed template, applied by CloudFormation (the emulator's), yields the two roles with the
    plan's trust and least-privilege policies, the account filled in by CloudFormation itself."""
    import ast

    from cutover.adapters.aws import GuardResources

    plan = e2e.plan
    template = guard.bootstrap_template(plan)
    text = json.dumps(template)
    assert ACCOUNT not in text and "ACCOUNT_ID" not in text and "${AWS::AccountId}" in text
    assert {r["Type"] for r in template["Resources"].values()} == {"AWS::IAM::Role"} and len(template["Resources"]) == 2
    cfn, iam_admin = admin_clients(REGION)("cloudformation"), admin_clients(REGION)("iam")
    cfn.create_stack(StackName=guard.stack_name(plan), TemplateBody=text, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert cfn.describe_stacks(StackName=guard.stack_name(plan))["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    for spec in guard.role_specs(plan, ACCOUNT):
        assert iam_admin.get_role(RoleName=spec.name)["Role"]["AssumeRolePolicyDocument"] == spec.trust
        # The emulator's CloudFormation stores an inline policy as Python text, not JSON: read it as such.
        (policy,) = iam_admin.list_role_policies(RoleName=spec.name)["PolicyNames"]
        stored = iam_admin.get_role_policy(RoleName=spec.name, PolicyName=policy)["PolicyDocument"]
        assert policy == guard.POLICY_NAME and (stored if isinstance(stored, dict) else ast.literal_eval(stored)) == spec.policy
    # Applied with the IAM API instead (how the tests bootstrap): exactly what arm compares.
    cfn.delete_stack(StackName=guard.stack_name(plan))
    assert bootstrap_roles(plan) == [guard.names(plan).automation_role, guard.names(plan).events_role]
    store = GuardResources.connect(REGION, None, read_only=True)
    want = guard.desired(plan, ACCOUNT)
    roles = [r for r in guard_cmd.compare(plan, want, guard_cmd.observe(store, want.names, want)) if r.kind.endswith(" role")]
    assert [(r.kind, r.current) for r in roles] == [("automation role", True), ("events role", True)], roles


def test_disarm_removes_everything(e2e, store):
    from cutover.testing.counter import CallCounter
    from cutover.adapters.aws import GuardResources

    n = guard.names(e2e.plan)
    assert guard_cmd.disarm(e2e(), store).headline == "nothing to do: no guard is armed for e2e"
    guard_cmd.arm(e2e(), store)
    counter = CallCounter()
    ro = GuardResources.connect(REGION, None, read_only=True, hooks=[counter])
    dry = guard_cmd.disarm(e2e(dry_run=True), ro)
    assert "would remove 3 resource(s)" in dry.headline and counter.writes() == {}
    assert guard_cmd.status(e2e(dry_run=True), store).data["state"] == "armed"
    out = guard_cmd.disarm(e2e(), store)
    assert out.exit_code == 0 and out.headline == "guard disarmed for e2e: removed 3 resource(s)"
    assert store.get_rule(n.rule) is None and store.get_document(n.document) is None
    # The roles are the admin's bootstrap: they stay, and disarm says how to remove them.
    assert store.get_role(n.automation_role) is not None and store.get_role(n.events_role) is not None
    assert any("delete-stack --stack-name cutover-e2e-guard-roles" in line for line in out.lines)
    assert guard_cmd.status(e2e(dry_run=True), store).data["state"] == "disarmed"


def test_the_operator_policy_covers_every_call_the_guard_makes_and_little_more(e2e, store):
    from cutover.testing.counter import CallCounter
    from cutover.adapters.aws import GuardResources

    plan = e2e.plan
    n = guard.names(plan)

    def actions(doc: dict) -> set[str]:
        return {a for s in doc["Statement"] for a in s["Action"]}

    def scoped(doc: dict) -> bool:
        return all(s["Resource"] == "*" and s["Action"] == ["sts:GetCallerIdentity"] or "*" not in json.dumps(s["Resource"])
                   for s in doc["Statement"])

    reads, writes = CallCounter(), CallCounter()
    ro = GuardResources.connect(REGION, None, True, hooks=[reads])
    rw = GuardResources.connect(REGION, None, False, hooks=[writes])
    guard_cmd.arm(e2e(dry_run=True, counter=reads), ro)
    guard_cmd.arm(e2e(counter=writes), rw)
    for op in (guard_cmd.status, guard_cmd.arm, guard_cmd.disarm):
        op(e2e(dry_run=True, counter=reads), ro)
    new = changed_plan(plan, v=('rollback: "safe"', 'rollback: "safer"'))
    guard_cmd.arm(e2e(counter=writes, plan=new), rw)
    guard_cmd.arm(e2e(counter=writes), rw)  # back: the duplicate-content path
    guard_cmd.disarm(e2e(counter=writes), rw)
    read_only, full = guard.operator_policy(plan, ACCOUNT, read_only=True), guard.operator_policy(plan, ACCOUNT)
    assert set(reads.calls) <= actions(read_only) and reads.writes() == {}
    assert set(writes.calls) <= actions(full)
    # Every grant is used, but for the authorisation-only actions (no API of that name).
    assert actions(full) - set(reads.calls) - set(writes.calls) == {"events:TagResource", "iam:PassRole"}
    # No IAM write at all: PassRole (of the events role, to EventBridge) is the only IAM grant beyond reads
    # (this plan's automation role fits inline: no managed policy of it to read).
    assert {a for a in actions(full) if a.startswith("iam:")} == {*ROLE_READS, "iam:PassRole"} - {"iam:GetPolicy", "iam:GetPolicyVersion"}
    assert scoped(full) and scoped(read_only)
    assert "ACCOUNT_ID" in json.dumps(guard.operator_policy(plan))


# --- the CLI ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def run_cli(e2e, tmp_path):
    """`cutover ...` with the guard sub-app (on a test-local app, the global options and `status`)."""
    import typer
    from typer.testing import CliRunner

    from cutover.cli import app as cli
    from cutover.cli.guard import guard_app

    app = typer.Typer()
    app.callback()(cli.main_options)
    app.command("status")(cli.status)
    app.add_typer(guard_app, name="guard")
    bootstrap_roles(e2e.plan)

    def invoke(*args: str):
        result = CliRunner().invoke(app, ["--plan", str(E2E), "--evidence-dir", str(tmp_path / "ev"), *args])
        assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit)), result.output
        return result

    return invoke


def test_cli_guard_arm_status_disarm(run_cli, e2e):
    r = run_cli("guard", "arm")  # not a terminal: writing needs --yes
    assert r.exit_code == 2 and "--yes" in r.output
    r = run_cli("guard", "arm", "--dry-run")
    assert r.exit_code == 0 and "would create 3 resource(s)" in r.stdout and "create rule cutover-e2e-rollback" in r.stdout
    r = run_cli("--json", "guard", "status", "--check")
    assert r.exit_code == 5 and json.loads(r.stdout)["state"] == "disarmed"
    r = run_cli("guard", "arm", "--yes")
    assert r.exit_code == 0 and "guard armed for e2e" in r.stdout
    r = run_cli("--json", "guard", "status", "--check")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["command"] == "guard" and doc["state"] == "armed" and doc["current"]
    allow = next(s for s in doc["steps"] if s["parameter"] == "/e2e/allow")
    assert allow["value"] == HIDDEN and allow["type"] == "SecureString"
    cohort = next(s for s in doc["steps"] if s["variable"] == "E2E_COHORT")
    assert (cohort["kind"], cohort["function"], cohort["flag"], cohort["value"]) == ("lambda", "e2e-worker", "cohort", HIDDEN)
    r = run_cli("guard", "status")
    assert r.exit_code == 0 and "guard ARMED for e2e and it matches the plan" in r.stdout
    assert "/e2e/allow (allow) = " + HIDDEN in r.stdout and "/e2e/allow (allow) = none" not in r.stdout
    assert "Lambda e2e-worker, one update keeping its other variables:" in r.stdout
    assert "E2E_COHORT (cohort) = " + HIDDEN in r.stdout and "(cohort) = none" not in r.stdout

    # The alarm fires in the full phase; the armed document runs; `cutover status --check` is clean.
    put_phase(e2e.plan, e2e().aws.params, "full", e2e.clock)
    from cutover.adapters.aws import GuardResources

    armed = json.loads(GuardResources.connect(REGION, None, True).get_document("cutover-e2e-rollback")["content"])
    assert all(r == "Success" for _, r in execute_locally(armed, {"AlarmName": ["e2e-errors"]}, ApiCaller(REGION)))
    r = run_cli("status", "--check")
    assert r.exit_code == 0, r.output
    assert "state: rolled_back (stable" in r.stdout

    r = run_cli("guard", "disarm", "--dry-run")
    assert r.exit_code == 0 and "would remove 3 resource(s)" in r.stdout
    r = run_cli("guard", "disarm", "--yes")
    assert r.exit_code == 0 and "removed 3 resource(s)" in r.stdout
    r = run_cli("guard", "status")
    assert r.exit_code == 0 and "NOT ARMED" in r.stdout


def test_cli_guard_bootstrap_prints_the_template_and_calls_no_aws(tmp_path):
    """Read-only: the template on stdout (also with --json), how to apply it on stderr; no boto3 loaded."""
    import subprocess
    import sys

    code = ("import sys, json; from typer.testing import CliRunner; from cutover.cli.app import app; "
            f"r = CliRunner().invoke(app, ['--plan', {str(E2E)!r}, 'guard', 'bootstrap']); "
            "print(json.dumps([r.exit_code, r.stdout, r.stderr, 'boto3' in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    exit_code, stdout, stderr, boto3_loaded = json.loads(p.stdout.splitlines()[-1])
    assert exit_code == 0 and not boto3_loaded, p.stderr
    assert json.loads(stdout) == guard.bootstrap_template(load_plan(E2E))
    assert "aws cloudformation deploy" in stderr and "CAPABILITY_NAMED_IAM" in stderr
    from typer.testing import CliRunner

    from cutover.cli.app import app

    r = CliRunner().invoke(app, ["--plan", str(E2E), "--json", "guard", "bootstrap"])
    assert r.exit_code == 0 and json.loads(r.stdout) == guard.bootstrap_template(load_plan(E2E))


# --- the runbook says when the guard fires, what KMS needs, and the bootstrap ------------------------------
def test_the_runbook_states_when_the_guard_fires_its_bootstrap_and_the_kms_needs():
    from cutover.compile import runbook

    def guard_section(plan) -> str:
        text = runbook.render(plan)
        return text[text.index("## The guard"):text.index("## State diagram")]

    repo = load_plan(PLANS["repo"])
    text = guard_section(repo)
    assert "- on ALARM or INSUFFICIENT_DATA (`insufficient_data: fail`, the default" in text
    assert all(f"`{a}`" in text.split("- on ALARM or INSUFFICIENT_DATA")[1].split("\n")[0] for a in guard.watched_alarms(repo)[0])
    assert "cutover guard bootstrap > guard-roles.json" in text and "--stack-name cutover-order-status-prod-guard-roles" in text
    assert "records the rollback as\nunfinished (`rolling_back`)" in text and "execution fails" in text
    mixed = alarm_plan("names: [a, b]; insufficient_data: ok", "names: [b]")
    mixed_text = guard_section(mixed)
    assert "- on ALARM or INSUFFICIENT_DATA (`insufficient_data: fail`, the default: no data fails the gates too): `b`" in mixed_text
    assert "- on ALARM only (`insufficient_data: ok`): `a`" in mixed_text
    told = guard_section(with_topic(load_plan(E2E)))
    assert f"SNS topic `{TOPIC}` is told which flags are still live" in told

    whole = runbook.render(variant(load_plan(E2E), kms_key=KEY))
    assert f"- **KMS**: `e2e-worker` under `{KEY}`." in whole and "`kms:Decrypt` and `kms:Encrypt`" in whole
    assert "the plan names no `kms_key`" in runbook.render(repo)
    assert "- **Rollback readiness**: before every advance" in whole
