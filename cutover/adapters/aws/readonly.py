"""The read-only guard: a session for a dry run refuses every call that is not a read, before it is sent."""

from __future__ import annotations

from typing import Any

from cutover.errors import ReadOnlyViolation


READ_PREFIXES = ("Describe", "Get", "List", "Filter", "BatchGet")
READ_OPERATIONS = frozenset({"LookupEvents", "SimulatePrincipalPolicy"})  # the simulation changes nothing


def is_read_operation(operation: str) -> bool:
    """True for an AWS operation name (PutParameter, GetParameters...) that only reads."""
    return operation.startswith(READ_PREFIXES) or operation in READ_OPERATIONS


# botocore's hyphenated service ids that differ from the IAM action prefix.
_IAM_PREFIX = {"cloudwatch-logs": "logs", "secrets-manager": "secretsmanager", "eventbridge": "events"}


def iam_prefix(service_id: str) -> str:
    """`cloudwatch-logs` -> `logs`: the prefix people see in IAM policies (ssm:PutParameter)."""
    sid = service_id.lower().replace(" ", "-")
    return _IAM_PREFIX.get(sid, sid.replace("-", ""))


def iam_action(model) -> str:
    return f"{iam_prefix(model.service_model.service_id.hyphenize())}:{model.name}"


def refuse_writes(model, **_: Any) -> None:
    # 'before-parameter-build' is the first event of every API call, before validation, signing or
    # any byte on the wire; raising here means the request is never built.
    if not is_read_operation(model.name):
        action = iam_action(model)
        raise ReadOnlyViolation(
            f"dry-run is read-only: refused {action}",
            "nothing was sent to AWS; run the command without --dry-run to apply",
            code="ReadOnlyViolation",
            operation=action,
        )
