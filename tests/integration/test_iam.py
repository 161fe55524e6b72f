"""`cutover iam-policy`: valid IAM grammar, exactly the plan's resources, never a value, and enough
for every call cutover really makes (recorded against the emulator), in both variants."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from cutover.compile import iam
from cutover.commands import orchestrator
from cutover.commands import preflight
from cutover.testing.counter import CallCounter
from cutover.adapters.aws import iam_prefix, make_ports
from cutover.cli.app import app
from cutover.plan.load import load_plan
from cutover.redact import sensitive_values
from tests.guardkit import ALIAS, KEY, variant

ROOT = Path(__file__).resolve().parents[2]
REPO_PLAN = ROOT / "phases.yaml"
PLANS = [REPO_PLAN, *sorted((ROOT / "tests" / "plans").glob("*.yaml"))]
VALID_PLANS = [p for p in PLANS if p.name in ("phases.yaml", "e2e.yaml", "every_check.yaml", "minimal.yaml")]
EMULATOR_ACCOUNT = "123456789012"  # moto's

# The IAM policy grammar (the parts a generated identity policy uses), as JSON Schema.
ARN = r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}|ACCOUNT_ID)?:.+$"
_ONE_OR_MANY = lambda item: {"oneOf": [item, {"type": "array", "minItems": 1, "items": item}]}  # noqa: E731
POLICY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["Version", "Statement"],
    "additionalProperties": False,
    "properties": {
        "Version": {"const": "2012-10-17"},
        "Id": {"type": "string"},
        "Statement": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["Effect", "Action", "Resource"],
                "additionalProperties": False,
                "properties": {
                    "Sid": {"type": "string", "pattern": "^[A-Za-z0-9]*$"},
                    "Effect": {"enum": ["Allow", "Deny"]},
                    "Action": _ONE_OR_MANY({"type": "string", "pattern": r"^[a-z0-9-]+:[A-Za-z*]+$"}),
                    "Resource": {"oneOf": [{"const": "*"}, _ONE_OR_MANY({"type": "string", "pattern": ARN})]},
                    "Condition": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {  # operator -> {key: value or values}
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": _ONE_OR_MANY({"type": "string"}),
                        },
                    },
                },
            },
        },
    },
}
WRITES = {"ssm:PutParameter", "ssm:DeleteParameter", "kms:Encrypt", "sns:Publish", "lambda:UpdateFunctionConfiguration"}


def statements(doc: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(doc: dict) -> set[str]:
    return {a for s in doc["Statement"] for a in s["Action"]}


def where(doc: dict, resource: str) -> list[str]:
    """The Sids whose Resource lists this exact ARN."""
    return [s["Sid"] for s in doc["Statement"] if resource in s["Resource"]]


# --- grammar and shape ---------------------------------------------------------------------------------
@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("account", [iam.PLACEHOLDER_ACCOUNT, EMULATOR_ACCOUNT])
@pytest.mark.parametrize("path", VALID_PLANS, ids=lambda p: p.name)
def test_policy_follows_the_iam_grammar(path, account, read_only):
    doc = iam.policy(load_plan(path), account, read_only)
    jsonschema.validate(doc, POLICY_SCHEMA)
    sids = [s["Sid"] for s in doc["Statement"]]
    assert len(sids) == len(set(sids)), "each Sid names one statement"
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])
    assert json.loads(iam.render(doc)) == doc


def test_the_schema_rejects_what_iam_rejects():
    good = iam.policy(load_plan(REPO_PLAN))
    broken = [
        {**good, "Version": "2008-10-17x"},
        {**good, "Statement": [{**good["Statement"][0], "Sid": "has spaces"}]},
        {**good, "Statement": [{**good["Statement"][0], "Effect": "allow"}]},
        {**good, "Statement": [{**good["Statement"][0], "Action": ["GetParameters"]}]},
        {**good, "Statement": [{**good["Statement"][0], "Resource": ["/rp-mw/prod/safe_mode"]}]},
        {**good, "Statement": [{**good["Statement"][0], "Resource": ["arn:aws:ssm:us-east-2:*:parameter/x"]}]},
    ]
    for doc in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, POLICY_SCHEMA)


@pytest.mark.parametrize("path", VALID_PLANS, ids=lambda p: p.name)
def test_read_only_variant_has_no_writes(path):
    plan = load_plan(path)
    ro, rw = iam.policy(plan, read_only=True), iam.policy(plan)
    assert not actions(ro) & WRITES
    assert not any(a.startswith(("ssm:Put", "ssm:Delete")) for a in actions(ro))
    assert {"ssm:PutParameter", "ssm:DeleteParameter"} <= actions(rw)
    # Lambda flags: reading the configuration is read-only; updating it is not.
    assert ("lambda:GetFunctionConfiguration" in actions(ro)) is bool(plan.functions)
    assert ("lambda:UpdateFunctionConfiguration" in actions(rw)) is bool(plan.functions)
    # The read-only policy is the read-write one less its writes (the flags' statement, reads and writes
    # in one to keep the policy small, keeps its reads).
    def less_writes(s):
        return {**s, "Sid": s["Sid"].replace("ReadWrite", "Read"), "Action": [a for a in s["Action"] if a not in WRITES]}
    assert [less_writes(s) for s in rw["Statement"] if set(s["Action"]) - WRITES] == ro["Statement"]


@pytest.mark.parametrize("path", VALID_PLANS, ids=lambda p: p.name)
def test_sensitive_values_never_appear(path):
    plan = load_plan(path)
    for read_only in (False, True):
        text = iam.render(iam.policy(plan, read_only=read_only))
        for value in sensitive_values(plan):
            if len(value) > 1:  # "*" is a wildcard everywhere; a one-character value reveals nothing
                assert value not in text
        assert "@" not in text


# --- the repo plan: every resource exactly where expected ------------------------------------------------
def test_the_readiness_gate_may_simulate_the_rollback_in_both_variants():
    for read_only in (False, True):
        s = statements(iam.policy(load_plan(REPO_PLAN), EMULATOR_ACCOUNT, read_only))["SimulateRollbackPermissions"]
        assert s["Action"] == ["iam:SimulatePrincipalPolicy"]
        assert s["Resource"] == [f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/*", f"arn:aws:iam::{EMULATOR_ACCOUNT}:user/*"]


def test_repo_plan_names_every_resource_exactly_where_expected():
    plan = load_plan(REPO_PLAN)
    doc = iam.policy(plan, EMULATOR_ACCOUNT)
    base = "arn:aws:ssm:us-east-2:123456789012:parameter"
    assert f"{base}/rp-mw/prod/safe_mode" in statements(doc)["ReadWriteFlagsStateAndLock"]["Resource"]  # one slash
    for f in plan.ssm_flags:
        assert where(doc, f"{base}{f.parameter}") == ["ReadWriteFlagsStateAndLock"]
    assert where(doc, f"{base}/cutover/order-status-prod/state") == ["ReadWriteFlagsStateAndLock"]
    assert where(doc, f"{base}/cutover/order-status-prod/lock") == ["ReadWriteFlagsStateAndLock", "ReleaseLock"]
    s = statements(doc)
    assert s["ReadWriteFlagsStateAndLock"]["Action"] == [
        "ssm:GetParameters", "ssm:GetParameter", "ssm:GetParameterHistory", "ssm:PutParameter"]
    assert len(s["ReadWriteFlagsStateAndLock"]["Resource"]) == len(plan.ssm_flags) + 2
    read_only = statements(iam.policy(plan, EMULATOR_ACCOUNT, read_only=True))["ReadFlagsStateAndLock"]
    assert read_only["Action"] == ["ssm:GetParameters", "ssm:GetParameter", "ssm:GetParameterHistory"]
    assert s["ReleaseLock"] == {"Sid": "ReleaseLock", "Effect": "Allow", "Action": ["ssm:DeleteParameter"],
                                "Resource": [f"{base}/cutover/order-status-prod/lock"]}

    # The five Lambda flags live in one function: read and update its configuration, that function only
    # (unqualified: $LATEST; no version, alias or wildcard).
    worker = "arn:aws:lambda:us-east-2:123456789012:function:rp-mw-prod-worker"
    assert len(plan.flags) - len(plan.ssm_flags) == 5 and plan.functions == ("rp-mw-prod-worker",)
    assert s["ReadLambdaFlags"] == {"Sid": "ReadLambdaFlags", "Effect": "Allow", "Action": ["lambda:GetFunctionConfiguration"],
                                    "Resource": [worker]}
    assert s["WriteLambdaFlags"] == {"Sid": "WriteLambdaFlags", "Effect": "Allow",
                                     "Action": ["lambda:UpdateFunctionConfiguration"], "Resource": [worker]}
    assert sorted(a for a in actions(doc) if a.startswith("lambda:")) == ["lambda:GetFunctionConfiguration",
                                                                          "lambda:UpdateFunctionConfiguration"]

    alarms = plan.checks["alarms_quiet"].names
    assert s["DescribeGateAlarms"]["Resource"] == [f"arn:aws:cloudwatch:us-east-2:123456789012:alarm:{a}" for a in alarms]
    assert s["DescribeGateAlarms"]["Action"] == ["cloudwatch:DescribeAlarms"]
    assert s["SearchGateLogGroups"]["Resource"] == [
        "arn:aws:logs:us-east-2:123456789012:log-group:/aws/lambda/rp-mw-prod-shopify-token-refresh:*",
        "arn:aws:logs:us-east-2:123456789012:log-group:/aws/lambda/rp-mw-prod-worker:*",
    ]
    secrets = plan.checks["required_secrets"].secret_ids
    assert s["ReadGateSecrets"]["Resource"] == [
        f"arn:aws:secretsmanager:us-east-2:123456789012:secret:{sid}-??????" for sid in secrets]
    assert "DescribeGateSecrets" not in s  # every secret is read, so GetSecretValue covers it

    # No SecureString flag (the emails moved to the Lambda environment): KMS only for the secrets,
    # only through Secrets Manager.
    assert "DecryptSecureStringFlagsViaSsm" not in s and "EncryptSecureStringFlagsViaSsm" not in s
    assert s["DecryptSecretsViaSecretsManager"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-2.amazonaws.com"}}
    assert s["IdentifyCaller"] == {"Sid": "IdentifyCaller", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"],
                                   "Resource": "*"}
    # Nothing but the kms statement, sts and GetMetricData (no resource-level permissions) use "*".
    assert {sid for sid, st in s.items() if st["Resource"] == "*"} == {"DecryptSecretsViaSecretsManager", "IdentifyCaller",
                                                                       "ReadGateMetrics"}
    assert s["ReadGateMetrics"]["Action"] == ["cloudwatch:GetMetricData"]


def test_secure_string_flags_get_kms_through_ssm_only():
    s = statements(iam.policy(load_plan(ROOT / "tests/plans/e2e.yaml"), EMULATOR_ACCOUNT))
    assert s["DecryptSecureStringFlagsViaSsm"]["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.us-east-2.amazonaws.com"}}
    assert s["EncryptSecureStringFlagsViaSsm"]["Action"] == ["kms:Encrypt"]


def test_secrets_prefixes_and_templates():
    doc = iam.policy(load_plan(ROOT / "tests/plans/every_check.yaml"), EMULATOR_ACCOUNT)
    s = statements(doc)
    # decrypt: false -> DescribeSecret only; a full ARN stays as written.
    assert s["DescribeGateSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:app/db-??????",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:app/key-AbCdEf",
    ]
    # {{secret:app/key#token}} in an http header is read with GetSecretValue.
    assert s["ReadGateSecrets"]["Resource"] == ["arn:aws:secretsmanager:us-west-2:123456789012:secret:app/key-??????"]
    assert s["DescribeGateAlarms"]["Resource"] == ["arn:aws:cloudwatch:us-west-2:123456789012:alarm:app-errors",
                                                   "arn:aws:cloudwatch:us-west-2:123456789012:alarm:app-*"]
    assert s["ReadWriteFlagsStateAndLock"]["Resource"][-1] == "arn:aws:ssm:us-west-2:123456789012:parameter/ops/cutover/every-check/lock"


def test_a_plan_without_secrets_logs_or_secure_flags_gets_no_statements_for_them():
    s = statements(iam.policy(load_plan(ROOT / "tests/plans/minimal.yaml")))
    assert set(s) == {"ReadWriteFlagsStateAndLock", "ReleaseLock", "DescribeGateAlarms",
                      "SimulateRollbackPermissions", "ReadThroughputSetting", "IdentifyCaller"}
    assert s["DescribeGateAlarms"]["Resource"] == ["arn:aws:cloudwatch:eu-west-1:ACCOUNT_ID:alarm:app-*"]


def test_notifications_are_published_only_by_the_read_write_variant():
    from cutover.plan.load import parse_plan

    topic = "arn:aws:sns:us-east-2:123456789012:cutover-e2e"
    text = (ROOT / "tests/plans/e2e.yaml").read_text().replace("flags:\n", f"notify:\n  sns_topic_arn: {topic}\nflags:\n", 1)
    plan = parse_plan(text, "e2e.yaml")
    rw, ro = iam.policy(plan), iam.policy(plan, read_only=True)
    jsonschema.validate(rw, POLICY_SCHEMA)
    assert statements(rw)["NotifyStateChanges"] == {"Sid": "NotifyStateChanges", "Effect": "Allow",
                                                    "Action": ["sns:Publish"], "Resource": [topic]}
    assert "sns:Publish" not in actions(ro)  # a dry run never notifies


@pytest.mark.parametrize("key", [KEY, ALIAS], ids=["key", "alias"])
def test_a_lambda_environment_key_is_granted_through_lambda_only(key):
    """A customer managed key on a function's environment: the operator may Decrypt (read) and Encrypt
    (write) with it through Lambda only; --read-only reads; without kms_key, no such grant. An alias is
    matched on the key by kms:ResourceAliases (an alias ARN in Resource would grant nothing)."""
    e2e = load_plan(ROOT / "tests/plans/e2e.yaml")
    plan = variant(e2e, kms_key=key)
    rw, ro = iam.policy(plan, EMULATOR_ACCOUNT), iam.policy(plan, EMULATOR_ACCOUNT, read_only=True)
    for doc in (rw, ro):
        jsonschema.validate(doc, POLICY_SCHEMA)
    via = {"kms:ViaService": "lambda.us-east-2.amazonaws.com"}
    sid = "LambdaEnvironmentKeysViaLambda" if key == KEY else "LambdaEnvironmentKeyAliasesViaLambda"
    grant, read = statements(rw)[sid], statements(ro)[sid]
    assert grant["Action"] == ["kms:Decrypt", "kms:Encrypt"] and read["Action"] == ["kms:Decrypt"]
    assert grant["Condition"]["StringEquals"] == via
    if key == KEY:
        assert grant["Resource"] == [KEY] and set(grant["Condition"]) == {"StringEquals"}
    else:
        assert grant["Resource"] == ["arn:aws:kms:us-east-2:123456789012:key/*"]
        assert grant["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": ["alias/worker-env"]}
    assert not any(s.startswith("LambdaEnvironmentKey") for s in statements(iam.policy(e2e, EMULATOR_ACCOUNT)))


def test_other_partitions():
    import dataclasses

    plan = dataclasses.replace(load_plan(REPO_PLAN), region="cn-north-1")
    doc = iam.policy(plan)
    jsonschema.validate(doc, POLICY_SCHEMA)
    s = statements(doc)
    assert s["ReleaseLock"]["Resource"] == ["arn:aws-cn:ssm:cn-north-1:ACCOUNT_ID:parameter/cutover/order-status-prod/lock"]
    assert s["WriteLambdaFlags"]["Resource"] == ["arn:aws-cn:lambda:cn-north-1:ACCOUNT_ID:function:rp-mw-prod-worker"]
    assert s["DecryptSecretsViaSecretsManager"]["Condition"]["StringEquals"]["kms:ViaService"] == \
        "secretsmanager.cn-north-1.amazonaws.com.cn"
    e2e = dataclasses.replace(load_plan(ROOT / "tests/plans/e2e.yaml"), region="cn-north-1")
    kms = statements(iam.policy(e2e))["DecryptSecureStringFlagsViaSsm"]
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == "ssm.cn-north-1.amazonaws.com.cn"


# --- the policy is enough for what cutover does -----------------------------------------------------------
class Recorder(CallCounter):
    """A CallCounter that also keeps each call's parameters, to see which resources it touched."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict]] = []

    def attach(self, session) -> None:
        super().attach(session)
        session.events.register("before-parameter-build", self._on_params)

    def _on_params(self, params, model, **_) -> None:
        self.requests.append((f"{iam_prefix(model.service_model.service_id.hyphenize())}:{model.name}", dict(params)))


