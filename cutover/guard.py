"""The guard: the plan's rollback armed inside AWS, so an alarm rolls the flags back with no laptop awake.

    CloudWatch alarm -> ALARM  ==>  EventBridge rule  ==>  SSM Automation document  ==>  PutParameter x N
                                                                                     + Lambda env update x F

`cutover guard arm` compiles the plan into three kinds of AWS resources, all named from the plan:

- the SSM Automation document `cutover-<plan>-rollback` (schemaVersion 0.3), in plan (rollback) order, to
  exactly the values `cutover rollback` converges to (both come from `flags.rollback_targets`): one
  `aws:executeAwsApi` PutParameter step per SSM flag, and one `aws:executeScript` step per Lambda function,
  at the place of its first flag, setting all its flag variables in one read-merge-write update that keeps
  every other variable (`LAMBDA_SCRIPT`); then one step writing the state record as rolled back, with the
  alarm's name (an Automation parameter) as the reason;
- the EventBridge rule `cutover-<plan>-rollback`, matching "CloudWatch Alarm State Change" events into
  ALARM for the plan's alarms, whose one target starts that document (`$DEFAULT` version), passing the
  alarm's name through an input transformer;
- two IAM roles, least privilege: `...-automation` (assumed by SSM Automation: ssm:PutParameter on exactly
  the flag and state parameters, lambda:Get/UpdateFunctionConfiguration on exactly the flag functions,
  kms:Encrypt through SSM when a flag is a SecureString) and `...-events`
  (assumed by EventBridge: start that one document and pass that one role).

Arming is idempotent: it reads what exists, writes only what differs (a changed document becomes a new
default version), and reads back. `status` compares what is armed with the current plan; `disarm`
removes it all. Dry runs read only (the session refuses writes). No boto3 here: AWS is behind the
`GuardStore` port (`cutover.aws.GuardResources`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from cutover import flags as flagmod
from cutover import iam
from cutover.errors import Blocked, CutoverError, ExitCode, Incomplete, UsageError
from cutover.notify import notify
from cutover.orchestrator import Outcome, Runtime, _finish, _report
from cutover.model import ROLLED_BACK, LambdaTarget, Plan, function_name
from cutover.redact import HIDDEN
from cutover.state import MAX_RECORD_BYTES, STABLE, StateRecord

PARAMETER = "AlarmName"  # the Automation parameter EventBridge fills with the alarm's name
MANUAL = "none (started by hand)"  # its default, when someone starts the automation from the console
REASON = "auto-rollback by guard: alarm {{" + PARAMETER + "}}"
EXECUTION_ID = "{{automation:EXECUTION_ID}}"  # an Automation system variable: the record's run id
COMMAND = "guard"
RECORD_STEP = "RecordRolledBack"
TARGET_ID = "cutover-rollback"
POLICY_NAME = "cutover-guard"
TAG_PLAN, TAG_DIGEST = "cutover:plan", "cutover:plan-digest"
NAME_LIMIT = 64  # EventBridge rule and IAM role names
ALARM_PATH = "$.detail.alarmName"
INPUT_TEMPLATE = '{"' + PARAMETER + '":["<alarm>"]}'  # Automation parameters are lists of strings
_UNSAFE = re.compile(r'["\\<>{}\x00-\x1f\x7f]')  # cannot pass through the transformer and the record's JSON


# --- names and ARNs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Names:
    document: str
    rule: str
    automation_role: str
    events_role: str


def _fit(plan_name: str, suffix: str, limit: int = NAME_LIMIT) -> str:
    full = f"cutover-{plan_name}{suffix}"
    if len(full) <= limit:
        return full
    tag = hashlib.sha256(plan_name.encode()).hexdigest()[:6]  # long names stay distinct
    keep = limit - len("cutover-") - len(suffix) - len(tag) - 1
    return f"cutover-{plan_name[:keep].rstrip('-')}-{tag}{suffix}"


def names(plan: Plan) -> Names:
    base = _fit(plan.name, "-rollback")
    return Names(document=base, rule=base, automation_role=_fit(plan.name, "-rollback-automation"),
                 events_role=_fit(plan.name, "-rollback-events"))


class GuardArns(iam.Arns):
    def role(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    def automation_definition(self, document: str, version: str = "$DEFAULT") -> str:
        return self._arn("ssm", f"automation-definition/{document}:{version}")

    def automation_executions(self) -> str:
        return self._arn("ssm", "automation-execution/*")

    def rule(self, name: str) -> str:
        return self._arn("events", f"rule/{name}")


# --- what the plan compiles to -------------------------------------------------------------------------
def watched_alarms(plan: Plan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, prefixes) of every alarm the plan's alarms checks look at."""
    inv = iam.inventory(plan)
    return inv.alarm_names, inv.alarm_prefixes


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
    for flag, value in flagmod.rollback_targets(plan):
        if "{{" in value or "}}" in value:
            raise UsageError(f"flag {flag.name}: its rollback value holds '{{{{' or '}}}}', which SSM Automation reads as a variable",
                             "change the rollback value, or roll this plan back with `cutover rollback` only")


