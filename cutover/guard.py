"""The guard: the plan's rollback armed inside AWS, so an alarm rolls the flags back with no laptop awake.

    CloudWatch alarm -> ALARM  ==>  EventBridge rule  ==>  SSM Automation document  ==>  PutParameter x N
                                                                                     + Lambda env update x F

`cutover guard arm` compiles the plan into AWS resources, all named from the plan:

- the SSM Automation document `cutover-<plan>-rollback` (schemaVersion 0.3), in plan (rollback) order, to
  exactly the values `cutover rollback` converges to (both come from the rollback program, `program.steps`): one
  `aws:executeAwsApi` PutParameter step per SSM flag, and one `aws:executeScript` step per Lambda function,
  at the place of its first flag, setting all its flag variables in one read-merge-write update that keeps
  every other variable (`LAMBDA_SCRIPT`); every flag step continues past a failure, so every flag is
  attempted; then one step (`VERIFY_SCRIPT`) that reads every flag back and records rolled_back only if all
  are restored (else: the rollback is unfinished, the plan's topic is told, the execution fails);
- the EventBridge rule `cutover-<plan>-rollback`, matching "CloudWatch Alarm State Change" events of the
  plan's alarms into ALARM, and into INSUFFICIENT_DATA where the alarms check says `insufficient_data:
  fail` (the default: the guard fires when the gates would fail), whose one target starts that document
  (`$DEFAULT` version), passing the alarm's name through an input transformer.

They rely on two IAM roles, least privilege, that `arm` never writes: an admin creates them once from
`bootstrap_template` (`cutover guard bootstrap`), because whoever may write a role's policy may escalate
to admin. `...-automation` (assumed by SSM Automation: write and read back exactly the flag and state
parameters, lambda:Get/UpdateFunctionConfiguration on exactly the flag functions, KMS through SSM for
SecureStrings and through Lambda for the plan's `kms_key`s, Publish to the plan's topic) and `...-events`
(assumed by EventBridge: start that one document and pass that one role).

Arming is idempotent: it reads what exists, writes only what differs (a changed document becomes a new
default version), and reads back; it refuses (exit 3) while the roles are missing or not the plan's.
`status` compares what is armed with the current plan; `disarm` removes the document, rule and target.
Dry runs read only (the session refuses writes). No boto3 here: AWS is behind the `GuardStore` port
(`cutover.aws.GuardResources`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol


from cutover import flags as flagmod
from cutover import guard_scripts, iam, limits, program
from cutover.errors import Blocked, CutoverError, ExitCode, Incomplete, UsageError
from cutover.notify import notify
from cutover.guard_names import GuardArns, Names, fit_name, names
from cutover.outcome import Outcome
from cutover.runtime import Runtime
from cutover.model import ROLLED_BACK, AlarmsCheck, Flag, LambdaTarget, Plan, function_name
from cutover.redact import HIDDEN
from cutover.state import MAX_RECORD_BYTES, STABLE, StateRecord

PARAMETER = "AlarmName"  # the Automation parameter EventBridge fills with the alarm's name
MANUAL = "none (started by hand)"  # its default, when someone starts the automation from the console
REASON = "auto-rollback by guard: alarm {{" + PARAMETER + "}}"
EXECUTION_ID = "{{automation:EXECUTION_ID}}"  # an Automation system variable: the record's run id
COMMAND = "guard"
RECORD_STEP = "VerifyAndRecord"
TARGET_ID = "cutover-rollback"
POLICY_NAME = "cutover-guard"
TAG_PLAN, TAG_DIGEST = "cutover:plan", "cutover:plan-digest"
ALARM_PATH = "$.detail.alarmName"
INPUT_TEMPLATE = '{"' + PARAMETER + '":["<alarm>"]}'  # Automation parameters are lists of strings
_UNSAFE = re.compile(r'["\\<>{}\x00-\x1f\x7f]')  # cannot pass through the transformer and the record's JSON


# --- what the plan compiles to -------------------------------------------------------------------------
def watched_alarms(plan: Plan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, prefixes) of every alarm the plan's alarms checks look at."""
    inv = iam.inventory(plan)
    return inv.alarm_names, inv.alarm_prefixes


@dataclass(frozen=True)
class Watch:
    """Alarms the rule fires on, and on which states."""

    names: tuple[str, ...]
    prefixes: tuple[str, ...]
    states: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.names and not self.prefixes


FIRE_STRICT = ("ALARM", "INSUFFICIENT_DATA")  # insufficient_data: fail (the default): no data is a failure
FIRE_LENIENT = ("ALARM",)  # insufficient_data: ok


