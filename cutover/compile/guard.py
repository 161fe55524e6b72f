"""The guard: the plan's rollback armed inside AWS, so an alarm rolls the flags back with no laptop awake.

    CloudWatch alarm -> ALARM  ==>  EventBridge rule  ==>  SSM Automation document  ==>  PutParameter x N
                                                                                     + Lambda env update x F

`cutover guard arm` compiles the plan into AWS resources, all named from the plan:

- the SSM Automation document `cutover-<plan>-rollback` (schemaVersion 0.3), in plan (rollback) order, to
  exactly the values `cutover rollback` converges to (both come from the rollback program, `program.steps`): one
  `aws:executeAwsApi` PutParameter step per SSM flag (or, when that would not fit AWS's 64 KB, one
  `aws:executeScript` step per 100 consecutive SSM flags, `PUT_SCRIPT`), and one `aws:executeScript` step per Lambda function,
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
(`cutover.adapters.aws.GuardResources`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from cutover import guard_scripts, limits
from cutover.compile import iam
from cutover.model import program
from cutover.errors import UsageError
from cutover.compile.guard_names import GuardArns, Names, fit_name, names
from cutover.model.plan import ROLLED_BACK, Flag, LambdaTarget, Plan, function_name
from cutover.checks import alarms as alarm_checks
from cutover.redact import HIDDEN, shown
from cutover.core.state import MAX_RECORD_BYTES, STABLE, StateRecord

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
    alarms = alarm_checks.TYPE.checks_in(plan)

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
        ("automation role's policy", _role_policy_over(automation_policy(plan, limits.SIZING_ACCOUNT))),
    ) if why]
    if too_big:
        raise UsageError(f"plan '{plan.name}' has {len(plan.flags)} flags: too many for one guard: the "
                         + "; the ".join(f"{what} would be {why}" for what, why in too_big),
                         "split the flags across plans (each with its own guard), or roll this plan back with "
                         "`cutover rollback` and leave it unguarded")


def _role_policy_over(policy: dict) -> str | None:
    """None when the role's policy fits inline (10,240 characters) or split into the managed policies IAM
    attaches to one role (10 of 6,144), else the sentence saying by how much."""
    size = limits.policy_size(policy)
    if not limits.over(limits.ROLE_INLINE_POLICIES, size):
        return None
    parts = len(limits.split_policy(policy))
    if parts <= limits.MANAGED_POLICIES_PER_ROLE:
        return None
    return (f"{size:,} characters: {parts} managed policies of {limits.MANAGED_POLICY.size:,}, over the "
            f"{limits.MANAGED_POLICIES_PER_ROLE} AWS attaches to a role by default (or {limits.ROLE_INLINE_POLICIES.size:,} inline)")


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


PUT_SCRIPT = guard_scripts.source("put_parameters")
BATCH = 100  # SSM flags per step of a compact document: ~33 s of writes at 3 a second, within a script's 600 s


def _set_step(index: int, flag: Flag, value: str) -> dict:
    """One SSM flag, one executeAwsApi step (the layout while the document fits: each flag its own step)."""
    return {
        "name": _step_name(index, flag.name),
        "action": "aws:executeAwsApi",
        # A failed flag must not stop the others (kill switches come first, but every one counts);
        # the execution still ends Failed, and `cutover status` shows the flag that differs.
        "onFailure": "Continue",
        "maxAttempts": 3,
        "inputs": {"Service": "ssm", "Api": "PutParameter", "Name": flag.parameter, "Value": value,
                   "Type": "SecureString" if flag.secure else "String", "Overwrite": True},
    }


def _put_step(index: int, batch: list[program.SetParameter]) -> dict:
    """Consecutive SSM flags in one executeScript step, in order (a compact document: one step per flag
    does not fit 64 KB at a few hundred flags). Each as [parameter, value] (+ "SecureString"): a list,
    not a mapping, since its keys would be most of the document."""
    return {
        "name": _step_name(index, batch[0].flag.name, "Flags"),
        "action": "aws:executeScript",
        "onFailure": "Continue",  # as a flag's own step; the script attempts every flag and fails naming the rest
        "maxAttempts": 1,  # each write retries on its own (adaptive, 10 attempts); a rerun would rewrite them all
        "timeoutSeconds": 600,
        "inputs": {"Runtime": SCRIPT_RUNTIME, "Handler": SCRIPT_HANDLER, "Script": PUT_SCRIPT,
                   "InputPayload": {"Parameters": [[s.flag.parameter, s.value, *_secure(s.flag)] for s in batch]}},
    }


def _secure(flag: Flag) -> list[str]:
    """A compact entry's last item: the type, for a SecureString only."""
    return ["SecureString"] if flag.secure else []