def _step_name(index: int, what: str, prefix: str = "Flag") -> str:
    return f"{prefix}{index:02d}_{re.sub(r'[^A-Za-z0-9_]', '_', what)}"[:80]


# The Lambda step's script (Automation's python3.11 runtime, boto3 included). UpdateFunctionConfiguration
# replaces the whole environment, so it reads, merges our variables over the others and writes only if the
# function is still at the revision it read; if someone changed it meanwhile Lambda refuses
# (PreconditionFailed) and it reads and merges again, so their change is kept. It fails the step unless
# our variables read back set. It must hold no double braces: Automation would take them for variables.
SCRIPT_RUNTIME, SCRIPT_HANDLER = "python3.11", "handler"
LAMBDA_SCRIPT = '''\
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ATTEMPTS = 6  # read-merge-write rounds
SETTLE_SECONDS = 300  # to wait for Lambda to apply an update
RETRY = ("PreconditionFailedException", "ResourceConflictException")  # changed meanwhile / update in progress


def handler(events, context):
    function, want = events["Function"], events["Variables"]
    client = boto3.client("lambda", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    conflicts, wrote = 0, False
    for attempt in range(ATTEMPTS + 1):  # the last round only reads: did the last write land?
        config = settled(client, function)
        if wrote and config.get("LastUpdateStatus") == "Failed":
            raise RuntimeError(f"Lambda could not apply the update to {function}: {config.get('LastUpdateStatusReason')}")
        current = variables(config, function)
        if all(current.get(k) == v for k, v in want.items()):
            return {"Function": function, "Variables": sorted(want), "Conflicts": conflicts}
        if attempt == ATTEMPTS:
            break
        merged = dict(current, **want)
        revision = {"RevisionId": config["RevisionId"]} if config.get("RevisionId") else {}  # emulators may have none
        try:
            client.update_function_configuration(FunctionName=function, Environment={"Variables": merged}, **revision)
            wrote = True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in RETRY:
                raise
            conflicts += 1
    raise RuntimeError(f"{function}: variables {sorted(want)} are not at their rollback values after {ATTEMPTS} "
                       f"attempts ({conflicts} refused: the function kept changing)")


def settled(client, function):
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        config = client.get_function_configuration(FunctionName=function)
        if config.get("LastUpdateStatus") != "InProgress":
            return config
        if time.monotonic() > deadline:
            raise RuntimeError(f"{function} is still applying an update after {SETTLE_SECONDS}s")
        time.sleep(2)


def variables(config, function):
    env = config.get("Environment") or {}
    if env.get("Error"):  # undecryptable: writing would replace every other variable with ours alone
        raise RuntimeError(f"cannot read the environment of {function}: {env['Error'].get('ErrorCode')}")
    return dict(env.get("Variables") or {})
'''


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
    """One step per SSM flag and one per Lambda function (at its first flag), in rollback order."""
    targets = flagmod.rollback_targets(plan)
    steps, done = [], set()
    for i, (flag, value) in enumerate(targets, 1):
        if isinstance(flag.target, LambdaTarget):
            function = flag.target.function
            if function not in done:
                done.add(function)
                steps.append(_lambda_step(i, function, {f.target.variable: v for f, v in targets
                                                        if isinstance(f.target, LambdaTarget) and f.target.function == function}))
            continue
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


