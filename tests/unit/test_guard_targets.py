"""The guard of a plan with targets (issue 17): names and the roles' least privilege. IAM is global, so the
two roles are one pair per account, covering the regions of its targets; documents and rules are regional,
one per target. A single-target plan compiles exactly as before."""

import dataclasses
import json
from pathlib import Path

from cutover.compile import guard
from cutover.model.targets import TargetScope
from cutover.plan.load import load_plan

ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(str(ROOT / "tests" / "plans" / "waves_guard.yaml"))
E2E = load_plan(str(ROOT / "tests" / "plans" / "e2e.yaml"))
MINE, OTHER = "111111111111", "222222222222"


def target(name: str):
    return PLAN.at_target(next(t for t in PLAN.targets if t.name == name))


def test_two_targets_in_one_account_share_one_role_pair_that_covers_both_regions():
    use2, usw2, euw1 = target("use2"), target("usw2"), target("euw1")
    assert use2.scope.account_regions == usw2.scope.account_regions == ("us-east-2", "us-west-2")
    assert euw1.scope.account_regions == ("eu-west-1",)
    # Arming either region expects the very same roles: they never fight over them.
    assert guard.role_specs(use2, MINE) == guard.role_specs(usw2, MINE)
    automation, events = guard.role_specs(use2, MINE)
    text = json.dumps([automation.trust, automation.policy, events.trust, events.policy])
    for region in ("us-east-2", "us-west-2"):
        assert f"arn:aws:ssm:{region}:{MINE}:parameter/waves-guard/kill_switch" in text
        assert f"arn:aws:ssm:{region}:{MINE}:automation-execution/*" in text
        assert f"arn:aws:events:{region}:{MINE}:rule/cutover-waves-guard-rollback" in text
        assert f"arn:aws:ssm:{region}:{MINE}:automation-definition/cutover-waves-guard-rollback:*" in text
    assert "eu-west-1" not in text
    other = json.dumps([s.policy for s in guard.role_specs(euw1, OTHER)] + [s.trust for s in guard.role_specs(euw1, OTHER)])
    assert "eu-west-1" in other and "us-east-2" not in other and "us-west-2" not in other


def test_each_target_has_its_own_document_rule_and_rule_target_in_its_region():
    use2, usw2 = guard.desired(target("use2"), MINE), guard.desired(target("usw2"), MINE)
    assert use2.names == usw2.names  # regional resources: the same names do not collide across regions
    assert use2.target["Arn"] == f"arn:aws:ssm:us-east-2:{MINE}:automation-definition/cutover-waves-guard-rollback:$DEFAULT"
    assert usw2.target["Arn"] == f"arn:aws:ssm:us-west-2:{MINE}:automation-definition/cutover-waves-guard-rollback:$DEFAULT"
    # Each document restores its own target's flag and record (flag names are the same in every target).
    assert use2.document["assumeRole"] == usw2.document["assumeRole"] == f"arn:aws:iam::{MINE}:role/cutover-waves-guard-rollback-automation"
    assert [w["parameter"] for w in guard.document_writes(use2.document)] == ["/waves-guard/kill_switch", "/cutover/waves-guard/state"]


