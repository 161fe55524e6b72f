"""secrets: every listed secret exists, is not scheduled for deletion and (decrypt: true) decrypts.

Values are registered with the redactor the moment they are read and go nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator
from cutover.checks.aws_faults import DENIED, aws_fail, code_of, is_not_found
from cutover.checks.interface import CheckType, Fail, Need, fragment, list_of, text
from cutover.checks.words import names
from cutover.errors import AwsError


@dataclass(frozen=True)
class SecretsCheck:
    name: str
    secret_ids: tuple[str, ...]
    decrypt: bool = True
    timeout: float = 30.0
    type: str = "secrets"


SECRET_ID = r"^[A-Za-z0-9/_+=.@:!-]{1,2048}$"  # a name or an ARN

KMS_CODES = {
    "DecryptionFailure",
    "DecryptionFailureException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "KMSInvalidKeyUsageException",
}
# GetSecretValue on a secret scheduled for deletion fails with this code.
DELETION_CODES = {"InvalidRequestException"}


def secret_fail(exc: AwsError, secret_id: str) -> Fail:
    """One secret's problem, as a Fail naming it (the id is a name, never a value)."""
    code = code_of(exc)
    if is_not_found(exc):
        return Fail(
            f"secret {secret_id} not found",
            f"create secret {secret_id} in Secrets Manager (right region?) or fix its id in the plan",
        )
    if code in KMS_CODES or code.startswith("KMS"):
        return Fail(
            f"secret {secret_id} cannot be decrypted ({code})",
            f"grant kms:Decrypt on the KMS key of {secret_id} to your role and check the key is enabled",
        )
    if code in DELETION_CODES:
        return Fail(
            f"secret {secret_id} is marked for deletion ({code})",
            f"restore it: aws secretsmanager restore-secret --secret-id {secret_id}",
        )
    if code in DENIED or code.startswith("AccessDenied"):
        return Fail(
            f"access denied to secret {secret_id} ({code})",
            f"grant secretsmanager:GetSecretValue and DescribeSecret on {secret_id} to your role "
            "(see `cutover iam-policy`)",
        )
    return aws_fail(exc, f"secret {secret_id}", permission="secretsmanager:GetSecretValue")


def fetch_secret(ctx, secret_id: str) -> str:
    """GetSecretValue; the value is registered with the redactor before it is returned."""
    try:
        value = ctx.aws.secrets.get_value(secret_id)
    except AwsError as exc:
        raise secret_fail(exc, secret_id) from None
    ctx.redactor.register(value)
    if not value:
        raise Fail(f"secret {secret_id} is empty", f"put the value into secret {secret_id} in Secrets Manager")
    return value


def _probe(ctx, secret_id: str, decrypt: bool) -> None:
    if decrypt:
        fetch_secret(ctx, secret_id)
        return
    try:
        meta = ctx.aws.secrets.describe(secret_id) or {}
    except AwsError as exc:
        raise secret_fail(exc, secret_id) from None
    if meta.get("DeletedDate"):
        raise secret_fail(AwsError("deleted", code="InvalidRequestException"), secret_id)


def _run(check: SecretsCheck, ctx) -> str:
    problems: list[Fail] = []
    for secret_id in check.secret_ids:
        try:
            _probe(ctx, secret_id, check.decrypt)
        except Fail as f:
            problems.append(f)
    n = len(check.secret_ids)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s) in the detail)" if len(problems) > 1 else ""
        raise Fail(
            f"{len(problems)} of {n} secrets unusable: " + "; ".join(p.detail for p in problems),
            problems[0].next_action + more,
        )
    if not n:
        raise Fail("no secret ids listed; the gate would pass vacuously", "list the secrets in the plan's check")
    noun = "secret exists" if n == 1 else "secrets exist"
    return f"{n} {noun} and decrypt{'s' if n == 1 else ''}" if check.decrypt else f"{n} {noun} (not decrypted)"


class Secrets(CheckType):
    """Its IAM needs and its sandbox secrets are the plan's (`needs` through `iam.inventory`, `secret_refs`): a
    secret is also read through {{secret:ID}} in http and graphql checks, and each is granted and seeded once."""

    kind = "secrets"
    model = SecretsCheck
    schema = fragment(
        "secrets",
        "secrets check",
        {
            "secret_ids": list_of(
                text(pattern=SECRET_ID, description="a Secrets Manager secret name or ARN"),
                uniqueItems=True,
                description="the secrets that must exist",
            ),
            "decrypt": {"type": "boolean", "default": True, "description": "GetSecretValue must succeed too"},
        },
        ["secret_ids"],
        "30s",
    )

    run = staticmethod(_run)  # the gate, above

    def secret_refs(self, check: SecretsCheck) -> Iterator[tuple[str, str | None]]:
        return ((sid, None) for sid in check.secret_ids)

    def needs(self, check: SecretsCheck) -> Iterator[Need]:
        """Read (GetSecretValue) with decrypt: true, else only described."""
        return (Need("secret_read" if check.decrypt else "secret_described", sid) for sid in check.secret_ids)

    def describe(self, check: SecretsCheck) -> str:
        what = "exist and decrypt (GetSecretValue)" if check.decrypt else "exist and are not scheduled for deletion (not read)"
        return f"secrets {names(check.secret_ids)} {what}"


TYPE = Secrets()
