"""AWS errors as one line each (CutoverError with a hint), and the small helpers the adapters share."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import botocore.exceptions as bex
from botocore.parsers import ResponseParserError

from cutover.errors import AlreadyExists, AwsError, CutoverError, NotFound, RevisionConflict, UpdateInProgress, UsageError
from cutover.retry import THROTTLED


CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
NOT_FOUND = {"ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException", "NotFoundException"}
EXISTS = {"ParameterAlreadyExists", "ResourceExistsException", "ResourceAlreadyExistsException"}
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "AuthorizationError",
}
KMS = {
    "DecryptionFailure",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
}
BAD_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestExpired",
}
NO_CREDENTIALS = (
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    bex.SSOError,
    bex.SSOTokenLoadError,
    bex.UnauthorizedSSOTokenError,
    bex.TokenRetrievalError,
    bex.NoAuthTokenError,
)
CREDENTIALS_HINT = (
    "set AWS_PROFILE and run `aws sso login`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
    "(for the sandbox, use the variables `cutover sandbox` prints)"
)


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sanitize(aws_message: str) -> str:
    """AWS messages can echo request values (`Value 'x' at 'value' failed...`): drop quoted and
    `value: ...` parts so a secret or sensitive flag value never reaches a console or evidence.
    Lambda's 4 KB refusal quotes the whole environment after "String measured": cut it off."""
    aws_message = re.split(r"(?i)string measured", aws_message, maxsplit=1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", aws_message)
    text = re.sub(r"(?i)(value:)\s*[^,]*", r"\1 …", text)
    return one_line(text, 160)


def _connection_hint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f"AWS_ENDPOINT_URL={endpoint} is set: is the emulator running (`cutover sandbox`)? Unset it to reach AWS"
    return "check the network, VPN or proxy (HTTPS_PROXY) and the region"


def translate(exc: Exception, action: str, resource: str = "") -> CutoverError:
    """A botocore/boto3 exception -> the project's error, one line, with a hint; code and operation kept."""
    on = f" on {resource}" if resource else ""
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(err.get("Code", "") or meta.get("HTTPStatusCode", "Unknown"))
        status = meta.get("HTTPStatusCode", 0)
        attempts = meta.get("RetryAttempts", 0) + 1
        kw = {"code": code, "operation": action}
        if code in NOT_FOUND:
            return NotFound(f"{resource or 'resource'} not found ({action})", "check the name and the region", **kw)
        if code in EXISTS:
            return AlreadyExists(f"{resource or 'resource'} already exists ({action})", "", **kw)
        if code == "PreconditionFailedException":
            return RevisionConflict(f"{resource or 'the resource'} changed since it was read ({action})",
                                    "someone else updated it: read it again", **kw)
        if code == "ResourceConflictException":
            return UpdateInProgress(f"{resource or 'the resource'} is still applying an earlier update ({action})",
                                    "wait until its LastUpdateStatus is Successful", **kw)
        if code in KMS:
            return AwsError(
                f"AWS could not decrypt {resource or 'the value'} ({action}: {code})",
                "grant kms:Decrypt on the KMS key that encrypts it (see `cutover iam-policy`)",
                **kw,
            )
        if code in DENIED or code.startswith("AccessDenied"):
            return AwsError(
                f"AWS denied {action}{on}",
                f"grant {action}{on} to the role you use (see `cutover iam-policy`), or use the release role",
                **kw,
            )
        if code in BAD_CREDENTIALS:
            return AwsError(f"AWS rejected the credentials for {action} ({code})", CREDENTIALS_HINT, **kw)
        if code in THROTTLED:
            kw["transient"] = True
            return AwsError(
                f"AWS throttled {action}{on} after {attempts} attempts",
                "wait a minute and re-run: the command converges (lower write_rate if this repeats)",
                **kw,
            )
        if status >= 500:
            kw["transient"] = True
            return AwsError(
                f"AWS failed {action}{on}: {code} (HTTP {status}) after {attempts} attempts",
                "a transient AWS error: re-run, the command converges",
                **kw,
            )
        detail = sanitize(err.get("Message", ""))
        return AwsError(f"AWS rejected {action}{on}: {code}" + (f": {detail}" if detail else ""), "", **kw)
    code = type(exc).__name__
    kw = {"code": code, "operation": action}
    if isinstance(exc, NO_CREDENTIALS):
        return AwsError(f"no usable AWS credentials for {action} ({code})", CREDENTIALS_HINT, **kw)
    if isinstance(exc, bex.ReadTimeoutError):
        return AwsError(f"AWS did not answer {action}{on} within {READ_TIMEOUT}s", _connection_hint(), transient=True, **kw)
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError)):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or "the AWS endpoint"
        return AwsError(f"could not connect to {where} for {action}", _connection_hint(), transient=True, **kw)
    if isinstance(exc, ResponseParserError):
        return AwsError(f"AWS sent an unreadable answer to {action}{on}", "a transient fault: re-run, the command converges",
                        transient=True, **kw)
    if isinstance(exc, bex.NoRegionError):
        return UsageError("no AWS region", "set `region:` in the plan, pass --region, or set AWS_DEFAULT_REGION")
    if isinstance(exc, bex.ParamValidationError):
        return AwsError(f"invalid request for {action}{on}: {sanitize(str(exc))}", "", **kw)
    return AwsError(f"{action}{on} failed: {code}: {sanitize(str(exc))}", "", **kw)


@contextmanager
def aws_errors(action: str, resource: str = "") -> Iterator[None]:
    """Translate anything boto3 raises inside the block; our own errors pass through untouched."""
    try:
        yield
    except CutoverError:
        raise
    except (bex.BotoCoreError, bex.ClientError, ResponseParserError) as exc:
        raise translate(exc, action, resource) from exc


def error_code(exc: bex.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def few_names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:2])} and {len(names) - 2} more"


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


ClientFactory = Callable[[str], Any]
