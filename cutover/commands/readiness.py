"""The rollback-readiness gate: before every advance (and in `preflight`), can a rollback still undo it?

Two results, in the gates' own shape (`GateResult`), shown with the phase's gate results:

- `rollback_readable`: every flag target can be read now. The SSM flags are read (SecureStrings
  decrypted); every Lambda flag function's configuration is read and its environment decrypted (an
  environment under a customer managed key nobody here may use cannot be rolled back: writing it would
  replace every other variable). A function whose environment uses a customer managed key the plan does
  not name as its `kms_key` fails too: neither `cutover iam-policy` nor the guard's role grants it.
- `rollback_allowed`: where IAM lets the caller simulate (`iam:SimulatePrincipalPolicy`), the rollback's
  calls are allowed for the caller and for the guard's automation role (once bootstrapped): write and
  read the flag parameters and the state record, read and update the flag functions, and the KMS use
  this implies. Simulation sees identity policies only (not key policies); when it cannot be asked
  (denied, not implemented, an SSO or federated session), the result says "not checked" and passes.

A FAIL names the target a rollback could not restore and blocks the advance (exit 1), before any write.
"""

from __future__ import annotations

import re

from cutover.core import flags as flagmod
from cutover.errors import AwsError, CutoverError, NotFound
from cutover.checks.fmt import one_line
from cutover.gates.result import FAIL, PASS, GateResult
from cutover.compile.guard_names import GuardArns, names
from cutover.compile.iam import Arns, inventory
from cutover.model.plan import Plan, function_name
from cutover.redact import REDACTOR