def watches(plan: Plan) -> tuple[Watch, Watch]:
    """(strict, lenient): the guard fires as the gates judge. An alarm (or prefix) that any check with
    `insufficient_data: fail` watches fires on INSUFFICIENT_DATA too; the others on ALARM only. Two
    checks with different policies on one alarm: the stricter wins (listing it in the strict branch
    is enough, since the branches are alternatives; it is left out of the lenient one to say so)."""
    alarms = [c for c in plan.checks.values() if isinstance(c, AlarmsCheck)]

    def select(fail: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        mine = [c for c in alarms if (c.insufficient_data == "fail") is fail]
        return (tuple(dict.fromkeys(n for c in mine for n in (*c.names, *c.expect))),
                tuple(dict.fromkeys(c.prefix for c in mine if c.prefix)))

    (sn, sp), (ln, lp) = select(True), select(False)
    return (Watch(sn, sp, FIRE_STRICT),
            Watch(tuple(n for n in ln if n not in sn), tuple(p for p in lp if p not in sp), FIRE_LENIENT))


def check_plan(plan: Plan) -> None:
    """What a guard cannot express: refused before any AWS call (exit 2)."""
    alarm_names, prefixes = watched_alarms(plan)
    if not alarm_names and not prefixes:
        raise UsageError(f"plan '{plan.name}' names no alarms: there is nothing to arm the guard on",
                         "add an alarms check (names: or prefix:) to the plan; the guard rolls back when one goes to ALARM")
    for a in (*alarm_names, *prefixes):
        if _UNSAFE.search(a):
            raise UsageError(f"alarm name {a!r} holds a character the guard cannot pass on (quotes, backslashes, <>, {{}})",
                             "rename the alarm, or leave it out of the plan's alarms checks")
    for flag, value in program.targets(plan):
        if "{{" in value or "}}" in value:
            raise UsageError(f"flag {flag.name}: its rollback value holds '{{{{' or '}}}}', which SSM Automation reads as a variable",
                             "change the rollback value, or roll this plan back with `cutover rollback` only")
    _check_sizes(plan)


def _check_sizes(plan: Plan) -> None:
    """The document and the automation role's policy must fit AWS's limits (the emulator takes any size)."""
    too_big = [(what, why) for what, why in (
        ("rollback document", limits.over(limits.AUTOMATION_DOCUMENT, limits.document_size(build_document(plan, limits.SIZING_ACCOUNT)))),
        ("automation role's policy", limits.over(limits.ROLE_INLINE_POLICIES,
                                                 limits.policy_size(automation_policy(plan, limits.SIZING_ACCOUNT)))),
    ) if why]
    if too_big:
        raise UsageError(f"plan '{plan.name}' has {len(plan.flags)} flags: too many for one guard: the "
                         + "; the ".join(f"{what} would be {why}" for what, why in too_big),
                         "split the flags across plans (each with its own guard), or roll this plan back with "
                         "`cutover rollback` and leave it unguarded")


def _step_name(index: int, what: str, prefix: str = "Flag") -> str:
    return f"{prefix}{index:02d}_{re.sub(r'[^A-Za-z0-9_]', '_', what)}"[:80]


# The scripts of the Lambda steps and of the last step: real modules (cutover/guard_scripts/), their
# source embedded as it is. The Lambda step's `merge` is also the CLI's read-merge-write (lambdaenv).
SCRIPT_RUNTIME, SCRIPT_HANDLER = guard_scripts.RUNTIME, guard_scripts.HANDLER
LAMBDA_SCRIPT = guard_scripts.source("merge_environment")


def _lambda_step(index: int, function: str, values: dict[str, str]) -> dict:
    return {
        "name": _step_name(index, function_name(function), "Env"),
        "action": "aws:executeScript",
        "onFailure": "Continue",  # as a PutParameter step: the other flags still roll back
        "maxAttempts": 3,
        "timeoutSeconds": 600,  # the most Automation allows a script step
        "inputs": {"Runtime": SCRIPT_RUNTIME, "Handler": SCRIPT_HANDLER, "Script": LAMBDA_SCRIPT,
                   "InputPayload": {"Function": function, "Variables": values}},
    }


def _flag_steps(plan: Plan) -> list[dict]:
    """The rollback program compiled: an executeAwsApi step per SSM write, an executeScript step per
    Lambda function; each named after the place of its (first) flag in plan order."""
    position = {f.key: i for i, f in enumerate(plan.flags, 1)}
    steps = []
    for step in program.steps(plan):
        i = position[step.flags[0].key]
        if isinstance(step, program.MergeEnvironment):
            steps.append(_lambda_step(i, step.function, step.variables))
            continue
        flag, value = step.flag, step.value
        steps.append({
            "name": _step_name(i, flag.name),
            "action": "aws:executeAwsApi",
            # A failed flag must not stop the others (kill switches come first, but every one counts);
            # the execution still ends Failed, and `cutover status` shows the flag that differs.
            "onFailure": "Continue",
            "maxAttempts": 3,
            "inputs": {"Service": "ssm", "Api": "PutParameter", "Name": flag.parameter, "Value": value,
                       "Type": "SecureString" if flag.secure else "String", "Overwrite": True},
        })
    return steps


def record_template(plan: Plan, automation_role_arn: str) -> dict:
    """The state record the last step writes when every flag reads back at its rollback value: rolled
    back, stable, the alarm as the reason (the step adds when). As a mapping, so the alarm's name goes
    in as a string and the step serialises it (never JSON text with a name spliced in)."""
    from cutover.plandiff import fingerprints

    rec = StateRecord(phase=ROLLED_BACK, status=STABLE, actor=automation_role_arn, run_id=EXECUTION_ID,
                      plan=plan.name, plan_digest=plan.digest, command=COMMAND, reason=REASON,
                      plan_items=fingerprints(plan))
    # Room for the alarm's name (<= 255), the execution id, the times and an unfinished rollback's list.
    if len(rec.to_json().encode()) + 1200 > MAX_RECORD_BYTES:
        rec.plan_items = None
    return json.loads(rec.to_json())


# The last step's script. An Automation document cannot carry "some step failed" across `onFailure:
# Continue` steps (each flag step continues so that every flag is attempted), so this step checks the
# outcome rather than the steps: it reads every flag back. That also catches a write that reported
# success but was overwritten since, and needs no access to the execution itself. All restored: the record
# says rolled_back (stable). Otherwise the record says the rollback is unfinished (status rolling_back,
# heading to rolled_back, from the phase recorded before: `cutover status` says so and `cutover rollback`
# finishes it), the plan's topic is told which flags are still live (names and where they live, never a
# value), and the step fails, so the execution ends Failed. A stale read errs on the safe side: the record
# says unfinished and `cutover rollback` then finds nothing to do. No double braces (Automation variables).
VERIFY_SCRIPT = guard_scripts.source("verify_and_record")


def _label_of(flag: Flag) -> str:
    """A flag as a message may name it: its name and where it lives, never a value."""
    return f"{flag.name} ({flag.where})"


def _verify_step(plan: Plan, role: str) -> dict:
    flags = []
    for f, value in program.targets(plan):
        where = ({"Parameter": f.parameter, "Type": "SecureString" if f.secure else "String"} if f.kind == "ssm"
                 else {"Function": f.target.function, "Variable": f.target.variable})
        flags.append({"Label": _label_of(f), **where, "Value": value})
    return {
        "name": RECORD_STEP,
        "action": "aws:executeScript",
        "maxAttempts": 1,  # it tells the topic: a retry would tell twice (its AWS calls retry on their own)
        "timeoutSeconds": 600,
        "inputs": {"Runtime": SCRIPT_RUNTIME, "Handler": SCRIPT_HANDLER, "Script": VERIFY_SCRIPT,
                   "InputPayload": {"StateParameter": plan.state_parameter, "Record": record_template(plan, role),
                                    "Flags": flags, "Topic": plan.notify_topic or "", "Alarm": "{{" + PARAMETER + "}}"}},
    }


def description(plan: Plan) -> str:
    return (f"cutover guard for plan {plan.name} (plan sha256 {plan.digest}): when a plan alarm goes to ALARM (or INSUFFICIENT_DATA, as its check says), "
            f"every flag to its rollback value in plan order, then {plan.state_parameter} marked rolled_back. "
            "Generated by `cutover guard arm`: re-arm rather than edit; `cutover guard disarm` removes it.")


def build_document(plan: Plan, account: str) -> dict:
    """The SSM Automation document (schemaVersion 0.3) that performs the plan's rollback."""
    n, arn = names(plan), GuardArns(plan.region, account)
    role = arn.role(n.automation_role)
    steps = [*_flag_steps(plan), _verify_step(plan, role)]
    return {
        "schemaVersion": "0.3",
        "description": description(plan),
        "assumeRole": role,
        "parameters": {PARAMETER: {"type": "String", "default": MANUAL,
                                   "description": "The CloudWatch alarm whose state change fired the guard (set by the EventBridge rule)"}},
        "mainSteps": steps,
    }


def _branch(w: Watch) -> dict:
    return {"alarmName": [*w.names, *({"prefix": p} for p in w.prefixes)], "state": {"value": list(w.states)}}


def build_event_pattern(plan: Plan) -> dict:
    """State changes of the plan's alarms into ALARM, and into INSUFFICIENT_DATA where a check says
    `insufficient_data: fail`. EventBridge cannot pair names with states in one list, so a plan with
    both policies gets one `$or` branch per policy."""
    branches = [_branch(w) for w in watches(plan) if not w.empty]
    detail = branches[0] if len(branches) == 1 else {"$or": branches}
    return {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"], "detail": detail}


def build_target(plan: Plan, account: str) -> dict:
    n, arn = names(plan), GuardArns(plan.region, account)
    return {
        "Id": TARGET_ID,
        "Arn": arn.automation_definition(n.document),
        "RoleArn": arn.role(n.events_role),
        "InputTransformer": {"InputPathsMap": {"alarm": ALARM_PATH}, "InputTemplate": INPUT_TEMPLATE},
    }


def _trust(service: str, account: str, source_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        # No confused deputy: only this account's executions (or this rule) may assume it.
        "Condition": {"StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": source_arn}},
    }]}