def _flag_steps(plan: Plan, writes: tuple[program.Step, ...], batch_size: int) -> list[dict]:
    """The rollback program compiled: one executeScript step per Lambda function, and SSM writes one per
    executeAwsApi step (batch_size 1) or up to `batch_size` consecutive ones per executeScript step; each
    step named after the place of its (first) flag in plan order."""
    position = {f.key: i for i, f in enumerate(plan.flags, 1)}
    steps: list[dict] = []
    batch: list[program.SetParameter] = []

    def flush() -> None:
        if batch:
            first = position[batch[0].flag.key]
            steps.append(_set_step(first, batch[0].flag, batch[0].value) if batch_size == 1 else _put_step(first, list(batch)))
            batch.clear()

    for step in writes:
        if isinstance(step, program.MergeEnvironment):
            flush()
            steps.append(_lambda_step(position[step.flags[0].key], step.function, step.variables))
            continue
        batch.append(step)
        if len(batch) == batch_size:
            flush()
    flush()
    return steps


def record_template(plan: Plan, automation_role_arn: str) -> dict:
    """The state record the last step writes when every flag reads back at its rollback value: rolled
    back, stable, the alarm as the reason (the step adds when). As a mapping, so the alarm's name goes
    in as a string and the step serialises it (never JSON text with a name spliced in)."""
    from cutover.model.plandiff import fingerprints

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


def _verify_entry(f: Flag, value: str, compact: bool) -> dict:
    """A flag as the last step checks it. Compact (every flag is in the document twice): an SSM flag is
    [flag, parameter, value] (+ "SecureString"), labelled "flag (parameter)" by the script."""
    if f.kind != "ssm":
        return {"Label": _label_of(f), "Function": f.target.function, "Variable": f.target.variable, "Value": value}
    if compact:
        return [f.name, f.parameter, value, *_secure(f)]
    return {"Label": _label_of(f), "Parameter": f.parameter, "Type": "SecureString" if f.secure else "String", "Value": value}


def _verify_step(plan: Plan, record: dict, targets: list[tuple[Flag, str]], compact: bool) -> dict:
    flags = [_verify_entry(f, value, compact) for f, value in targets]
    return {
        "name": RECORD_STEP,
        "action": "aws:executeScript",
        "maxAttempts": 1,  # it tells the topic: a retry would tell twice (its AWS calls retry on their own)
        "timeoutSeconds": 600,
        "inputs": {"Runtime": SCRIPT_RUNTIME, "Handler": SCRIPT_HANDLER, "Script": VERIFY_SCRIPT,
                   "InputPayload": {"StateParameter": plan.state_parameter, "Record": record,
                                    "Flags": flags, "Topic": plan.notify_topic or "", "Alarm": "{{" + PARAMETER + "}}"}},
    }


def description(plan: Plan) -> str:
    return (f"cutover guard for plan {plan.name} (plan sha256 {plan.digest}): when a plan alarm goes to ALARM (or INSUFFICIENT_DATA, as its check says), "
            f"every flag to its rollback value in plan order, then {plan.state_parameter} marked rolled_back. "
            "Generated by `cutover guard arm`: re-arm rather than edit; `cutover guard disarm` removes it.")