def record_template(plan: Plan, automation_role_arn: str) -> str:
    """The state record the document writes last: rolled back, stable, the alarm as the reason."""
    from cutover.plandiff import fingerprints

    rec = StateRecord(phase=ROLLED_BACK, status=STABLE, actor=automation_role_arn, run_id=EXECUTION_ID,
                      plan=plan.name, plan_digest=plan.digest, command=COMMAND, reason=REASON,
                      plan_items=fingerprints(plan))
    text = rec.to_json()
    if len(text.encode()) + 300 > MAX_RECORD_BYTES:  # room for the alarm's name (<= 255) and the execution id
        rec.plan_items = None
        text = rec.to_json()
    return text


def description(plan: Plan) -> str:
    return (f"cutover guard for plan {plan.name} (plan sha256 {plan.digest}): on ALARM of the plan's alarms, "
            f"every flag to its rollback value in plan order, then {plan.state_parameter} marked rolled_back. "
            "Generated by `cutover guard arm`: re-arm rather than edit; `cutover guard disarm` removes it.")


def build_document(plan: Plan, account: str) -> dict:
    """The SSM Automation document (schemaVersion 0.3) that performs the plan's rollback."""
    n, arn = names(plan), GuardArns(plan.region, account)
    role = arn.role(n.automation_role)
    steps = _flag_steps(plan)
    steps.append({
        "name": RECORD_STEP,
        "action": "aws:executeAwsApi",
        "maxAttempts": 3,
        "inputs": {"Service": "ssm", "Api": "PutParameter", "Name": plan.state_parameter,
                   "Value": record_template(plan, role), "Type": "String", "Overwrite": True},
    })
    return {
        "schemaVersion": "0.3",
        "description": description(plan),
        "assumeRole": role,
        "parameters": {PARAMETER: {"type": "String", "default": MANUAL,
                                   "description": "The CloudWatch alarm that went to ALARM (set by the EventBridge rule)"}},
        "mainSteps": steps,
    }