def automation_trust(plan: Plan, account: str) -> dict:
    return _trust("ssm.amazonaws.com", account, GuardArns(plan.region, account).automation_executions())


def events_trust(plan: Plan, account: str) -> dict:
    return _trust("events.amazonaws.com", account, GuardArns(plan.region, account).rule(names(plan).rule))


def automation_policy(plan: Plan, account: str) -> dict:
    """What the automation does and nothing else: PutParameter on the SSM flags and the state record, and
    read-merge-write of the Lambda functions holding flags; its last step reads them all back (and the
    record), and tells the plan's topic."""
    arn = GuardArns(plan.region, account)
    params = list(dict.fromkeys([*(arn.parameter(f.parameter) for f in plan.ssm_flags), arn.parameter(plan.state_parameter)]))
    stmts = [iam._statement("RollBackFlagsAndRecordState", ["ssm:PutParameter"], params),
             iam._statement("ReadBackFlagsAndState", ["ssm:GetParameters"], params)]
    if plan.functions:
        stmts.append(iam._statement("RollBackLambdaFlags", [iam.LAMBDA_READ, iam.LAMBDA_WRITE],
                                    [arn.function(fn) for fn in plan.functions]))
    if any(f.secure for f in plan.flags):
        # Writing a SecureString under a customer managed key needs Encrypt; reading it back, Decrypt.
        stmts.append(iam._statement("SecureStringFlagsViaSsm", ["kms:Encrypt", "kms:Decrypt"], "*",
                                    {"StringEquals": {"kms:ViaService": arn.via("ssm")}}))
    keys = iam.inventory(plan).lambda_keys
    stmts += iam.lambda_key_statements(keys, arn, ["kms:Decrypt", "kms:Encrypt"])  # read-merge-write of an encrypted env
    if plan.notify_topic:
        stmts.append(iam._statement("TellThePlanTopic", ["sns:Publish"], [plan.notify_topic]))
    return {"Version": "2012-10-17", "Statement": stmts}


def events_policy(plan: Plan, account: str) -> dict:
    n, arn = names(plan), GuardArns(plan.region, account)
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "StartRollbackAutomation", "Effect": "Allow", "Action": ["ssm:StartAutomationExecution"],
         "Resource": [arn.automation_definition(n.document, "*")]},
        {"Sid": "PassAutomationRole", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [arn.role(n.automation_role)],
         "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}},
    ]}


@dataclass(frozen=True)
class RoleSpec:
    kind: str
    name: str
    trust: dict
    policy: dict
    description: str


@dataclass(frozen=True)
class Desired:
    """Everything `arm` makes, for one plan in one account."""

    names: Names
    document: dict
    pattern: dict
    target: dict
    roles: tuple[RoleSpec, ...]
    rule_description: str
    tags: dict[str, str]


def role_specs(plan: Plan, account: str) -> tuple[RoleSpec, ...]:
    n = names(plan)
    return (
        RoleSpec("automation role", n.automation_role, automation_trust(plan, account), automation_policy(plan, account),
                 f"cutover guard {plan.name}: the rollback automation's role (writes the plan's flags, nothing else)"),
        RoleSpec("events role", n.events_role, events_trust(plan, account), events_policy(plan, account),
                 f"cutover guard {plan.name}: lets EventBridge start the rollback automation {n.document}"),
    )