def request_resources(action: str, params: dict, region: str) -> list[str]:
    """The ARNs IAM evaluates for one call, written out independently of cutover.compile.iam."""
    head = f"{region}:{EMULATOR_ACCOUNT}"
    service = action.split(":")[0]
    if action == "ssm:GetServiceSetting":
        return [f"arn:aws:ssm:{head}:servicesetting/{params['SettingId'].lstrip('/')}"]
    if service == "ssm":
        return [f"arn:aws:ssm:{head}:parameter/{n.lstrip('/')}" for n in params.get("Names") or [params["Name"]]]
    if action == "cloudwatch:DescribeAlarms":
        names = [f"arn:aws:cloudwatch:{head}:alarm:{n}" for n in params.get("AlarmNames", [])]
        return names + ([f"arn:aws:cloudwatch:{head}:alarm:{params['AlarmNamePrefix']}*"] if "AlarmNamePrefix" in params else [])
    if action == "logs:FilterLogEvents":
        return [f"arn:aws:logs:{head}:log-group:{params['logGroupName']}:*"]
    if service == "secretsmanager":
        return [f"arn:aws:secretsmanager:{head}:secret:{params['SecretId']}-Xy12Zq"]  # AWS's random suffix
    if action == "iam:SimulatePrincipalPolicy":  # the principal whose policies are simulated
        return [params["PolicySourceArn"]]
    if service == "lambda":  # a name, partial ARN or ARN; no qualifier: the unqualified function ARN
        return [f"arn:aws:lambda:{head}:function:{params['FunctionName'].split(':function:')[-1]}"]
    return ["*"]


