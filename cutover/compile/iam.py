"""The least-privilege IAM policy for a plan: exactly the resources it names, exactly the calls cutover makes.

`inventory(plan)` lists the AWS resources a plan touches (the runbook's prerequisites use it too): SSM
parameters, the Lambda functions whose environment holds flags, alarms, log groups, secrets;
`policy(plan, ...)` turns them into a policy document. Only names go in: never a flag value, so a
sensitive value cannot reach the policy. No boto3 here: the policy is computed from the plan alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cutover import checks as check_types
from cutover.checks.interface import statement
from cutover.errors import UsageError
from cutover.model.plan import Plan, function_name
from cutover.ports import HIGH_THROUGHPUT_SETTING

PLACEHOLDER_ACCOUNT = "ACCOUNT_ID"
_ACCOUNT = re.compile(r"^\d{12}$")

# The SSM reads cutover makes (GetParameters); GetParameter and GetParameterHistory let an operator
# inspect the same parameters with the AWS CLI, and `history` reads the state's versions.
SSM_READS = ["ssm:GetParameters", "ssm:GetParameter", "ssm:GetParameterHistory"]
# A Lambda flag is read with GetFunctionConfiguration and written with UpdateFunctionConfiguration (the
# whole environment, read-merge-write); both on the unqualified function ($LATEST), never a version.
LAMBDA_READ, LAMBDA_WRITE = "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"


@dataclass(frozen=True)
class Inventory:
    """The AWS resources a plan names, each list in plan order without repeats."""

    flag_parameters: tuple[str, ...]  # SSM flags, rollback order
    secure_parameters: tuple[str, ...]  # SecureString flags: KMS is involved
    functions: tuple[str, ...]  # bare names of the Lambda functions holding flags, plan order
    lambda_keys: tuple[str, ...]  # the customer managed KMS keys (key or alias ARNs) of their environments
    state_parameter: str
    lock_parameter: str
    alarm_names: tuple[str, ...]
    alarm_prefixes: tuple[str, ...]
    log_groups: tuple[str, ...]
    secrets_read: tuple[str, ...]  # GetSecretValue: secrets checks with decrypt: true, and {{secret:ID}} templates
    secrets_described: tuple[str, ...]  # DescribeSecret only: decrypt: false, and never read elsewhere
    change_calendars: tuple[str, ...] = ()  # SSM Change Calendars of window checks (names or ARNs)

    @property
    def parameters(self) -> tuple[str, ...]:
        return (*self.flag_parameters, self.state_parameter, self.lock_parameter)


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def inventory(plan: Plan) -> Inventory:
    need = check_types.needs(plan).get  # what the checks need, by kind (`CheckType.needs`)
    read = need("secret_read", ())
    return Inventory(
        flag_parameters=_unique(f.parameter for f in plan.ssm_flags),
        secure_parameters=_unique(f.parameter for f in plan.ssm_flags if f.secure),
        functions=_unique(function_name(fn) for fn in plan.functions),
        lambda_keys=_unique(k for k in plan.function_keys.values() if k),
        state_parameter=plan.state_parameter,
        lock_parameter=plan.lock_parameter,
        alarm_names=need("alarm", ()),
        alarm_prefixes=need("alarm_prefix", ()),
        log_groups=need("log_group", ()),
        secrets_read=read,
        secrets_described=tuple(s for s in need("secret_described", ()) if s not in read),
        change_calendars=need("change_calendar", ()),
    )


# --- ARNs ---------------------------------------------------------------------------------------------


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


class Arns:
    def __init__(self, region: str, account: str) -> None:
        self.region, self.account, self.partition = region, account, partition(region)

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def parameter(self, name: str) -> str:
        # The ARN joins "parameter" and the name with one slash: /a/b -> parameter/a/b.
        return self._arn("ssm", "parameter/" + name.lstrip("/"))

    def function(self, name: str) -> str:
        """The unqualified function ARN ($LATEST), from a name, partial ARN or ARN (the plan's region)."""
        return self._arn("lambda", f"function:{function_name(name)}")

    def alarm(self, name: str) -> str:
        return self._arn("cloudwatch", f"alarm:{name}")

    def log_group(self, name: str) -> str:
        # The ":*" form is the one IAM evaluates for FilterLogEvents (and covers the group's streams).
        return self._arn("logs", f"log-group:{name}:*")

    def secret(self, secret_id: str) -> str:
        if secret_id.startswith("arn:"):  # already a full ARN, suffix included
            return secret_id
        # Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN.
        return self._arn("secretsmanager", f"secret:{secret_id}-??????")

    def service_setting(self, setting_id: str) -> str:
        return self._arn("ssm", "servicesetting/" + setting_id.lstrip("/"))

    def change_calendar(self, name: str) -> str:
        """A Change Calendar is an SSM document: its ARN, unless the plan wrote the ARN itself."""
        return name if name.startswith("arn:") else self._arn("ssm", f"document/{name}")

    def via(self, service: str) -> str:
        return f"{service}.{self.region}.{_dns_suffix(self.region)}"


# --- the policy ---------------------------------------------------------------------------------------


def check_account(account: str) -> str:
    """A 12-digit account id or the placeholder; a usage error (exit 2) otherwise."""
    if account == PLACEHOLDER_ACCOUNT or _ACCOUNT.match(account):
        return account
    raise UsageError(f"--account {account!r} is not an AWS account id (12 digits)",
                     f"pass your account id, e.g. --account 123456789012, or leave {PLACEHOLDER_ACCOUNT} to fill in later")


def policy(plan: Plan, account: str = PLACEHOLDER_ACCOUNT, read_only: bool = False) -> dict:
    """The policy document: reads only with `read_only` (dry runs, preflight, status, history, watch
    without auto-rollback, rehearsals against production), else reads and the flag/state/lock writes."""
    inv, arn = inventory(plan), Arns(plan.region, check_account(account))
    params = [arn.parameter(p) for p in inv.parameters]
    # One statement for reads and writes: the parameter ARNs are most of the policy, and IAM limits its size.
    stmts = [statement("ReadFlagsStateAndLock" if read_only else "ReadWriteFlagsStateAndLock",
                        SSM_READS + ([] if read_only else ["ssm:PutParameter"]), params)]
    if not read_only:
        stmts.append(statement("ReleaseLock", ["ssm:DeleteParameter"], [arn.parameter(inv.lock_parameter)]))
    if inv.functions:
        functions = [arn.function(f) for f in inv.functions]
        stmts.append(statement("ReadLambdaFlags", [LAMBDA_READ], functions))
        if not read_only:
            stmts.append(statement("WriteLambdaFlags", [LAMBDA_WRITE], functions))
    stmts += _listed_types(plan, arn, read_only)  # the check types' own: alarms, logs, windows, metrics, queries
    if inv.secrets_read:
        stmts.append(statement("ReadGateSecrets", ["secretsmanager:GetSecretValue"], [arn.secret(s) for s in inv.secrets_read]))
    if inv.secrets_described:
        stmts.append(statement("DescribeGateSecrets", ["secretsmanager:DescribeSecret"],
                                [arn.secret(s) for s in inv.secrets_described]))
    if plan.notify_topic and not read_only:  # dry runs never notify (Publish is a write)
        stmts.append(statement("NotifyStateChanges", ["sns:Publish"], [plan.notify_topic]))
    stmts += _kms(inv, arn, read_only)
    # The rollback-readiness gate asks IAM whether a rollback would be allowed, for the caller and the
    # guard's role. The caller's own role is not in the plan, so any role or user of the account; the
    # simulation only reads policies (cutover.commands.readiness says "not checked" without it).
    stmts.append(statement("SimulateRollbackPermissions", ["iam:SimulatePrincipalPolicy"],
                            [f"arn:{arn.partition}:iam::{arn.account}:{kind}/*" for kind in ("role", "user")]))
    stmts += lambda_key_statements(inv.lambda_keys, arn, ["kms:Decrypt"] if read_only else ["kms:Decrypt", "kms:Encrypt"])
    # `status` reads whether SSM's higher throughput is on, to say when `write_rate: 10` would roll back faster.
    stmts.append(statement("ReadThroughputSetting", ["ssm:GetServiceSetting"], [arn.service_setting(HIGH_THROUGHPUT_SETTING)]))
    stmts.append(statement("IdentifyCaller", ["sts:GetCallerIdentity"], "*"))  # it has no resource
    return {"Version": "2012-10-17", "Statement": stmts}


def _listed_types(plan: Plan, arn: Arns, read_only: bool) -> list[dict]:
    """The statements the check types ask for, in the order of `cutover.checks.TYPES` (each type's checks in
    plan order); statements of one Sid merged into one, their resources in order, each once."""
    merged: dict[str, dict] = {}
    for t in check_types.TYPES:
        for s in (s for c in plan.checks.values() if c.type == t.kind for s in t.iam(c, arn, read_only)):
            if s["Sid"] not in merged:
                merged[s["Sid"]] = {**s, "Resource": s["Resource"] if isinstance(s["Resource"], str) else list(dict.fromkeys(s["Resource"]))}
            elif isinstance(s["Resource"], list):
                have = merged[s["Sid"]]["Resource"]
                have += [r for r in s["Resource"] if r not in have]
    return list(merged.values())


def _kms(inv: Inventory, arn: Arns, read_only: bool) -> list[dict]:
    """The plan does not name the KMS keys, so the key is "*" and kms:ViaService pins each grant to the
    one service that uses it on cutover's behalf (no direct use of any key)."""

    def via(service: str) -> dict:
        return {"StringEquals": {"kms:ViaService": arn.via(service)}}

    out = []
    if inv.secure_parameters:
        out.append(statement("DecryptSecureStringFlagsViaSsm", ["kms:Decrypt"], "*", via("ssm")))
        if not read_only:  # writing a SecureString with a customer managed key needs Encrypt
            out.append(statement("EncryptSecureStringFlagsViaSsm", ["kms:Encrypt"], "*", via("ssm")))
    if inv.secrets_read:
        out.append(statement("DecryptSecretsViaSecretsManager", ["kms:Decrypt"], "*", via("secretsmanager")))
    return out


def lambda_key_statements(keys: tuple[str, ...], arn: Arns, actions: list[str]) -> list[dict]:
    """KMS on the keys the plan names for its Lambda functions (`kms_key`), only through Lambda: reading
    an environment they encrypt needs Decrypt, writing it Encrypt. An alias ARN grants nothing in a
    Resource (KMS authorises the key), so an alias is matched with kms:ResourceAliases on its account's keys."""
    via = {"kms:ViaService": arn.via("lambda")}
    by_arn = [k for k in keys if ":key/" in k]
    aliases = [k for k in keys if ":alias/" in k]
    out = []
    if by_arn:
        out.append(statement("LambdaEnvironmentKeysViaLambda", actions, by_arn, {"StringEquals": via}))
    if aliases:
        accounts = _unique(k.split(":")[4] for k in aliases)
        out.append(statement("LambdaEnvironmentKeyAliasesViaLambda", actions,
                              [f"arn:{arn.partition}:kms:{arn.region}:{a}:key/*" for a in accounts],
                              {"StringEquals": via,
                               "ForAnyValue:StringEquals": {"kms:ResourceAliases": [k.split(":", 5)[5] for k in aliases]}}))
    return out


def render(doc: dict | list) -> str:
    return json.dumps(doc, indent=2)