def desired(plan: Plan, account: str) -> Desired:
    n = names(plan)
    return Desired(
        names=n,
        document=build_document(plan, account),
        pattern=build_event_pattern(plan),
        target=build_target(plan, account),
        roles=role_specs(plan, account),
        rule_description=f"cutover guard {plan.name} (sha256 {plan.digest[:12]}): a plan alarm in ALARM (or INSUFFICIENT_DATA, per its check) starts {n.document}",
        tags={TAG_PLAN: plan.name, TAG_DIGEST: plan.digest},
    )


# --- the one-time bootstrap: an admin creates the two roles ----------------------------------------------
# Whoever may write a role's policies or trust may make it an admin and assume it. So the everyday operator
# never writes IAM: the roles (exactly the least privilege above) are created once by an admin from this
# template, and again after a plan change that changes them (`guard status` and `guard arm` say when).
ACCOUNT_VAR = "${AWS::AccountId}"  # filled in by CloudFormation (Fn::Sub): the template needs no account


def stack_name(plan: Plan) -> str:
    return fit_name(plan.name, "-guard-roles", 128)


def bootstrap_hint(plan: Plan) -> str:
    return (f"an admin applies the roles once: cutover guard bootstrap > guard-roles.json && aws cloudformation deploy "
            f"--template-file guard-roles.json --stack-name {stack_name(plan)} --capabilities CAPABILITY_NAMED_IAM "
            f"--region {plan.region}; then run `cutover guard arm` again")


def _sub_account(node):
    """Every string naming the account becomes {"Fn::Sub": ...}, so CloudFormation fills it in."""
    if isinstance(node, dict):
        return {k: _sub_account(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_sub_account(v) for v in node]
    return {"Fn::Sub": node} if isinstance(node, str) and ACCOUNT_VAR in node else node


def bootstrap_template(plan: Plan) -> dict:
    """A CloudFormation template (JSON) creating the guard's two roles, each with its one inline policy,
    exactly as `guard arm` expects them. Printed by `cutover guard bootstrap`; applied by an admin."""
    resources, outputs = {}, {}
    for logical, spec in zip(("AutomationRole", "EventsRole"), role_specs(plan, ACCOUNT_VAR)):
        resources[logical] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": spec.name, "Description": spec.description, "AssumeRolePolicyDocument": spec.trust,
            "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": spec.policy}],
            "Tags": [{"Key": TAG_PLAN, "Value": plan.name}]}}
        outputs[logical + "Arn"] = {"Value": {"Fn::GetAtt": [logical, "Arn"]}}
    return _sub_account({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (f"cutover guard {plan.name}: the two IAM roles of its rollback armed inside AWS, least privilege "
                        f"(from the plan, sha256 {plan.digest[:12]}). Apply once as an admin; re-apply when "
                        "`cutover guard status` says the roles differ."),
        "Resources": resources,
        "Outputs": outputs,
    })


