"""Turn a cutover.errors.AwsError from a port into a Fail with a next action a person can follow.

Only the error code and what we were doing are shown, never the AWS message (it can echo inputs).
"""

from __future__ import annotations

from cutover.errors import AwsError, NotFound
from cutover.retry import THROTTLED

from cutover.checks.interface import Fail

NOT_FOUND = {"ResourceNotFoundException", "ParameterNotFound", "NotFound", "NoSuchEntity"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "NoCredentialsError",
    "NoCredentials",
}


def code_of(exc: AwsError) -> str:
    return getattr(exc, "code", "") or type(exc).__name__


def is_not_found(exc: AwsError) -> bool:
    return isinstance(exc, NotFound) or code_of(exc) in NOT_FOUND


def aws_fail(exc: AwsError, what: str, *, not_found: tuple[str, str] | None = None, permission: str = "") -> Fail:
    """`what` names the thing ("log group /aws/lambda/x"); `not_found` overrides that case's (detail, action);
    `permission` is the IAM action a denial needs (e.g. "logs:FilterLogEvents")."""
    code = code_of(exc)
    if is_not_found(exc):
        if not_found:
            return Fail(*not_found)
        return Fail(f"{what} not found", f"check the name of {what} in the plan and the region, then re-run")
    if code in DENIED or code.startswith("AccessDenied"):
        grant = f"grant {permission} on it" if permission else "grant the missing permission"
        return Fail(
            f"access denied to {what} ({code})",
            f"{grant} to your role (see `cutover iam-policy`), or use the release role, then re-run",
        )
    if code in THROTTLED:
        return Fail(f"AWS throttled the request for {what} ({code})", "wait a minute and re-run preflight")
    if code in CREDENTIALS:
        return Fail(
            f"AWS credentials rejected or expired ({code})",
            "refresh your AWS credentials (e.g. `aws sso login --profile ...`) and re-run",
        )
    return Fail(
        f"AWS error reading {what} ({code})",
        "re-run with -v for the full AWS error; if it persists check the AWS Health dashboard",
    )