def _glob(pattern: str) -> re.Pattern:
    """IAM's wildcards: * any run of characters, ? exactly one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")


def allowed(doc: dict, action: str, resource: str) -> bool:
    for s in doc["Statement"]:
        patterns = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        if s["Effect"] == "Allow" and action in s["Action"] and any(_glob(p).match(resource) for p in patterns):
            return True
    return False


def denied(doc: dict, recorder: Recorder, region: str) -> list[str]:
    return [f"{action} on {r}" for action, params in recorder.requests
            for r in request_resources(action, params, region) if not allowed(doc, action, r)]


def test_read_write_policy_allows_every_call_of_advance_history_and_rollback(e2e):
    plan, rec = e2e.plan, Recorder()
    for _ in plan.phases:
        assert orchestrator.advance(e2e(counter=rec), approve=True, reason="test").exit_code == 0
    assert orchestrator.history(e2e(counter=rec)).exit_code == 0
    assert orchestrator.rollback(e2e(counter=rec), reason="incident").exit_code == 0

    doc = iam.policy(plan, EMULATOR_ACCOUNT)
    called = set(rec.calls)
    assert {"ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameters", "cloudwatch:DescribeAlarms",
            "logs:FilterLogEvents", "secretsmanager:GetSecretValue", "sts:GetCallerIdentity"} <= called
    assert plan.functions and {"lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"} <= called
    assert called <= actions(doc)
    assert denied(doc, rec, plan.region) == []
    # Least privilege the other way: every action granted is one cutover calls, except those AWS
    # evaluates server-side (kms), that serve the operator (GetParameter for the AWS CLI), or that only
    # `status` makes (GetServiceSetting: its higher-throughput hint).
    assert actions(doc) - called <= {"ssm:GetParameter", "kms:Decrypt", "kms:Encrypt", "ssm:GetServiceSetting"}


def test_read_only_policy_allows_every_call_of_dry_runs_status_preflight_and_history(e2e):
    plan, rec = e2e.plan, Recorder()
    assert orchestrator.status(e2e(dry_run=True, counter=rec)).exit_code == 0
    assert preflight.preflight(e2e(dry_run=True, counter=rec), "shadow").exit_code == 0
    assert orchestrator.advance(e2e(dry_run=True, counter=rec), approve=True, reason="test").exit_code == 0
    assert orchestrator.advance(e2e()).exit_code == 0  # into shadow, so a dry-run rollback has work to show
    assert orchestrator.rollback(e2e(dry_run=True, counter=rec)).exit_code == 0
    assert orchestrator.history(e2e(dry_run=True, counter=rec)).exit_code == 0

    doc = iam.policy(plan, EMULATOR_ACCOUNT, read_only=True)
    assert not rec.writes()
    assert "lambda:GetFunctionConfiguration" in rec.calls
    assert set(rec.calls) <= actions(doc)
    assert denied(doc, rec, plan.region) == []


def test_the_check_catches_a_missing_grant(e2e):
    """The evaluator is not vacuous: drop the lock from the flags' statement and the advance is refused."""
    rec = Recorder()
    assert orchestrator.advance(e2e(counter=rec)).exit_code == 0
    doc = iam.policy(e2e.plan, EMULATOR_ACCOUNT)
    for s in doc["Statement"]:
        if s["Sid"] == "ReadWriteFlagsStateAndLock":
            s["Resource"] = [r for r in s["Resource"] if not r.endswith("/lock")]
    lock = "arn:aws:ssm:us-east-2:123456789012:parameter/cutover/e2e/lock"
    refused = denied(doc, rec, e2e.plan.region)
    assert f"ssm:PutParameter on {lock}" in refused and all(r.endswith(f" on {lock}") for r in refused)