def operator_policy(plan: Plan, account: str = iam.PLACEHOLDER_ACCOUNT, read_only: bool = False) -> dict:
    """What whoever runs `cutover guard` needs: read the guard's resources (`status`, dry runs) and, unless
    `read_only`, create, update and remove the document, the rule and its target (`arm`, `disarm`). No IAM
    write: the roles come from the admin's bootstrap (`bootstrap_template`); passing the events role to
    EventBridge (PutTargets) is the one IAM grant, for that role and that service only."""
    n, arn = names(plan), GuardArns(plan.region, iam.check_account(account))
    roles = [arn.role(n.automation_role), arn.role(n.events_role)]
    doc, rule = arn._arn("ssm", f"document/{n.document}"), arn.rule(n.rule)
    stmts = [
        iam._statement("ReadGuardRoles", ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy"], roles),
        iam._statement("ReadGuardDocument", ["ssm:DescribeDocument", "ssm:GetDocument"], [doc]),
        iam._statement("ReadGuardRule", ["events:DescribeRule", "events:ListTargetsByRule"], [rule]),
    ]
    if not read_only:
        stmts += [
            iam._statement("PassEventsRoleToEventBridge", ["iam:PassRole"], [arn.role(n.events_role)],
                           {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}),
            iam._statement("ManageGuardDocument", ["ssm:CreateDocument", "ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion",
                                                   "ssm:AddTagsToResource", "ssm:DeleteDocument"], [doc]),
            iam._statement("ManageGuardRule", ["events:PutRule", "events:TagResource", "events:PutTargets", "events:RemoveTargets",
                                               "events:DeleteRule"], [rule]),
        ]
    stmts.append(iam._statement("IdentifyCaller", ["sts:GetCallerIdentity"], "*"))
    return {"Version": "2012-10-17", "Statement": stmts}


# --- reading a document back ---------------------------------------------------------------------------
def document_writes(doc: dict) -> list[dict]:
    """What a document writes, in order, one row per value: step, kind, key (as `Flag.key`), value, type,
    and parameter (SSM) or function and variable (Lambda; one row per variable of its step)."""
    out = []
    for s in doc.get("mainSteps", []):
        inputs = s.get("inputs", {})
        if s.get("action") == "aws:executeAwsApi" and inputs.get("Service") == "ssm" and inputs.get("Api") == "PutParameter":
            name = inputs.get("Name", "")
            out.append({"step": s.get("name", ""), "kind": "ssm", "key": name, "parameter": name, "function": None,
                        "variable": None, "value": inputs.get("Value", ""), "type": inputs.get("Type", "String")})
        elif s.get("action") == "aws:executeScript" and "StateParameter" in (inputs.get("InputPayload") or {}):
            payload = inputs["InputPayload"]
            name, record = payload.get("StateParameter", ""), payload.get("Record")
            out.append({"step": s.get("name", ""), "kind": "ssm", "key": name, "parameter": name, "function": None,
                        "variable": None, "type": "String",
                        "value": json.dumps(record, separators=(",", ":"), sort_keys=True) if isinstance(record, dict) else ""})
        elif s.get("action") == "aws:executeScript":
            payload = inputs.get("InputPayload") or {}
            function = payload.get("Function", "")
            for variable, value in (payload.get("Variables") or {}).items():
                out.append({"step": s.get("name", ""), "kind": "lambda", "key": LambdaTarget(function, variable).key,
                            "parameter": None, "function": function, "variable": variable, "value": value, "type": "String"})
    return out


def _label(w: dict) -> str:
    """Where a write goes, for people: the parameter, or 'function env VARIABLE'."""
    return w["parameter"] if w["kind"] == "ssm" else LambdaTarget(w["function"], w["variable"]).describe()


def _script_of(step: dict) -> tuple:
    inputs = step.get("inputs", {})
    return inputs.get("Runtime"), inputs.get("Handler"), inputs.get("Script")


def armed_digest(doc: dict, tags: dict[str, str] | None = None) -> str | None:
    m = re.search(r"sha256 ([0-9a-f]{64})", doc.get("description", ""))
    return m.group(1) if m else (tags or {}).get(TAG_DIGEST)


def describe_writes(plan: Plan, doc: dict) -> list[dict]:
    """A document's writes as they may be shown: values as `flags.shown` displays them, values of targets
    the plan does not know hidden; the state record summarised."""
    by_key = {f.key: f for f in plan.flags}
    rows = []
    for w in document_writes(doc):
        flag = by_key.get(w["key"])
        row = {k: w[k] for k in ("step", "kind", "parameter", "function", "variable", "type")}
        row["target"] = _label(w)
        if w["parameter"] == plan.state_parameter:
            row["flag"] = None
            try:
                rec = StateRecord.from_json(w["value"])
                row["value"] = (f"state {rec.phase} ({rec.status}), reason \"{rec.reason.replace('{{' + PARAMETER + '}}', '<alarm name>')}\", "
                                "once every flag reads back restored; else rolling_back, naming what is still live"
                                + (", and the plan's topic is told" if plan.notify_topic else ""))
            except (ValueError, TypeError):
                row["value"] = "state record (unreadable)"
        elif flag is not None:
            row["flag"], row["value"] = flag.name, flagmod.shown(flag, w["value"])
        else:
            row["flag"], row["value"] = None, HIDDEN  # not in this plan: do not guess
        rows.append(row)
    return rows


# --- the port --------------------------------------------------------------------------------------------
class GuardStore(Protocol):
    """What the guard needs from AWS (`cutover.aws.GuardResources`). Reads return None when absent. The
    roles are only read: an admin creates them (`bootstrap_template`)."""

    def get_role(self, name: str) -> dict | None: ...
    def get_document(self, name: str, version: str | None = None) -> dict | None: ...
    def create_document(self, name: str, content: str, tags: dict[str, str]) -> str: ...
    def update_document(self, name: str, content: str, tags: dict[str, str]) -> str: ...
    def delete_document(self, name: str) -> bool: ...
    def get_rule(self, name: str) -> dict | None: ...
    def list_targets(self, rule: str) -> list[dict]: ...
    def put_rule(self, name: str, pattern: dict, description: str, tags: dict[str, str]) -> str: ...
    def put_targets(self, rule: str, targets: list[dict]) -> None: ...
    def remove_targets(self, rule: str, ids: list[str]) -> None: ...
    def delete_rule(self, name: str) -> bool: ...


# --- what exists, compared with what the plan wants --------------------------------------------------------
@dataclass
class Observed:
    roles: dict[str, dict | None]
    document: dict | None
    rule: dict | None
    targets: list[dict]


def observe(store: GuardStore, n: Names) -> Observed:
    rule = store.get_rule(n.rule)
    return Observed(
        roles={name: store.get_role(name) for name in (n.automation_role, n.events_role)},
        document=store.get_document(n.document),
        rule=rule,
        targets=store.list_targets(n.rule) if rule is not None else [],
    )


@dataclass
class Resource:
    kind: str  # automation role | events role | document | rule | target
    name: str
    present: bool
    differences: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.present and not self.differences

    @property
    def verb(self) -> str:
        return "create" if not self.present else ("update" if self.differences else "unchanged")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "present": self.present, "current": self.current,
                "differences": list(self.differences)}


def _content(doc: dict | None) -> dict | None:
    try:
        return json.loads(doc["content"]) if doc else None
    except (ValueError, TypeError, KeyError):
        return {}


def _doc_differences(plan: Plan, armed: dict, want: dict, tags: dict[str, str]) -> list[str]:
    diffs = []
    digest = armed_digest(armed, tags)
    if digest != plan.digest:
        diffs.append(f"armed for plan sha256 {(digest or 'unknown')[:12]}, the plan file is now {plan.digest[:12]}")
    by_key = {f.key: f for f in plan.flags}

    def show(w: dict) -> str:
        flag = by_key.get(w["key"])
        value = flagmod.shown(flag, w["value"]) if flag is not None else HIDDEN
        return f"{value} ({w['type']})" if w["kind"] == "ssm" else value

    have = {w["key"]: w for w in document_writes(armed) if w["key"] != plan.state_parameter}
    need = {w["key"]: w for w in document_writes(want) if w["key"] != plan.state_parameter}
    for k, w in need.items():
        if k not in have:
            diffs.append(f"{_label(w)} is not rolled back by the armed guard")
        elif (have[k]["value"], have[k]["type"]) != (w["value"], w["type"]):
            diffs.append(f"{_label(w)}: armed {show(have[k])}, plan {show(w)}")
    diffs += [f"{_label(w)} is rolled back by the armed guard but is not in the plan" for k, w in have.items() if k not in need]
    for step in armed.get("mainSteps", []):
        if step.get("action") != "aws:executeScript":
            continue
        payload = step.get("inputs", {}).get("InputPayload") or {}
        verifies = "StateParameter" in payload
        if _script_of(step) != (SCRIPT_RUNTIME, SCRIPT_HANDLER, VERIFY_SCRIPT if verifies else LAMBDA_SCRIPT):
            what = "that checks the rollback and records it" if verifies else \
                f"for Lambda function {function_name(payload.get('Function', '?'))}"
            diffs.append(f"the armed step {what} runs another script than this cutover's (armed by another version, or edited)")
    if not any("StateParameter" in (s.get("inputs", {}).get("InputPayload") or {}) for s in armed.get("mainSteps", [])):
        diffs.append("the armed document does not check its rollback: it would record rolled_back even if a flag failed")
    if not diffs and list(have) != list(need):
        diffs.append("the rollback order differs from the plan's")
    if not diffs and armed != want:
        diffs.append("the document differs from the plan's (state record, role or parameters)")
    return diffs