def test_a_single_target_plan_compiles_exactly_as_before():
    assert E2E.scope is None and guard.guard_regions(E2E) == (E2E.region,)
    assert guard.names(E2E) == guard.Names("cutover-e2e-rollback", "cutover-e2e-rollback", "cutover-e2e-rollback-automation",
                                           "cutover-e2e-rollback-events")
    assert guard.stack_name(E2E) == "cutover-e2e-guard-roles"
    automation, events = guard.role_specs(E2E, MINE)
    # One region: one source ARN as a string (the shape AWS shows and earlier versions armed), not a list.
    assert automation.trust["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:ssm:us-east-2:{MINE}:automation-execution/*"
    assert "--target" not in guard.bootstrap_hint(E2E)
    # A target plan of one region in its account is the single-target plan of that region.
    one = dataclasses.replace(E2E, scope=TargetScope("only", (E2E.region,)))
    assert guard.role_specs(one, MINE) == guard.role_specs(E2E, MINE)
    assert guard.desired(one, MINE).document == guard.desired(E2E, MINE).document


def test_the_bootstrap_hint_of_a_target_names_its_template_and_says_the_stack_is_once_per_account():
    hint = guard.bootstrap_hint(target("usw2"))
    assert "cutover guard bootstrap --target usw2" in hint and "--stack-name cutover-waves-guard-guard-roles" in hint
    assert "--region us-east-2" in hint  # one stack per account, in its first region
    assert "serve the guard in us-east-2, us-west-2" in hint


def test_merged_policies_union_resources_and_condition_values_by_statement():
    a = {"Version": "2012-10-17", "Statement": [
        {"Sid": "S", "Effect": "Allow", "Action": ["x:Y"], "Resource": ["r1", "shared"]},
        {"Sid": "K", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": "ssm.a"}}}]}
    b = json.loads(json.dumps(a).replace("r1", "r2").replace("ssm.a", "ssm.b"))
    m = guard.merged_policies([a, b])
    assert m["Statement"][0]["Resource"] == ["r1", "shared", "r2"]
    assert m["Statement"][1]["Resource"] == "*" and m["Statement"][1]["Condition"] == {"StringEquals": {"kms:ViaService": ["ssm.a", "ssm.b"]}}
    assert guard.merged_policies([a]) is a


def test_a_targets_bootstrap_lets_the_administrator_accounts_automation_role_start_rollback_in_aws():
    """`rollback --in-aws` runs as each account's automation role, assumed through the starting account's
    AWS-SystemsManager-AutomationAdministrationRole: the template trusts it, the account a parameter."""
    from cutover.sandbox.guard import resolve_account

    template = guard.bootstrap_template(target("euw1"))
    assert template["Parameters"][guard.ADMIN_ACCOUNT_PARAMETER]["AllowedPattern"] == "^[0-9]{12}$"
    applied = resolve_account(template, OTHER, MINE)
    trust = applied["Resources"]["AutomationRole"]["Properties"]["AssumeRolePolicyDocument"]
    admin = [s for s in trust["Statement"] if "AWS" in s["Principal"]]
    assert admin == [guard.administrator_trust("eu-west-1", MINE)]
    assert admin[0]["Principal"]["AWS"] == f"arn:aws:iam::{MINE}:role/AWS-SystemsManager-AutomationAdministrationRole"
    # The events role is only EventBridge's; `guard arm` compares the trust without the administrator's statement.
    events = applied["Resources"]["EventsRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert all("AWS" not in s["Principal"] for s in events["Statement"])
    assert guard.without_administrator_trust(trust) == guard.role_specs(target("euw1"), OTHER)[0].trust
    assert "--parameter-overrides AdministratorAccountId=" in guard.bootstrap_hint(target("euw1"))
    # A single-target plan's template is unchanged: no parameter, no administrator.
    single = guard.bootstrap_template(E2E)
    assert "Parameters" not in single and "AutomationAdministrationRole" not in json.dumps(single)


def test_iam_policy_with_guard_lets_the_callers_account_start_rollback_in_aws_and_no_other():
    from cutover.compile import iam_targets

    by_account = {a["account"]: a["policy"]["Statement"] for a in iam_targets.policies(PLAN, MINE, with_guard=True)["accounts"]}
    mine = {s["Sid"]: s for s in by_account[MINE]}
    assert mine["StartRollbackInAws"]["Action"] == ["ssm:StartAutomationExecution"]
    assert mine["StartRollbackInAws"]["Resource"] == [f"arn:aws:ssm:us-east-2:{MINE}:automation-definition/cutover-waves-guard-rollback:*"]
    assert mine["PassRolesToAutomation"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}
    assert f"arn:aws:iam::{MINE}:role/AWS-SystemsManager-AutomationAdministrationRole" in mine["ReadAutomationAdministrationRole"]["Resource"]
    assert not any(s["Sid"].startswith(("StartRollbackInAws", "PassRolesToAutomation")) for s in by_account[OTHER])
    read_only = iam_targets.policies(PLAN, MINE, read_only=True, with_guard=True)["accounts"]
    assert not any("ssm:StartAutomationExecution" in s["Action"] for a in read_only for s in a["policy"]["Statement"])
