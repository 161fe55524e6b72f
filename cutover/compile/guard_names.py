"""The guard's names and ARNs, all derived from the plan: what `guard arm` creates, what `iam-policy`
and the rollback-readiness gate name. A leaf over the model and IAM's ARN helper."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cutover.compile import iam
from cutover.model.plan import Plan

NAME_LIMIT = 64  # EventBridge rule and IAM role names


@dataclass(frozen=True)
class Names:
    document: str
    rule: str
    automation_role: str
    events_role: str


def fit_name(plan_name: str, suffix: str, limit: int = NAME_LIMIT) -> str:
    full = f"cutover-{plan_name}{suffix}"
    if len(full) <= limit:
        return full
    tag = hashlib.sha256(plan_name.encode()).hexdigest()[:6]  # long names stay distinct
    keep = limit - len("cutover-") - len(suffix) - len(tag) - 1
    return f"cutover-{plan_name[:keep].rstrip('-')}-{tag}{suffix}"


def names(plan: Plan) -> Names:
    base = fit_name(plan.name, "-rollback")
    return Names(document=base, rule=base, automation_role=fit_name(plan.name, "-rollback-automation"),
                 events_role=fit_name(plan.name, "-rollback-events"))


class GuardArns(iam.Arns):
    def role(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    def policy(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:policy/{name}"

    def automation_definition(self, document: str, version: str = "$DEFAULT") -> str:
        return self._arn("ssm", f"automation-definition/{document}:{version}")

    def automation_executions(self) -> str:
        return self._arn("ssm", "automation-execution/*")

    def rule(self, name: str) -> str:
        return self._arn("events", f"rule/{name}")