TYPE = "readiness"
READABLE, ALLOWED = "rollback_readable", "rollback_allowed"
_ASSUMED = re.compile(r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/.+$")
_IAM_PRINCIPAL = re.compile(r"^arn:[^:]+:iam::\d{12}:(role|user)/.+$")


def check(rt) -> list[GateResult]:
    """Both results for `rt.plan` (an orchestrator Runtime); never raises for an AWS failure."""
    return [_timed(rt, READABLE, lambda: readable(rt)), _timed(rt, ALLOWED, lambda: allowed(rt))]


def _timed(rt, name: str, run) -> GateResult:
    t0 = rt.clock.monotonic()
    try:
        status, detail, action = run()
    except CutoverError as err:  # e.g. the caller's identity cannot be read
        status, detail, action = FAIL, f"could not check: {err.message}", err.hint or "re-run with -v"
    clean = lambda text: one_line(REDACTOR.text(text))  # noqa: E731
    return GateResult(name, TYPE, status, clean(detail), clean(action) if status != PASS else "", rt.clock.monotonic() - t0)


# --- readable now ----------------------------------------------------------------------------------------
def readable(rt) -> tuple[str, str, str]:
    plan = rt.plan
    problems: list[tuple[str, str]] = []  # (what, fix)
    problems += _unreadable_parameters(rt, [f.parameter for f in plan.ssm_flags])
    notes = []
    reader = flagmod.env_writer(rt.functions, rt.clock) if plan.functions else None
    for function, key in plan.function_keys.items():
        name = function_name(function)
        try:
            config = reader.read(function)
        except AwsError as err:
            problems.append((f"Lambda function {name}: {err.message}", err.hint or "check the function and your access to it"))
            continue
        problem, note = _key_mismatch(name, key, config.kms_key_arn)
        if problem:
            problems.append(problem)
        if note:
            notes.append(note)
    if problems:
        return (FAIL, "a rollback could not restore: " + "; ".join(what for what, _ in problems),
                " ".join(dict.fromkeys(fix for _, fix in problems)))
    counts = f"{len(plan.ssm_flags)} SSM parameter(s), {len(plan.functions)} Lambda environment(s) decrypted"
    return PASS, f"every flag target is readable now ({counts})" + "".join(f"; {n}" for n in notes), ""


def _unreadable_parameters(rt, names: list[str]) -> list[tuple[str, str]]:
    """One batched read; if it fails, one read per parameter to name the ones that fail."""
    if not names:
        return []
    try:
        rt.params.get_many(names)
        return []
    except AwsError:
        pass
    out = []
    for name in names:
        try:
            rt.params.get_many([name])
        except AwsError as err:
            out.append((f"SSM parameter {name}: {err.message}",
                        err.hint or "grant ssm:GetParameters (and kms:Decrypt via SSM for a SecureString)"))
    return out or [(f"SSM parameters {', '.join(names)}: the batched read failed", "re-run; check `cutover status`")]


def _key_mismatch(name: str, planned: str | None, actual: str | None) -> tuple[tuple[str, str] | None, str]:
    """(problem, note) about the function's environment key and the plan's `kms_key`."""
    fix = f"set kms_key: {actual} on every flag of {name} in the plan, then apply `cutover iam-policy` again and have " \
          "an admin re-apply `cutover guard bootstrap`"
    if actual and not planned:
        return ((f"Lambda function {name} encrypts its environment with customer managed key {actual}, which the plan "
                 "does not name (kms_key): neither the operator's policy nor the guard's role may use it"), fix), ""
    if actual and planned and ":key/" in planned and planned != actual:
        return (f"Lambda function {name} encrypts its environment with {actual}, the plan names {planned}", fix), ""
    if actual and planned and ":alias/" in planned:
        return None, f"{name}'s key {actual} not compared with the alias {planned}"
    if planned and not actual:
        return None, f"{name} uses Lambda's own key, not the plan's kms_key {planned} (harmless)"
    return None, ""


# --- allowed (where IAM can be asked) ------------------------------------------------------------------------
def caller_principal(arn: str) -> str | None:
    """The IAM principal to simulate for a caller: an assumed role's role (without its path, which a
    session ARN does not carry), an IAM user as is; None for what IAM cannot simulate (root, federation)."""
    m = _ASSUMED.match(arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn if _IAM_PRINCIPAL.match(arn) else None


def rollback_requests(plan: Plan, account: str) -> list[tuple[list[str], dict[str, str], dict[str, str]]]:
    """The rollback's calls, grouped as IAM evaluates them: (actions, {resource ARN: what it is}, context)."""
    arn, inv = Arns(plan.region, account), inventory(plan)
    params = {arn.parameter(f.parameter): f"{f.parameter} ({f.name})" for f in plan.ssm_flags}
    params[arn.parameter(plan.state_parameter)] = f"{plan.state_parameter} (the state record)"
    out = [(["ssm:GetParameters", "ssm:PutParameter"], params, {})]
    if plan.functions:
        out.append((["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"],
                     {arn.function(fn): f"Lambda function {fn}" for fn in inv.functions}, {}))
    keys = {k: f"KMS key {k}" for k in inv.lambda_keys if ":key/" in k}  # an alias is not a resource KMS authorises
    if keys:
        out.append((["kms:Decrypt", "kms:Encrypt"], keys, {"kms:ViaService": arn.via("lambda")}))
    if inv.secure_parameters:
        out.append((["kms:Encrypt", "kms:Decrypt"], {"*": "the SecureString flags' key"}, {"kms:ViaService": arn.via("ssm")}))
    return out


def allowed(rt) -> tuple[str, str, str]:
    plan, access = rt.plan, rt.aws.access
    if access is None:
        return PASS, "not checked: no IAM policy simulation here", ""
    ident = rt.identity()
    principals = [("caller", caller_principal(ident.arn), ident.arn),
                  ("guard role", GuardArns(plan.region, ident.account).role(names(plan).automation_role), None)]
    requests = rollback_requests(plan, ident.account)
    denied, said = [], []
    for label, principal, shown in principals:
        if principal is None:
            said.append(f"{label} {shown}: not checked (IAM cannot simulate this principal)")
            continue
        try:
            refused = _refused(access, principal, requests)
        except AwsError as err:
            gone = label == "guard role" and (isinstance(err, NotFound) or err.code == "NoSuchEntity")
            said.append(f"{label}: not checked ({'the guard is not bootstrapped' if gone else err.message})")
            continue
        if refused:
            denied.append(f"{label} {principal} may not {', '.join(refused)}")
        else:
            said.append(f"{label} {principal}: allowed")
    if denied:
        return (FAIL, "a rollback would be refused: " + "; ".join(denied),
                "grant what is missing: the operator's policy from `cutover iam-policy`, the guard's role from "
                "`cutover guard bootstrap` (an admin applies it)")
    return PASS, "the rollback's calls, simulated: " + "; ".join(said), ""


def _refused(access, principal: str, requests) -> list[str]:
    out = []
    for actions, resources, context in requests:
        decisions = access.simulate(principal, actions, list(resources), context)
        out += [f"{a} on {what}" for a in actions for res, what in resources.items()
                if decisions.get((a, res), "implicitDeny") != "allowed"]
    return out