def _alarm_label(alarm) -> str:
    return alarm if isinstance(alarm, str) else f"{alarm.get('prefix', alarm)}*"


def fired_on(pattern: dict | None) -> dict[str, tuple[str, ...]]:
    """Alarm (a name, or 'prefix*') -> the states it fires on, from a rule's pattern (either shape)."""
    detail = (pattern or {}).get("detail") or {}
    out: dict[str, tuple[str, ...]] = {}
    for branch in detail.get("$or") or [detail]:
        states = tuple((branch.get("state") or {}).get("value") or ())
        for alarm in branch.get("alarmName") or []:
            key = _alarm_label(alarm)
            out[key] = tuple(dict.fromkeys((*out.get(key, ()), *states)))
    return out


def _alarm_differences(armed: dict | None, want: dict) -> list[str]:
    if armed == want:
        return []
    have, need = fired_on(armed), fired_on(want)
    diffs = []
    if [a for a in need if a not in have]:
        diffs.append("alarms not watched by the armed rule: " + ", ".join(a for a in need if a not in have))
    if [a for a in have if a not in need]:
        diffs.append("alarms watched by the armed rule but no longer in the plan: " + ", ".join(a for a in have if a not in need))
    for a in [a for a in need if a in have and have[a] != need[a]]:
        if "INSUFFICIENT_DATA" in need[a] and "INSUFFICIENT_DATA" not in have[a]:
            diffs.append(f"does not fire on INSUFFICIENT_DATA of {a}, the plan says it should (insufficient_data: fail)")
        elif "INSUFFICIENT_DATA" in have[a] and "INSUFFICIENT_DATA" not in need[a]:
            diffs.append(f"fires on INSUFFICIENT_DATA of {a}, the plan says it should not (insufficient_data: ok)")
        else:
            diffs.append(f"fires on {', '.join(have[a]) or 'nothing'} of {a}, the plan on {', '.join(need[a])}")
    return diffs or ["the rule's event pattern differs from the plan's"]


def _target_view(t: dict) -> dict:
    return {k: t.get(k) for k in ("Id", "Arn", "RoleArn", "InputTransformer")}


def compare(plan: Plan, want: Desired, seen: Observed) -> list[Resource]:
    """Each resource, in the order `arm` makes them: present? and how it differs from the plan."""
    out = []
    for spec in want.roles:
        role = seen.roles.get(spec.name)
        r = Resource(spec.kind, spec.name, role is not None)
        if role is not None:
            if role["trust"] != spec.trust:
                r.differences.append("its trust policy differs")
            if role["policies"].get(POLICY_NAME) != spec.policy:
                r.differences.append("its permissions differ from the plan's least privilege"
                                     if POLICY_NAME in role["policies"] else f"inline policy {POLICY_NAME} is missing")
            extra = [p for p in role["policies"] if p != POLICY_NAME]
            if extra:
                r.differences.append(f"extra inline policies: {', '.join(extra)}")
        out.append(r)

    d = Resource("document", want.names.document, seen.document is not None)
    if seen.document is not None:
        if seen.document.get("type") not in ("Automation", None, ""):
            d.differences.append(f"it is a {seen.document['type']} document, not Automation")
        else:
            d.differences += _doc_differences(plan, _content(seen.document) or {}, want.document, seen.document.get("tags", {}))
    out.append(d)

    r = Resource("rule", want.names.rule, seen.rule is not None)
    if seen.rule is not None:
        if seen.rule.get("state") != "ENABLED":
            r.differences.append(f"the rule is {seen.rule.get('state') or 'not enabled'}")
        r.differences += _alarm_differences(seen.rule.get("pattern"), want.pattern)
    out.append(r)

    ours = next((t for t in seen.targets if t.get("Id") == TARGET_ID), None)
    t = Resource("target", f"{want.names.rule}/{TARGET_ID}", ours is not None)
    if ours is not None and _target_view(ours) != _target_view(want.target):
        t.differences.append("the target's document, role or input differs")
    out.append(t)
    return out


# --- use cases ---------------------------------------------------------------------------------------------
def _account(rt: Runtime) -> str:
    return rt.identity().account


def trigger_line(plan: Plan) -> str:
    """When the guard fires, per insufficient_data policy."""
    parts = []
    for w in watches(plan):
        if not w.empty:
            shown = ", ".join([*w.names, *(f"{p}* (prefix)" for p in w.prefixes)])
            when = ("ALARM or INSUFFICIENT_DATA (insufficient_data: fail)" if "INSUFFICIENT_DATA" in w.states
                    else "ALARM only (insufficient_data: ok)")
            parts.append(f"on {when}: {shown}")
    return "triggers on a CloudWatch alarm state change: " + ("; ".join(parts) or "none")


def _step_lines(rows: list[dict]) -> list[str]:
    """Numbered by step: a Lambda step lists the variables it sets in its one update."""
    out, last, n = [], None, 0
    for w in rows:
        what = f" ({w['flag']})" if w.get("flag") else ""
        if w["kind"] == "lambda":
            if w["step"] != last:
                n += 1
                out.append(f"    {n}. Lambda {function_name(w['function'])}, one update keeping its other variables:")
            out.append(f"         {w['variable']}{what} = {w['value']}")
        else:
            n += 1
            secure = " [SecureString]" if w["type"] == "SecureString" else ""
            out.append(f"    {n}. {w['parameter']}{what} = {w['value']}{secure}")
        last = w["step"]
    return out