def build_document(plan: Plan, account: str, compact: bool | None = None) -> dict:
    """The SSM Automation document (schemaVersion 0.3) that performs the plan's rollback: one step per SSM
    flag while that fits AWS's 64 KB, else compact (SSM flags in batches, the last step's list shortened).
    `compact` True or False builds that layout only."""
    role = GuardArns(plan.region, account).role(names(plan).automation_role)
    # Computed once for both layouts: the program and the record are most of the work.
    targets, record = program.targets(plan), record_template(plan, role)
    writes = program.group(targets)

    def document(compact: bool) -> dict:
        steps = [*_flag_steps(plan, writes, BATCH if compact else 1), _verify_step(plan, record, targets, compact)]
        return _document(plan, role, steps)

    if compact is not None:
        return document(compact)
    doc = document(compact=False)
    return document(compact=True) if limits.over(limits.AUTOMATION_DOCUMENT, limits.document_size(doc)) else doc


def _document(plan: Plan, role: str, steps: list[dict]) -> dict:
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


# --- the roles: one pair per account ----------------------------------------------------------------------
# IAM is global: a role's name is unique in its account, whatever the region. A plan with targets in two regions
# of one account therefore shares one pair of roles there (the same names as a single-target plan's), whose
# trust and policy cover the guard of each of those regions (`Plan.guard_regions`), rather than a pair per
# target: an admin bootstraps each account once, and `rollback --in-aws` runs every region of an account
# under the one execution role name that Automation's TargetLocations take per location.
def guard_regions(plan: Plan) -> tuple[str, ...]:
    """The regions whose guard runs as this account's roles: the plan's own, or its account's targets'."""
    return plan.scope.account_regions if plan.scope is not None else (plan.region,)


def merged_policies(docs: list[dict]) -> dict:
    """IAM policies of the same statements in several regions, as one: each statement (by Sid, or by
    position) with the union of its Resources and of each condition's values. One policy: itself."""
    if len(docs) == 1:
        return docs[0]

    def union(values):
        flat = list(dict.fromkeys(x for v in values for x in (v if isinstance(v, list) else [v])))
        return flat[0] if len(flat) == 1 else flat

    merged: dict[str, dict] = {}
    for doc in docs:
        for i, stmt in enumerate(doc["Statement"]):
            key = stmt.get("Sid") or f"#{i}"
            merged.setdefault(key, []).append(stmt)
    statements = []
    for group in merged.values():
        out = dict(group[0])
        if "Resource" in out:
            out["Resource"] = union(s["Resource"] for s in group)
            if isinstance(group[0]["Resource"], list) and not isinstance(out["Resource"], list):
                out["Resource"] = [out["Resource"]]
        if "Condition" in out:
            out["Condition"] = {op: {k: union(s["Condition"][op][k] for s in group) for k in keys}
                                for op, keys in group[0]["Condition"].items()}
        statements.append(out)
    return {**docs[0], "Statement": statements}


def _in_regions(plan: Plan, build) -> dict:
    """`build(plan)` in each of the guard's regions, merged (a single-target plan: exactly `build(plan)`)."""
    regions = guard_regions(plan)
    if regions == (plan.region,):
        return build(plan)
    return merged_policies([build(dataclasses.replace(plan, region=r)) for r in regions])


def automation_trust(plan: Plan, account: str) -> dict:
    return _in_regions(plan, lambda p: _trust("ssm.amazonaws.com", account, GuardArns(p.region, account).automation_executions()))


# `cutover rollback --in-aws` (a plan with targets) runs the guard's document in every target account as its
# automation role, assumed by Automation through this role of the account that starts it (AWS's name).
ADMIN_ROLE = "AWS-SystemsManager-AutomationAdministrationRole"
ADMIN_ACCOUNT_PARAMETER = "AdministratorAccountId"  # the bootstrap template's one parameter (a plan with targets)