def test_the_repo_plan_policy_allows_every_call_of_its_rollback_status_and_dry_runs(e2e, aws_env, tmp_path):
    """The production plan, on the emulator: from its last phase, a rollback reads and rewrites the
    worker function's environment (one update) and its SSM flags; status and a dry-run rollback read them.
    Every call is allowed by the policy for exactly those resources; drop the function from the write
    grant and the update is refused."""
    from cutover.sandbox.seed import EmulatorSeeder
    from cutover.sandbox.emulator import seed

    plan = load_plan(REPO_PLAN)
    seed(plan, aws_env["AWS_ENDPOINT_URL"])  # flags at their rollback values, the worker with other variables
    emu, full = EmulatorSeeder(aws_env["AWS_ENDPOINT_URL"], plan.region), plan.values_for(plan.phase_names[-1])
    for f in plan.ssm_flags:
        emu.put_parameter(f.parameter, full[f.name], secure=f.secure)
    emu.put_environment("rp-mw-prod-worker", {**emu.environment("rp-mw-prod-worker"),
                                              **{f.target.variable: full[f.name] for f in plan.flags if f.kind == "lambda"}})
    rw, ro = Recorder(), Recorder()
    runtime = lambda rec, dry_run=False: orchestrator.Runtime(  # noqa: E731
        plan=plan, aws=make_ports(plan.region, None, read_only=dry_run, counter=rec), env={}, clock=e2e.clock,
        evidence_dir=tmp_path / "ev", dry_run=dry_run)
    assert orchestrator.status(runtime(ro, True)).exit_code == 0
    assert orchestrator.rollback(runtime(ro, True), reason="drill").exit_code == 0
    assert orchestrator.rollback(runtime(rw), reason="incident").exit_code == 0

    for doc, rec in ((iam.policy(plan, EMULATOR_ACCOUNT), rw), (iam.policy(plan, EMULATOR_ACCOUNT, read_only=True), ro)):
        assert set(rec.calls) <= actions(doc) and denied(doc, rec, plan.region) == []
    assert rw.calls["lambda:UpdateFunctionConfiguration"] == 1 and rw.calls["lambda:GetFunctionConfiguration"] >= 1
    assert ro.calls["lambda:GetFunctionConfiguration"] >= 1 and not ro.writes()
    assert {r for a, p in rw.requests if a.startswith("lambda:") for r in request_resources(a, p, plan.region)} == {
        "arn:aws:lambda:us-east-2:123456789012:function:rp-mw-prod-worker"}
    narrowed = iam.policy(plan, EMULATOR_ACCOUNT)
    statements(narrowed)["WriteLambdaFlags"]["Resource"] = ["arn:aws:lambda:us-east-2:123456789012:function:rp-mw-prod-other"]
    assert denied(narrowed, rw, plan.region) == [
        "lambda:UpdateFunctionConfiguration on arn:aws:lambda:us-east-2:123456789012:function:rp-mw-prod-worker"]