def _steps_for_evidence(resources: list[Resource], done: dict[str, str], dry_run: bool = False) -> list[dict]:
    rows = []
    for r in resources:
        if r.verb == "unchanged":
            outcome = "unchanged"
        elif dry_run:
            outcome = f"dry run: would {r.verb}"
        else:
            outcome = done.get(r.name + r.kind) or "not reached"
        rows.append({"step": f"{r.verb} {r.kind} {r.name}", "expected": "matches the plan", "outcome": outcome,
                     "ok": outcome != "not reached"})
    return rows


def arm(rt: Runtime, store: GuardStore) -> Outcome:
    """Create or update the guard for `rt.plan`; idempotent. A dry run reads only."""
    plan = rt.plan
    check_plan(plan)
    report = rt.new_report("guard-arm")
    want = desired(plan, _account(rt))
    resources = compare(plan, want, observe(store, want.names))
    todo = [r for r in resources if r.verb != "unchanged"]
    rows = describe_writes(plan, want.document)
    plan_lines = [f"{r.verb} {r.kind} {r.name}" + (f": {'; '.join(r.differences)}" if r.differences else "") for r in resources]
    info = [trigger_line(plan), "it will, in order:", *_step_lines(rows)]
    data = {"action": "arm", "plan": plan.name, "plan_digest": plan.digest, "dry_run": rt.dry_run,
            "resources": [{**r.to_dict(), "action": r.verb} for r in resources], "steps": rows,
            "names": want.names.__dict__, "alarms": dict(zip(("names", "prefixes"), map(list, watched_alarms(plan))))}
    report.steps = _steps_for_evidence(resources, {}, rt.dry_run)
    _require_bootstrapped(plan, resources)
    if not todo:
        return rt.finish(report, Outcome(ExitCode.OK, f"nothing to do: the guard for {plan.name} is armed and matches the plan",
                                           plan_lines + info, data))
    summary = ", ".join(f"{r.verb} {r.kind} {r.name}" for r in todo)
    if rt.dry_run:
        return rt.finish(report, Outcome(
            ExitCode.OK, f"dry run: arming the guard for {plan.name} would {_count(todo)}; nothing was written",
            plan_lines + info, data, hint="run `cutover guard arm` to apply"))
    if not rt.confirm(f"arm the guard for {plan.name}: {summary}"):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")

    done: dict[str, str] = {}
    try:
        _apply(store, want, resources, done)
        after = compare(plan, want, observe(store, want.names))
        off = [r for r in after if not r.current]
        if off:
            raise Incomplete("the guard was written but reads back different: " +
                             "; ".join(f"{r.kind} {r.name}: {', '.join(r.differences) or 'missing'}" for r in off),
                             "re-run `cutover guard arm`; `cutover guard status` shows what differs")
    except CutoverError as err:
        report.steps = _steps_for_evidence(resources, done)
        rt.finish(report, Outcome(err.exit_code, err.message, data=data))
        raise
    report.steps = _steps_for_evidence(resources, done)
    plan_lines = [f"{done.get(r.name + r.kind, 'unchanged')} {r.kind} {r.name}"
                  + (f" (its default version is now {done['document version']})" if r.kind == "document" and "document version" in done else "")
                  for r in resources]
    notify(rt, "guard ARMED", [f"{_count(todo, past=True)}", trigger_line(plan),
                               f"rolls back {len(plan.flags)} flag(s) to their known-safe values, then reads them back: rolled_back only if all are restored"])
    return rt.finish(report, Outcome(
        ExitCode.OK, f"guard armed for {plan.name}: {_count(todo, past=True)}", plan_lines + info, data,
        hint="`cutover guard status` shows it; disarm for planned work with `cutover guard disarm`"))


def _require_bootstrapped(plan: Plan, resources: list[Resource]) -> None:
    """arm writes only the document, the rule and its target: the roles must already be the plan's."""
    off = [r for r in resources if r.kind.endswith(" role") and not r.current]
    if off:
        raise Blocked("the guard's roles are not bootstrapped for this plan: " + "; ".join(
            f"{r.kind} {r.name} {'is missing' if not r.present else 'differs (' + ', '.join(r.differences) + ')'}" for r in off)
            + "; nothing was written", bootstrap_hint(plan))


def _count(todo: list[Resource], past: bool = False) -> str:
    created = sum(1 for r in todo if r.verb == "create")
    updated = len(todo) - created
    parts = []
    if created:
        parts.append(f"{'created' if past else 'create'} {created} resource(s)")
    if updated:
        parts.append(f"{'updated' if past else 'update'} {updated} resource(s)")
    return " and ".join(parts) or "change nothing"


def _apply(store: GuardStore, want: Desired, resources: list[Resource], done: dict[str, str]) -> None:
    """The document (it names the automation role), then the rule, then its target (it names the events
    role). `done` gets each resource's outcome (and the document's new default version) as it goes."""
    by_kind = {r.kind: r for r in resources}
    content = limits.document_content(want.document)
    d = by_kind["document"]
    if d.verb == "create":
        store.create_document(d.name, content, want.tags)
        done[d.name + d.kind] = "created"
    elif d.verb == "update":
        version = store.update_document(d.name, content, want.tags)
        done[d.name + d.kind] = "updated"
        done["document version"] = version
    r = by_kind["rule"]
    if r.verb != "unchanged":
        store.put_rule(r.name, want.pattern, want.rule_description, want.tags)
        done[r.name + r.kind] = "created" if not r.present else "updated"
    t = by_kind["target"]
    if t.verb != "unchanged":
        store.put_targets(want.names.rule, [want.target])
        done[t.name + t.kind] = "created" if not t.present else "updated"


