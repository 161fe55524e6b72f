"""`cutover rollback --in-aws` of a plan with targets (issue 17): the rollback started as ONE SSM Automation
execution across every target account and region (Automation's multi-account, multi-Region execution,
TargetLocations), so the fan-out runs on AWS's own engine and the laptop may drop off once it has started.

The execution runs the guard's document (armed by `cutover guard arm`) of the caller's account, in the
region it is started in, in every location: one TargetLocation per account with only its targets' regions,
each run as the guard's automation role there (`ExecutionRoleName`: one name in every account, since the
roles are one pair per account, `compile.guard`). MaxErrors is the number of targets, so a failing target
never stops the others. AWS starts the locations in parallel: there is no "later waves first" here.

Read (the caller, the administration role, the armed document) -> decide (`decide`: pure) -> start, or for
a dry run only say what would be started."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cutover.compile.guard import ADMIN_ACCOUNT_PARAMETER, ADMIN_ROLE, PARAMETER, in_aws_start_region as start_region, names
from cutover.errors import Blocked, ExitCode, UsageError
from cutover.model.plan import Plan
from cutover.outcome import Outcome
from cutover.ports import AutomationStarter, Identity

ADMIN_ROLE_DOCS = "https://docs.aws.amazon.com/systems-manager/latest/userguide/running-automations-multiple-accounts-regions.html"
_UNSAFE = re.compile(r'["\\<>{}\x00-\x1f\x7f]')


@dataclass(frozen=True)
class InAwsDecision:
    region: str  # where the execution is started (and the document read): the caller's account
    document: str
    locations: list[dict]
    parameters: dict[str, list[str]]
    max_errors: str
    max_concurrency: str

    def lines(self) -> list[str]:
        return [f"{', '.join(loc['Accounts'])}: {', '.join(loc['Regions'])} as role {loc['ExecutionRoleName']}"
                for loc in self.locations]


def require_targets(plan: Plan) -> None:
    """A single-target plan is refused (exit 2): its guard's document is one `aws ssm start-automation-execution`
    away, and `cutover rollback` restores it from here; --in-aws is the fan-out across targets."""
    if not plan.targets:
        raise UsageError(f"--in-aws needs a plan with targets ({plan.path} declares no targets:); nothing was done",
                         "roll back from here: cutover rollback --yes (the guard rolls back inside AWS on an alarm)")


def decide(plan: Plan, caller_account: str, reason: str) -> InAwsDecision:
    """Pure: the TargetLocations (one per account, its regions in wave order) and the limits."""
    role = names(plan).automation_role
    by_account: dict[str, list[str]] = {}
    for t in (t for w in plan.waves for t in plan.targets if t.name in w.targets):
        by_account.setdefault(t.account or caller_account, []).append(t.region)
    locations = [{"Accounts": [account], "Regions": regions, "ExecutionRoleName": role,
                  "TargetLocationMaxErrors": str(len(regions)), "TargetLocationMaxConcurrency": str(len(regions))}
                 for account, regions in by_account.items()]
    said = _UNSAFE.sub(" ", reason).strip()[:200]
    return InAwsDecision(start_region(plan, caller_account), names(plan).document, locations,
                         {PARAMETER: [f"cutover rollback --in-aws{': ' + said if said else ''}"]},
                         max_errors=str(len(plan.targets)), max_concurrency=str(len(plan.targets)))


def rollback_in_aws(plan: Plan, starter: AutomationStarter, caller: Identity, reason: str = "",
                    dry_run: bool = False) -> Outcome:
    require_targets(plan)
    d = decide(plan, caller.account, reason)
    data = {"region": d.region, "document": d.document, "target_locations": d.locations, "max_errors": d.max_errors,
            "dry_run": dry_run}
    if not starter.role_exists(ADMIN_ROLE):
        raise Blocked(f"account {caller.account} has no role {ADMIN_ROLE}, which Automation needs to run across "
                      "accounts and regions; nothing was started",
                      f"an admin creates it ({ADMIN_ROLE_DOCS}); each account's `cutover guard bootstrap` template "
                      f"lets it assume the automation role when applied with {ADMIN_ACCOUNT_PARAMETER}={caller.account}; "
                      "meanwhile: cutover rollback --yes")
    if not starter.document_exists(d.document):
        raise Blocked(f"the guard's document {d.document} is not armed in {d.region} (account {caller.account}); "
                      "nothing was started", "arm it: cutover guard arm --yes; or roll back from here: cutover rollback --yes")
    if dry_run:
        return Outcome(ExitCode.OK, f"dry run: would start {d.document} in {d.region} across {len(plan.targets)} "
                       f"target(s) in {len(d.locations)} account(s); nothing was started", d.lines(), data)
    execution = starter.start(d.document, d.parameters, d.locations, d.max_errors, d.max_concurrency)
    follow = f"aws ssm get-automation-execution --region {d.region} --automation-execution-id {execution}"
    return Outcome(ExitCode.OK, f"rollback started inside AWS: execution {execution} of {d.document} across "
                   f"{len(plan.targets)} target(s)", [*d.lines(), f"follow it: {follow}"],
                   {**data, "execution_id": execution, "follow": follow},
                   hint="when it has ended, `cutover status` shows every target (rolled_back, by the guard)")
