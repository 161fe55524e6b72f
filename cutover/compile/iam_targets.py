"""`iam-policy` for a plan with targets (issue 17): per account, the operator policy of its targets (each
region's flags, state, lock and gate resources), and for each target reached through `role_arn` the trust
policy that role needs (the caller's account may assume it, with the target's external_id)."""

from __future__ import annotations

import dataclasses
import json

from cutover.compile import iam
from cutover.model.plan import Plan
from cutover.model.targets import RolloutTarget


def single(plan: Plan, target: RolloutTarget) -> Plan:
    """The plan as one target sees it: its region and account, no targets of its own."""
    return dataclasses.replace(plan, region=target.region, account=target.account, targets=(), waves=(), fanout=None)


def policies(plan: Plan, caller_account: str, read_only: bool = False, with_guard: bool = False) -> dict:
    """{"accounts": [{account, targets, policy}], "trust_policies": [{target, role_arn, policy}]} (the CLI
    prints each account's policy as the managed policies it splits into, under "policies"). A target
    without an account of its own is in the caller's (`caller_account`, or the placeholder)."""
    by_account: dict[str, list[RolloutTarget]] = {}
    for t in plan.targets:
        by_account.setdefault(t.account or caller_account, []).append(t)
    accounts = []
    for account, targets in by_account.items():
        statements: list[dict] = []
        granted: set[str] = set()
        for t in targets:  # each region's statements, their Sids made unique by the target's name
            for s in _statements(plan, t, account, read_only, with_guard):
                grant = json.dumps([s["Action"], s["Resource"], s.get("Condition")])
                if grant in granted:  # the account-wide ones (IAM simulation, the caller's identity): once
                    continue
                granted.add(grant)
                statements.append({**s, "Sid": f"{s['Sid']}{_sid(t.name)}"})
        if with_guard and not read_only and account == caller_account:  # `rollback --in-aws` starts here
            from cutover.compile.guard import in_aws_statements

            statements += in_aws_statements(plan, caller_account)
        accounts.append({"account": account, "targets": [t.name for t in targets],
                         "policy": {"Version": "2012-10-17", "Statement": statements}})
    trust = [{"target": t.name, "role_arn": t.role_arn, "policy": trust_policy(caller_account, t.external_id)}
             for t in plan.targets if t.role_arn]
    return {"accounts": accounts, "trust_policies": trust}


def _statements(plan: Plan, target: RolloutTarget, account: str, read_only: bool, with_guard: bool) -> list[dict]:
    """The operator's statements for one target; `with_guard`: and what `cutover guard` needs there (its roles
    are the account's pair, so their statements repeat across its targets and are kept once)."""
    out = iam.policy(single(plan, target), account, read_only)["Statement"]
    if with_guard:
        from cutover.compile.guard import operator_policy

        out += [s for s in operator_policy(plan.at_target(target), account, read_only)["Statement"] if s["Sid"] != "IdentifyCaller"]
    return out


def trust_policy(caller_account: str, external_id: str | None) -> dict:
    """Who may assume a target's role: the account cutover runs in, and only with the external id."""
    stmt = {"Sid": "CutoverOperatorAssumes", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{caller_account}:root"},
            "Action": "sts:AssumeRole"}
    if external_id:
        stmt["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [stmt]}


def _sid(name: str) -> str:
    """A target's name as a Sid suffix (Sids are letters and digits only): use2 -> Use2, eu-1 -> Eu1."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-"))