def status(rt: Runtime, store: GuardStore, check: bool = False) -> Outcome:
    """Armed or not; whether it matches the plan (digest, flags, values, alarms); what it would do."""
    plan = rt.plan
    want = desired(plan, _account(rt))
    seen = observe(store, want.names)
    resources = compare(plan, want, seen)
    armed_parts = [r for r in resources if not r.kind.endswith(" role")]  # the roles are the bootstrap's
    present = [r for r in armed_parts if r.present]
    current = all(r.current for r in resources)
    if not present:
        state, headline = "disarmed", f"guard NOT ARMED for {plan.name}"
    elif len(present) < len(armed_parts) or not all(r.present for r in resources):
        state = "partial"
        headline = f"guard PARTLY ARMED for {plan.name}: missing {', '.join(r.kind for r in resources if not r.present)}"
    elif current:
        state, headline = "armed", f"guard ARMED for {plan.name} and it matches the plan"
    else:
        n = sum(len(r.differences) for r in resources)
        state, headline = "stale", f"guard ARMED for {plan.name} but STALE: {n} difference(s) from the plan"
    lines = []
    for r in resources:
        mark = "current" if r.current else ("MISSING" if not r.present else "DIFFERS")
        extra = ""
        if r.kind == "document" and seen.document is not None:
            extra = f" (default version {seen.document.get('default_version')} of {seen.document.get('latest_version')})"
        if r.kind == "rule" and seen.rule is not None:
            extra = f" ({seen.rule.get('state')})"
        lines.append(f"{r.kind} {r.name}{extra}: {mark}")
        lines += [f"    {d}" for d in r.differences]
    others = [t.get("Id") for t in seen.targets if t.get("Id") != TARGET_ID]
    if others:
        lines.append(f"note: the rule has other targets, not cutover's: {', '.join(others)}")
    lines.append(trigger_line(plan) + ("" if seen.rule is not None else " (once armed)"))
    armed_doc = _content(seen.document)
    if armed_doc:
        rows = describe_writes(plan, armed_doc)
        lines.append("when it fires it would, in order:")
    else:
        rows = describe_writes(plan, want.document)
        lines.append("armed from this plan it would, in order:")
    lines += _step_lines(rows)
    data = {"action": "status", "plan": plan.name, "plan_digest": plan.digest, "state": state,
            "armed": state in ("armed", "stale"), "current": current,
            "armed_digest": armed_digest(armed_doc, (seen.document or {}).get("tags")) if armed_doc else None,
            "resources": [r.to_dict() for r in resources], "differences": [d for r in resources for d in r.differences],
            "steps": rows, "other_targets": others, "names": want.names.__dict__,
            "alarms": dict(zip(("names", "prefixes"), map(list, watched_alarms(plan))))}
    hint = {"disarmed": "arm it with `cutover guard arm` (try --dry-run first)",
            "partial": "finish it with `cutover guard arm`, or remove it with `cutover guard disarm`",
            "stale": "re-arm with `cutover guard arm` so it rolls back what the plan says now"}.get(state, "")
    if not all(r.current for r in resources if r.kind.endswith(" role")):
        hint = "the roles are not this plan's: " + bootstrap_hint(plan)
    code = ExitCode.DRIFT if check and state != "armed" else ExitCode.OK
    return Outcome(code, headline, lines, data, hint=hint)


def disarm(rt: Runtime, store: GuardStore) -> Outcome:
    """Remove the target(s), the rule and the document. The roles stay: they are the admin's bootstrap
    (removing them is deleting its stack). A dry run reads only."""
    plan = rt.plan
    n = names(plan)
    report = rt.new_report("guard-disarm")
    seen = observe(store, n)
    found = []
    if seen.targets:
        found.append(("targets", f"{n.rule}: {', '.join(t.get('Id', '?') for t in seen.targets)}"))
    if seen.rule is not None:
        found.append(("rule", n.rule))
    if seen.document is not None:
        found.append(("document", n.document))
    lines = [f"remove {kind} {name}" for kind, name in found]
    kept = [name for name in (n.automation_role, n.events_role) if seen.roles.get(name) is not None]
    kept_line = ([f"kept: roles {', '.join(kept)} (the bootstrap's; to remove them an admin deletes the stack: "
                  f"aws cloudformation delete-stack --stack-name {stack_name(plan)})"] if kept else [])
    data = {"action": "disarm", "plan": plan.name, "dry_run": rt.dry_run,
            "resources": [{"kind": k, "name": v} for k, v in found], "names": n.__dict__}
    report.steps = [{"step": line, "expected": "removed", "outcome": "dry run: would remove" if rt.dry_run else "not reached",
                     "ok": rt.dry_run} for line in lines]
    if not found:
        return rt.finish(report, Outcome(ExitCode.OK, f"nothing to do: no guard is armed for {plan.name}", kept_line, data))
    if rt.dry_run:
        return rt.finish(report, Outcome(ExitCode.OK, f"dry run: disarming the guard for {plan.name} would remove "
                                                        f"{len(found)} resource(s); nothing was written", lines + kept_line, data,
                                           hint="run `cutover guard disarm` to apply"))
    if not rt.confirm(f"disarm the guard for {plan.name}: no automatic rollback until it is armed again; " + "; ".join(lines)):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
    try:
        for i, (kind, name) in enumerate(found):
            if kind == "targets":
                store.remove_targets(n.rule, [t["Id"] for t in seen.targets])
            elif kind == "rule":
                store.delete_rule(name)
            else:
                store.delete_document(name)
            report.steps[i].update(outcome="removed", ok=True)
        left = observe(store, n)
        if left.rule is not None or left.document is not None:
            raise Incomplete("the guard was removed but some of it still reads back", "re-run `cutover guard disarm`")
    except CutoverError as err:
        rt.finish(report, Outcome(err.exit_code, err.message, data=data))
        raise
    notify(rt, "guard DISARMED", [f"removed {len(found)} resource(s)", "no automatic rollback until `cutover guard arm`"])
    return rt.finish(report, Outcome(ExitCode.OK, f"guard disarmed for {plan.name}: removed {len(found)} resource(s)", lines + kept_line, data,
                                       hint="no automatic rollback now; re-arm after planned work: cutover guard arm"))