# --- the command ------------------------------------------------------------------------------------------
def invoke(*args: str):
    return CliRunner().invoke(app, ["--plan", str(REPO_PLAN), *args])


def test_cli_prints_only_the_policy_document():
    r = invoke("iam-policy")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == iam.policy(load_plan(REPO_PLAN))
    assert "ACCOUNT_ID" in r.stderr and "--account" in r.stderr  # says the account is a placeholder


def test_cli_json_flag_prints_the_same_document():
    plain, as_json = invoke("iam-policy", "--read-only"), CliRunner().invoke(
        app, ["--plan", str(REPO_PLAN), "--json", "iam-policy", "--read-only"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == json.loads(plain.stdout)
    assert json.loads(as_json.stdout) == iam.policy(load_plan(REPO_PLAN), read_only=True)


def test_cli_account():
    r = invoke("iam-policy", "--account", EMULATOR_ACCOUNT)
    assert r.exit_code == 0 and "ACCOUNT_ID" not in r.stdout and "ACCOUNT_ID" not in r.stderr
    jsonschema.validate(json.loads(r.stdout), POLICY_SCHEMA)
    bad = invoke("iam-policy", "--account", "prod")
    assert bad.exit_code == 2 and "12 digits" in bad.stderr and not bad.stdout


def test_cli_invalid_plan_is_exit_2(tmp_path):
    broken = tmp_path / "phases.yaml"
    broken.write_text("version: 1\n")
    r = CliRunner().invoke(app, ["--plan", str(broken), "iam-policy"])
    assert r.exit_code == 2 and not r.stdout


def test_iam_policy_needs_no_boto3():
    code = ("import sys; from typer.testing import CliRunner; from cutover.cli.app import app; "
            f"r = CliRunner().invoke(app, ['--plan', {str(REPO_PLAN)!r}, 'iam-policy']); "
            "print(r.exit_code, 'boto3' in sys.modules, 'botocore' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["0", "False", "False"], p.stderr


# --- no way to admin: parliament over every policy cutover generates -------------------------------------
def generated_policies(plan) -> dict[str, dict]:
    """Every IAM policy cutover generates for a plan: the operator's (`iam-policy`, with and without
    --read-only and --guard), the guard's two roles, and the roles of the bootstrap template (the account
    filled in as CloudFormation would)."""
    from cutover.compile import guard
    from tests.guardkit import resolve

    def cli(*args: str) -> dict:
        r = CliRunner().invoke(app, ["--plan", plan.path, "iam-policy", "--account", EMULATOR_ACCOUNT, *args])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    docs = {"automation role": guard.automation_policy(plan, EMULATOR_ACCOUNT), "events role": guard.events_policy(plan, EMULATOR_ACCOUNT)}
    for name, args in (("operator", ()), ("read-only", ("--read-only",)), ("operator with guard", ("--guard",)),
                       ("read-only with guard", ("--guard", "--read-only"))):
        printed = cli(*args)  # a list of managed policies when one is too large
        docs |= {f"{name} {i}": d for i, d in enumerate(printed, 1)} if isinstance(printed, list) else {name: printed}
    for logical, res in resolve(guard.bootstrap_template(plan), EMULATOR_ACCOUNT)["Resources"].items():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            docs[f"bootstrap {logical}"] = res["Properties"]["PolicyDocument"]
        for p in res["Properties"].get("Policies", []):
            docs[f"bootstrap {logical} {p['PolicyName']}"] = p["PolicyDocument"]
    return docs


def parliament_findings(doc: dict) -> list:
    """parliament's findings (its community auditors too, privilege escalation among them), with severities."""
    import parliament
    from parliament import enhance_finding, override_config

    override_config(str(Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"))
    return [enhance_finding(f) for f in parliament.analyze_policy_string(json.dumps(doc), include_community_auditors=True).findings]


def justified(finding, doc: dict) -> bool:
    """The findings we accept, each for a reason: passing one named role to one named service (the guard's
    events role to EventBridge, the automation role to SSM) is what lets the guard run; "*" only where AWS
    has no resource (sts:GetCallerIdentity, cloudwatch:GetMetricData) or where the key is unknown and kms:ViaService pins its use to
    one service; kms:ResourceAliases (how a `kms_key` alias is granted) is newer than parliament's bundled
    IAM definitions, which therefore call it unknown."""
    if finding.issue == "UNKNOWN_CONDITION_FOR_ACTION":
        return finding.detail.startswith("Unknown condition kms:ResourceAliases for action kms:")
    if finding.issue == "PERMISSIONS_MANAGEMENT_ACTIONS":
        passes = [s for s in doc["Statement"] if "iam:PassRole" in s["Action"]]
        return finding.location.get("actions") == ["iam:passrole"] and all(
            "*" not in json.dumps(s["Resource"]) and "iam:PassedToService" in json.dumps(s.get("Condition")) for s in passes)
    if finding.issue == "RESOURCE_STAR":
        stars = [s for s in doc["Statement"] if s["Resource"] == "*"]
        return all(s["Action"] in (["sts:GetCallerIdentity"], ["cloudwatch:GetMetricData"]) or (all(a.startswith("kms:") for a in s["Action"])
                   and "kms:ViaService" in s["Condition"]["StringEquals"]) for s in stars)
    return False


WITH_EVERYTHING = {"key": dict(kms_key=KEY, topic="arn:aws:sns:us-east-2:123456789012:cutover-e2e"), "alias": dict(kms_key=ALIAS)}


@pytest.mark.parametrize("path", [*VALID_PLANS, *WITH_EVERYTHING], ids=lambda p: getattr(p, "name", f"e2e+{p}"))
def test_no_generated_policy_lets_its_holder_escalate_to_admin(path):
    """parliament finds no privilege escalation in any policy cutover generates, even for a principal that
    may also assume roles (as most operators may); every other finding is one we justify. The everyday
    operator writes no IAM at all: no role creation, no role policy or trust change."""
    plan = variant(load_plan(ROOT / "tests/plans/e2e.yaml"), **WITH_EVERYTHING[path]) if path in WITH_EVERYTHING else load_plan(path)
    assume_anything = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
    for name, doc in generated_policies(plan).items():
        jsonschema.validate(doc, POLICY_SCHEMA)
        escalations = [f for f in parliament_findings({**doc, "Statement": [*doc["Statement"], assume_anything]})
                       if f.issue == "PRIVILEGE_ESCALATION"]
        assert escalations == [], (name, escalations)
        unexplained = [(f.issue, f.severity, f.location) for f in parliament_findings(doc) if not justified(f, doc)]
        assert unexplained == [], (name, unexplained)
        if not name.startswith(("automation", "events", "bootstrap")):
            writes = {a for a in actions(doc) if a.startswith("iam:") and a not in (
                "iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:GetPolicy",
                "iam:GetPolicyVersion", "iam:PassRole", "iam:SimulatePrincipalPolicy")}
            assert not writes, (name, writes)


@pytest.mark.parametrize("target", ["use2", "usw2", "euw1"])
def test_a_targets_guard_policies_spanning_its_accounts_regions_let_no_one_escalate(target):
    """A plan with targets: the account's one role pair covers the regions of its targets (policies merged
    across regions) and `iam-policy --guard` adds each target's guard permissions; parliament as above."""
    from cutover.compile import guard
    from cutover.compile.iam_targets import policies

    plan = load_plan(ROOT / "tests/plans/waves_guard.yaml")
    one = plan.at_target(next(t for t in plan.targets if t.name == target))
    docs = {spec.kind: spec.policy for spec in guard.role_specs(one, "111111111111")}
    docs |= {f"operator {a['account']}": a["policy"] for a in policies(plan, "111111111111", with_guard=True)["accounts"]}
    for name, doc in docs.items():
        jsonschema.validate(doc, POLICY_SCHEMA)
        unexplained = [(f.issue, f.severity, f.location) for f in parliament_findings(doc) if not justified(f, doc)]
        assert unexplained == [], (name, unexplained)