def administrator_trust(region: str, account: str) -> dict:
    """The trust statement letting `account`'s administration role assume a target's automation role."""
    return {"Sid": "RollbackInAwsFromTheAdministratorAccount", "Effect": "Allow",
            "Principal": {"AWS": f"arn:{iam.partition(region)}:iam::{account}:role/{ADMIN_ROLE}"}, "Action": "sts:AssumeRole"}


def in_aws_start_region(plan: Plan, caller_account: str) -> str:
    """Where `rollback --in-aws` starts: the first target in the caller's account (its document is armed
    there), else the plan's region."""
    return next((t.region for t in plan.targets if (t.account or caller_account) == caller_account), plan.region)


def in_aws_statements(plan: Plan, caller_account: str) -> list[dict]:
    """What starting `rollback --in-aws` needs in the caller's account: read the administration role, pass
    the roles the execution runs as to SSM, and start the guard's document (one region)."""
    region = in_aws_start_region(plan, caller_account)
    n, arn = names(plan), GuardArns(region, iam.check_account(caller_account))
    roles = [arn.role(ADMIN_ROLE), arn.role(n.automation_role)]
    return [
        iam.statement("ReadAutomationAdministrationRole", ["iam:GetRole"], [arn.role(ADMIN_ROLE)]),
        iam.statement("PassRolesToAutomation", ["iam:PassRole"], roles, {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}),
        iam.statement("StartRollbackInAws", ["ssm:StartAutomationExecution"],
                      [arn.automation_definition(n.document, "*")]),
    ]


def without_administrator_trust(trust: dict | None) -> dict | None:
    """A role's trust as `guard arm` compares it: without the administrator statement (which names the
    account that starts `rollback --in-aws`, the admin's choice when bootstrapping, unknown to `arm`)."""
    if not trust or "Statement" not in trust:
        return trust
    kept = [s for s in trust["Statement"] if not str((s.get("Principal") or {}).get("AWS", "")).endswith(f":role/{ADMIN_ROLE}")]
    return {**trust, "Statement": kept}


def events_trust(plan: Plan, account: str) -> dict:
    return _in_regions(plan, lambda p: _trust("events.amazonaws.com", account, GuardArns(p.region, account).rule(names(p).rule)))


def automation_policy(plan: Plan, account: str) -> dict:
    """What the automation does and nothing else: PutParameter on the SSM flags and the state record, and
    read-merge-write of the Lambda functions holding flags; its last step reads them all back (and the
    record), and tells the plan's topic. In every region of `guard_regions`."""
    return _in_regions(plan, lambda p: _automation_policy(p, account))


def _automation_policy(plan: Plan, account: str) -> dict:
    arn = GuardArns(plan.region, account)
    params = list(dict.fromkeys([*(arn.parameter(f.parameter) for f in plan.ssm_flags), arn.parameter(plan.state_parameter)]))
    # One statement for both actions: the parameter ARNs are most of the policy, and IAM limits its size.
    stmts = [iam.statement("RollBackAndReadBackFlagsAndState", ["ssm:PutParameter", "ssm:GetParameters"], params)]
    if plan.functions:
        stmts.append(iam.statement("RollBackLambdaFlags", [iam.LAMBDA_READ, iam.LAMBDA_WRITE],
                                    [arn.function(fn) for fn in plan.functions]))
    if any(f.secure for f in plan.flags):
        # Writing a SecureString under a customer managed key needs Encrypt; reading it back, Decrypt.
        stmts.append(iam.statement("SecureStringFlagsViaSsm", ["kms:Encrypt", "kms:Decrypt"], "*",
                                    {"StringEquals": {"kms:ViaService": arn.via("ssm")}}))
    keys = iam.inventory(plan).lambda_keys
    stmts += iam.lambda_key_statements(keys, arn, ["kms:Decrypt", "kms:Encrypt"])  # read-merge-write of an encrypted env
    if plan.notify_topic:
        stmts.append(iam.statement("TellThePlanTopic", ["sns:Publish"], [plan.notify_topic]))
    return {"Version": "2012-10-17", "Statement": stmts}


