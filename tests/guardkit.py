"""What an admin does for the guard, on the emulator: apply `cutover guard bootstrap`'s template, or edit
a role by hand. cutover itself never writes IAM; tests that arm the guard call `bootstrap_roles` first.

`bootstrap_roles` applies the template's roles with the IAM API, as CloudFormation would (Fn::Sub fills
in the account): `cutover.sandbox.guard.bootstrap_roles`, which `cutover sandbox` runs too. The emulator's
CloudFormation creates them as well, but stores an inline policy as Python text and ignores policy changes
on a stack update, so `test_guard.py` checks CloudFormation separately."""

from __future__ import annotations

from cutover.sandbox.guard import resolve_account as resolve  # noqa: F401 - CloudFormation's Fn::Sub, for tests


def admin_clients(region: str):
    """Clients with the emulator's (admin) credentials, through cutover's own session code."""
    from cutover.adapters.aws import Clients, make_session

    return Clients(make_session(region, None, False))


def bootstrap_roles(plan) -> list[str]:
    """Create (or bring back to the template) the plan's two roles, as `cutover sandbox` does; their names."""
    import os

    from cutover.sandbox.guard import bootstrap_roles as apply_template

    return apply_template(plan, os.environ["AWS_ENDPOINT_URL"])


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
