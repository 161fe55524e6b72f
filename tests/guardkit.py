"""What an admin does for the guard, on the emulator: apply `cutover guard bootstrap`'s template, or edit
a role by hand. cutover itself never writes IAM; tests that arm the guard call `bootstrap_roles` first.

`bootstrap_roles` applies the template's roles with the IAM API, as CloudFormation would (Fn::Sub fills
in the account). The emulator's CloudFormation creates them too, but stores an inline policy as Python
text and ignores policy changes on a stack update, so `test_guard.py` checks CloudFormation separately."""

from __future__ import annotations

import json


def admin_clients(region: str):
    """Clients with the emulator's (admin) credentials, through cutover's own session code."""
    from cutover.adapters.aws import Clients, make_session

    return Clients(make_session(region, None, False))


def resolve(node, account: str):
    """The template with CloudFormation's Fn::Sub of the account applied."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return node["Fn::Sub"].replace("${AWS::AccountId}", account)
        return {k: resolve(v, account) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, account) for v in node]
    return node


def bootstrap_roles(plan) -> list[str]:
    """Create (or bring back to the template) the plan's two roles; their names."""
    from cutover.compile import guard

    clients = admin_clients(plan.region)
    iam = clients("iam")
    account = clients("sts").get_caller_identity()["Account"]
    template = resolve(guard.bootstrap_template(plan), account)
    made = []
    for resource in template["Resources"].values():
        assert resource["Type"] == "AWS::IAM::Role"
        props = resource["Properties"]
        name, trust = props["RoleName"], json.dumps(props["AssumeRolePolicyDocument"])
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Description=props["Description"],
                            Tags=props["Tags"])
        except iam.exceptions.EntityAlreadyExistsException:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        for policy in props["Policies"]:
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"]))
        made.append(name)
    return made


KEY = "arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = "arn:aws:kms:us-east-2:123456789012:alias/worker-env"


def variant(plan, kms_key: str | None = None, topic: str | None = None):
    """The same plan file with a `kms_key` on every Lambda flag and/or a notify topic."""
    from pathlib import Path

    from cutover.plan.load import parse_plan

    text = Path(plan.path).read_text()
    if kms_key:
        for fn in plan.functions:
            assert f"function: {fn}, variable:" in text
        text = text.replace("variable: E2E_OUTBOUND}", f'variable: E2E_OUTBOUND, kms_key: "{kms_key}"}}')
        text = text.replace("variable: E2E_COHORT}", f'variable: E2E_COHORT, kms_key: "{kms_key}"}}')
    if topic:
        text = text.replace("flags:\n", f"notify:\n  sns_topic_arn: {topic}\nflags:\n", 1)
    new = parse_plan(text, plan.path)
    assert not kms_key or set(new.function_keys.values()) == {kms_key}
    return new