def build_event_pattern(plan: Plan) -> dict:
    alarm_names, prefixes = watched_alarms(plan)
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [*alarm_names, *({"prefix": p} for p in prefixes)], "state": {"value": ["ALARM"]}},
    }


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
    read-merge-write of the Lambda functions holding flags."""
    arn = GuardArns(plan.region, account)
    params = list(dict.fromkeys([*(arn.parameter(f.parameter) for f in plan.ssm_flags), arn.parameter(plan.state_parameter)]))
    stmts = [{"Sid": "RollBackFlagsAndRecordState", "Effect": "Allow", "Action": ["ssm:PutParameter"], "Resource": params}]
    if plan.functions:
        stmts.append({"Sid": "RollBackLambdaFlags", "Effect": "Allow", "Action": [iam.LAMBDA_READ, iam.LAMBDA_WRITE],
                      "Resource": [arn.function(fn) for fn in plan.functions]})
    if any(f.secure for f in plan.flags):
        # Writing a SecureString under a customer managed key needs Encrypt; it never reads one back.
        stmts.append({"Sid": "EncryptSecureStringFlagsViaSsm", "Effect": "Allow", "Action": ["kms:Encrypt"],
                      "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": arn.via("ssm")}}})
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


def desired(plan: Plan, account: str) -> Desired:
    n = names(plan)
    return Desired(
        names=n,
        document=build_document(plan, account),
        pattern=build_event_pattern(plan),
        target=build_target(plan, account),
        roles=(
            RoleSpec("automation role", n.automation_role, automation_trust(plan, account), automation_policy(plan, account),
                     f"cutover guard {plan.name}: the rollback automation's role (writes the plan's flags, nothing else)"),
            RoleSpec("events role", n.events_role, events_trust(plan, account), events_policy(plan, account),
                     f"cutover guard {plan.name}: lets EventBridge start the rollback automation {n.document}"),
        ),
        rule_description=f"cutover guard {plan.name} (sha256 {plan.digest[:12]}): a plan alarm in ALARM starts {n.document}",
        tags={TAG_PLAN: plan.name, TAG_DIGEST: plan.digest},
    )


def operator_policy(plan: Plan, account: str = iam.PLACEHOLDER_ACCOUNT, read_only: bool = False) -> dict:
    """What whoever runs `cutover guard` needs: read the guard's resources (`status`, dry runs) and, unless
    `read_only`, create, update and remove exactly those (`arm`, `disarm`). Nothing else in the account."""
    n, arn = names(plan), GuardArns(plan.region, iam.check_account(account))
    roles = [arn.role(n.automation_role), arn.role(n.events_role)]
    doc, rule = arn._arn("ssm", f"document/{n.document}"), arn.rule(n.rule)

    def allow(sid: str, actions: list[str], resources, condition: dict | None = None) -> dict:
        stmt = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
        return {**stmt, "Condition": condition} if condition else stmt

    stmts = [
        allow("ReadGuardRoles", ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy"], roles),
        allow("ReadGuardDocument", ["ssm:DescribeDocument", "ssm:GetDocument"], [doc]),
        allow("ReadGuardRule", ["events:DescribeRule", "events:ListTargetsByRule"], [rule]),
    ]
    if not read_only:
        stmts += [
            allow("ManageGuardRoles", ["iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy",
                                       "iam:DeleteRolePolicy", "iam:DeleteRole"], roles),
            # PutTargets hands the events role to EventBridge.
            allow("PassEventsRoleToEventBridge", ["iam:PassRole"], [arn.role(n.events_role)],
                  {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}),
            allow("ManageGuardDocument", ["ssm:CreateDocument", "ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion",
                                          "ssm:AddTagsToResource", "ssm:DeleteDocument"], [doc]),
            allow("ManageGuardRule", ["events:PutRule", "events:TagResource", "events:PutTargets", "events:RemoveTargets",
                                      "events:DeleteRule"], [rule]),
        ]
    stmts.append(allow("IdentifyCaller", ["sts:GetCallerIdentity"], "*"))
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
                row["value"] = f"state {rec.phase} ({rec.status}), reason \"{rec.reason.replace('{{' + PARAMETER + '}}', '<alarm name>')}\""
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
    """What the guard needs from AWS (`cutover.aws.GuardResources`). Reads return None when absent."""

    def get_role(self, name: str) -> dict | None: ...
    def create_role(self, name: str, trust: dict, description: str, tags: dict[str, str]) -> str: ...
    def update_trust(self, name: str, trust: dict) -> None: ...
    def put_role_policy(self, name: str, policy_name: str, policy: dict) -> None: ...
    def delete_role_policy(self, name: str, policy_name: str) -> None: ...
    def delete_role(self, name: str) -> bool: ...
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
        if step.get("action") == "aws:executeScript" and _script_of(step) != (SCRIPT_RUNTIME, SCRIPT_HANDLER, LAMBDA_SCRIPT):
            function = (step.get("inputs", {}).get("InputPayload") or {}).get("Function", "?")
            diffs.append(f"the armed step for Lambda function {function_name(function)} runs another script than this "
                         "cutover's (armed by another version, or edited)")
    if not diffs and list(have) != list(need):
        diffs.append("the rollback order differs from the plan's")
    if not diffs and armed != want:
        diffs.append("the document differs from the plan's (state record, role or parameters)")
    return diffs


def _alarm_differences(armed: dict | None, want: dict) -> list[str]:
    if armed == want:
        return []
    key = lambda a: json.dumps(a, sort_keys=True)  # noqa: E731
    have = {key(a): a for a in ((armed or {}).get("detail", {}).get("alarmName") or [])}
    need = {key(a): a for a in want["detail"]["alarmName"]}
    label = lambda a: a if isinstance(a, str) else f"{a.get('prefix', a)}*"  # noqa: E731
    diffs = []
    if [k for k in need if k not in have]:
        diffs.append("alarms not watched by the armed rule: " + ", ".join(label(need[k]) for k in need if k not in have))
    if [k for k in have if k not in need]:
        diffs.append("alarms watched by the armed rule but no longer in the plan: " + ", ".join(label(have[k]) for k in have if k not in need))
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


def _trigger_line(plan: Plan) -> str:
    alarm_names, prefixes = watched_alarms(plan)
    shown = [*alarm_names, *(f"{p}* (prefix)" for p in prefixes)]
    return "triggers on: a CloudWatch alarm going to ALARM: " + (", ".join(shown) or "none")


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
    report = _report(rt, "guard-arm")
    want = desired(plan, _account(rt))
    resources = compare(plan, want, observe(store, want.names))
    todo = [r for r in resources if r.verb != "unchanged"]
    rows = describe_writes(plan, want.document)
    plan_lines = [f"{r.verb} {r.kind} {r.name}" + (f": {'; '.join(r.differences)}" if r.differences else "") for r in resources]
    info = [_trigger_line(plan), "it will, in order:", *_step_lines(rows)]
    data = {"action": "arm", "plan": plan.name, "plan_digest": plan.digest, "dry_run": rt.dry_run,
            "resources": [{**r.to_dict(), "action": r.verb} for r in resources], "steps": rows,
            "names": want.names.__dict__, "alarms": dict(zip(("names", "prefixes"), map(list, watched_alarms(plan))))}
    report.steps = _steps_for_evidence(resources, {}, rt.dry_run)
    if not todo:
        return _finish(rt, report, Outcome(ExitCode.OK, f"nothing to do: the guard for {plan.name} is armed and matches the plan",
                                           plan_lines + info, data))
    summary = ", ".join(f"{r.verb} {r.kind} {r.name}" for r in todo)
    if rt.dry_run:
        return _finish(rt, report, Outcome(
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
        _finish(rt, report, Outcome(err.exit_code, err.message, data=data))
        raise
    report.steps = _steps_for_evidence(resources, done)
    plan_lines = [f"{done.get(r.name + r.kind, 'unchanged')} {r.kind} {r.name}"
                  + (f" (its default version is now {done['document version']})" if r.kind == "document" and "document version" in done else "")
                  for r in resources]
    notify(rt, "guard ARMED", [f"{_count(todo, past=True)}", _trigger_line(plan),
                               f"rolls back {len(plan.flags)} flag(s) to their known-safe values, then records rolled_back"])
    return _finish(rt, report, Outcome(
        ExitCode.OK, f"guard armed for {plan.name}: {_count(todo, past=True)}", plan_lines + info, data,
        hint="`cutover guard status` shows it; disarm for planned work with `cutover guard disarm`"))


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
    """Roles first (the document names one, the target the other), then the document, the rule, its target.
    `done` gets each resource's outcome (and the document's new default version) as it goes."""
    by_kind = {r.kind: r for r in resources}
    for spec in want.roles:
        r = by_kind[spec.kind]
        if r.verb == "unchanged":
            continue
        if not r.present:
            store.create_role(spec.name, spec.trust, spec.description, want.tags)
        else:
            current = store.get_role(spec.name) or {"trust": None, "policies": {}}
            if current["trust"] != spec.trust:
                store.update_trust(spec.name, spec.trust)
            for extra in [p for p in current["policies"] if p != POLICY_NAME]:
                store.delete_role_policy(spec.name, extra)
        store.put_role_policy(spec.name, POLICY_NAME, spec.policy)
        done[r.name + r.kind] = "created" if not r.present else "updated"
    # YAML, not JSON: AWS has documented inline `Script` (the Lambda steps) for YAML runbooks only.
    content = yaml.safe_dump(want.document, sort_keys=False, width=1000)
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
    present = [r for r in resources if r.present]
    current = all(r.current for r in resources)
    if not present:
        state, headline = "disarmed", f"guard NOT ARMED for {plan.name}"
    elif len(present) < len(resources):
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
    lines.append(_trigger_line(plan) + ("" if seen.rule is not None else " (once armed)"))
    armed_doc = _content(seen.document)
    if armed_doc:
        rows = describe_writes(plan, armed_doc)
        lines.append("on ALARM it would, in order:")
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
    code = ExitCode.DRIFT if check and state != "armed" else ExitCode.OK
    return Outcome(code, headline, lines, data, hint=hint)


def disarm(rt: Runtime, store: GuardStore) -> Outcome:
    """Remove the target(s), the rule, the document and both roles. A dry run reads only."""
    plan = rt.plan
    n = names(plan)
    report = _report(rt, "guard-disarm")
    seen = observe(store, n)
    found = []
    if seen.targets:
        found.append(("targets", f"{n.rule}: {', '.join(t.get('Id', '?') for t in seen.targets)}"))
    if seen.rule is not None:
        found.append(("rule", n.rule))
    if seen.document is not None:
        found.append(("document", n.document))
    found += [(kind, name) for kind, name in (("events role", n.events_role), ("automation role", n.automation_role))
              if seen.roles.get(name) is not None]
    lines = [f"remove {kind} {name}" for kind, name in found]
    data = {"action": "disarm", "plan": plan.name, "dry_run": rt.dry_run,
            "resources": [{"kind": k, "name": v} for k, v in found], "names": n.__dict__}
    report.steps = [{"step": line, "expected": "removed", "outcome": "dry run: would remove" if rt.dry_run else "not reached",
                     "ok": rt.dry_run} for line in lines]
    if not found:
        return _finish(rt, report, Outcome(ExitCode.OK, f"nothing to do: no guard is armed for {plan.name}", [], data))
    if rt.dry_run:
        return _finish(rt, report, Outcome(ExitCode.OK, f"dry run: disarming the guard for {plan.name} would remove "
                                                        f"{len(found)} resource(s); nothing was written", lines, data,
                                           hint="run `cutover guard disarm` to apply"))
    if not rt.confirm(f"disarm the guard for {plan.name}: no automatic rollback until it is armed again; " + "; ".join(lines)):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
    try:
        for i, (kind, name) in enumerate(found):
            if kind == "targets":
                store.remove_targets(n.rule, [t["Id"] for t in seen.targets])
            elif kind == "rule":
                store.delete_rule(name)
            elif kind == "document":
                store.delete_document(name)
            else:
                store.delete_role(name)
            report.steps[i].update(outcome="removed", ok=True)
        left = observe(store, n)
        if left.rule is not None or left.document is not None or any(v is not None for v in left.roles.values()):
            raise Incomplete("the guard was removed but some of it still reads back", "re-run `cutover guard disarm`")
    except CutoverError as err:
        _finish(rt, report, Outcome(err.exit_code, err.message, data=data))
        raise
    notify(rt, "guard DISARMED", [f"removed {len(found)} resource(s)", "no automatic rollback until `cutover guard arm`"])
    return _finish(rt, report, Outcome(ExitCode.OK, f"guard disarmed for {plan.name}: removed {len(found)} resource(s)", lines, data,
                                       hint="no automatic rollback now; re-arm after planned work: cutover guard arm"))