def events_policy(plan: Plan, account: str) -> dict:
    return _in_regions(plan, lambda p: _events_policy(p, account))


def _events_policy(plan: Plan, account: str) -> dict:
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
    policy: dict  # the whole least privilege: the one inline policy POLICY_NAME, unless `managed`
    description: str
    managed: dict[str, dict] = dataclasses.field(default_factory=dict)  # name -> document: `policy` split

    @property
    def inline(self) -> dict[str, dict]:
        """The inline policies the role holds: POLICY_NAME, or none when its policy is split into managed ones."""
        return {} if self.managed else {POLICY_NAME: self.policy}


def managed_split(role: str, policy: dict, account: str) -> dict[str, dict]:
    """A role policy too large for IAM's 10,240 characters of inline policies per role, as managed
    policies (6,144 each, named `<role>-1`, `-2`, ...); {} when it fits inline (the one policy, as before)."""
    if not limits.over(limits.ROLE_INLINE_POLICIES, limits.policy_size(policy, account)):
        return {}
    try:
        parts = limits.split_policy(policy, placeholder=account)
    except ValueError as err:
        raise UsageError(f"role {role}: {err}", "shorten the plan's parameter names") from None
    return {f"{role}-{i}": doc for i, doc in enumerate(parts, 1)}


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
    policy = automation_policy(plan, account)
    return (
        RoleSpec("automation role", n.automation_role, automation_trust(plan, account), policy,
                 f"cutover guard {plan.name}: the rollback automation's role (writes the plan's flags, nothing else)",
                 managed_split(n.automation_role, policy, account)),
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
ADMIN_ACCOUNT_VAR = "${" + ADMIN_ACCOUNT_PARAMETER + "}"


def stack_name(plan: Plan) -> str:
    return fit_name(plan.name, "-guard-roles", 128)


def bootstrap_hint(plan: Plan) -> str:
    if plan.scope is None:
        return (f"an admin applies the roles once: cutover guard bootstrap > guard-roles.json && aws cloudformation deploy "
                f"--template-file guard-roles.json --stack-name {stack_name(plan)} --capabilities CAPABILITY_NAMED_IAM "
                f"--region {plan.region}; then run `cutover guard arm` again")
    # A target's: one stack per account (IAM is global), in one of its regions; it serves all of them.
    shared = f" (its roles serve the guard in {', '.join(plan.scope.account_regions)})" if len(plan.scope.account_regions) > 1 else ""
    return (f"an admin of the target's account applies the roles once{shared}: cutover guard bootstrap --target {plan.scope.name} "
            f"> guard-roles.json && aws cloudformation deploy --template-file guard-roles.json --stack-name {stack_name(plan)} "
            f"--capabilities CAPABILITY_NAMED_IAM --region {plan.scope.account_regions[0]} --parameter-overrides "
            f"{ADMIN_ACCOUNT_PARAMETER}=<the account that runs cutover without a role, where {ADMIN_ROLE} exists>; "
            "then run `cutover guard arm` again")


def _sub_account(node):
    """Every string naming the account becomes {"Fn::Sub": ...}, so CloudFormation fills it in."""
    if isinstance(node, dict):
        return {k: _sub_account(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_sub_account(v) for v in node]
    return {"Fn::Sub": node} if isinstance(node, str) and (ACCOUNT_VAR in node or ADMIN_ACCOUNT_VAR in node) else node


def bootstrap_template(plan: Plan) -> dict:
    """A CloudFormation template (JSON) creating the guard's two roles, each with its one inline policy,
    exactly as `guard arm` expects them. Printed by `cutover guard bootstrap`; applied by an admin."""
    resources, outputs = {}, {}
    for logical, spec in zip(("AutomationRole", "EventsRole"), role_specs(plan, ACCOUNT_VAR)):
        trust = spec.trust
        if plan.scope is not None and logical == "AutomationRole":  # a plan with targets: `rollback --in-aws`
            trust = {**trust, "Statement": [*trust["Statement"], administrator_trust(plan.region, ADMIN_ACCOUNT_VAR)]}
        resources[logical] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": spec.name, "Description": spec.description, "AssumeRolePolicyDocument": trust,
            "Policies": [{"PolicyName": name, "PolicyDocument": doc} for name, doc in spec.inline.items()],
            "Tags": [{"Key": TAG_PLAN, "Value": plan.name}]}}
        for i, (name, doc) in enumerate(spec.managed.items(), 1):  # a policy too large to be inline
            resources[f"{logical}Policy{i}"] = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
                "ManagedPolicyName": name, "Description": f"{spec.description} (part {i} of {len(spec.managed)})",
                "PolicyDocument": doc, "Roles": [{"Ref": logical}]}}
        outputs[logical + "Arn"] = {"Value": {"Fn::GetAtt": [logical, "Arn"]}}
    parameters = {ADMIN_ACCOUNT_PARAMETER: {
        "Type": "String", "AllowedPattern": "^[0-9]{12}$",
        "ConstraintDescription": "an AWS account id (12 digits)",
        "Description": (f"the account that starts `cutover rollback --in-aws` (where cutover runs without a role); its "
                        f"{ADMIN_ROLE} may assume the automation role")}} if plan.scope is not None else {}
    return _sub_account({
        "AWSTemplateFormatVersion": "2010-09-09",
        **({"Parameters": parameters} if parameters else {}),
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
        iam.statement("ReadGuardRoles", ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy",
                                          "iam:ListAttachedRolePolicies"], roles),
        iam.statement("ReadGuardDocument", ["ssm:DescribeDocument", "ssm:GetDocument"], [doc]),
        iam.statement("ReadGuardRule", ["events:DescribeRule", "events:ListTargetsByRule"], [rule]),
    ]
    managed = [arn.policy(name) for spec in role_specs(plan, account) for name in spec.managed]
    if managed:  # the managed policies of a role too large for inline ones (`managed_split`), exactly
        stmts.insert(1, iam.statement("ReadGuardRolePolicies", ["iam:GetPolicy", "iam:GetPolicyVersion"], managed))
    if not read_only:
        stmts += [
            iam.statement("PassEventsRoleToEventBridge", ["iam:PassRole"], [arn.role(n.events_role)],
                           {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}),
            iam.statement("ManageGuardDocument", ["ssm:CreateDocument", "ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion",
                                                   "ssm:AddTagsToResource", "ssm:DeleteDocument"], [doc]),
            iam.statement("ManageGuardRule", ["events:PutRule", "events:TagResource", "events:PutTargets", "events:RemoveTargets",
                                               "events:DeleteRule"], [rule]),
        ]
    stmts.append(iam.statement("IdentifyCaller", ["sts:GetCallerIdentity"], "*"))
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
        elif s.get("action") == "aws:executeScript" and "Parameters" in (inputs.get("InputPayload") or {}):
            for name, value, *kind in inputs["InputPayload"]["Parameters"] or []:  # [parameter, value] (+ type)
                out.append({"step": s.get("name", ""), "kind": "ssm", "key": name, "parameter": name, "function": None,
                            "variable": None, "value": value, "type": kind[0] if kind else "String"})
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


def write_label(w: dict) -> str:
    """Where a write goes, for people: the parameter, or 'function env VARIABLE'."""
    return w["parameter"] if w["kind"] == "ssm" else LambdaTarget(w["function"], w["variable"]).describe()


def script_of(step: dict) -> tuple:
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
        row["target"] = write_label(w)
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
            row["flag"], row["value"] = flag.name, shown(flag, w["value"])
        else:
            row["flag"], row["value"] = None, HIDDEN  # not in this plan: do not guess
        rows.append(row)
    return rows
